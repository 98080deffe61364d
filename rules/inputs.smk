# What the jobs read, and a few of their params: input functions over the study plan (PLAN, rules/common.smk), one
# block per file of rules. Kept apart from those files, as Snakemake's linter asks, and from common.smk's shared parts.


# --- Training (rules/train.smk) ------------------------------------------------------------------------------------
# What each training job reads (for scans_read): scans, or (domain, scan set) pairs, as mrishift.data.protocol decides.
def source_training_sets(w):
    return [(w.domain, "source")]


def oracle_training_sets(w):
    return [(w.domain, f"fold{w.fold}")]


def finetune_training_scans(w):
    """The target scans of the job's budgets (a few per target)."""
    targets_budgets = dict.fromkeys((target, budget) for _, target, budget, _ in job_runs(w))
    return [case for target, budget in targets_budgets for case in PLAN.finetune_scans(target, budget)]


def finetune_training_sets(w):
    """For an arm whose strategy mixes in source slices, its sources' training scans."""
    if not PLAN.arms_using_source_data[w.strategy]:
        return []
    return [(source, "source_train") for source, _, _, _ in job_runs(w)]


def finetune_threads(w):
    """A fine-tuning job's cores: training.threads for each of the runs it trains at once (training.runs_per_device)."""
    runtime = config["training"]
    return runtime["threads"] * min(runtime["runs_per_device"], len(job_runs(w)))


def finetune_starts(w):
    """Param: the source model each run of the job starts from, in the order of its runs (among its inputs); "" for
    an arm trained from scratch."""
    if PLAN.arms_from_scratch[w.strategy]:
        return ["" for _ in job_runs(w)]
    return [SOURCE_MODEL.format(variant=w.variant, domain=source, seed=seed) for source, _, _, seed in job_runs(w)]


def finetune_source_models(w):
    """The source models one fine-tuning job's runs start from (each source and seed once; none from scratch)."""
    return list(dict.fromkeys(start for start in finetune_starts(w) if start))


def source_strategy(w):
    """The strategy source and oracle models of a variant train with: ft_all, or ft_decoder (frozen random encoder)."""
    return PLAN.variants[w.variant]["source_strategy"]


# --- Scoring and analyses (rules/score.smk, rules/analyse.smk) -----------------------------------------------------
# What each scoring job reads (for scans_read): (domain, scan set) pairs, as mrishift.data.protocol decides.
def in_domain_test_sets(w):
    """The oracle folds' test scans and the source model's held-out scans (forgetting's reference): every scan."""
    return [(w.domain, "all")]


def baseline_test_sets(w):
    return [(w.target, "all")]


def finetune_score_sets(w):
    """The runs' targets' test scans, then their sources' held-out scans (forgetting)."""
    runs = job_runs(w)
    return [(target, "test") for _, target, _, _ in runs] + [(source, "heldout") for source, _, _, _ in runs]


def baseline_sources(w):
    """The domains whose source models a baseline job tests on its target: every other domain."""
    return [domain for domain in PLAN.domains if domain != w.target]


def baseline_models(w):
    return [SOURCE_MODEL.format(variant=w.variant, domain=source, seed=w.seed) for source in baseline_sources(w)]


def test_time_models(w):
    pattern = NORMALIZED_SOURCE_MODEL if PLAN.method_models[w.method] == "normalized" else SOURCE_MODEL
    return [pattern.format(variant=w.variant, domain=source, seed=seed) for source, _, seed in test_time_runs(w)]


def test_time_references(w):
    """The source domains' intensity references, for the methods that read one (none for the others)."""
    if w.method not in PLAN.methods_reading_reference:
        return []
    return [INTENSITY_REFERENCE.format(domain=source) for source in dict.fromkeys(s for s, _, _ in test_time_runs(w))]


def score_tables():
    """Every per-model score table of the study."""
    tables = expand(ORACLE_SCORES, variant=PLAN.variants, domain=PLAN.domains, seed=PLAN.seeds)
    tables += expand(BASELINE_SCORES, variant=PLAN.variants, target=PLAN.domains, seed=PLAN.seeds)
    for variant in PLAN.variants:
        tables += job_files(FINETUNE_SCORES, variant, "strategy", PLAN.arm_pairs)
        tables += job_files(TEST_TIME_SCORES, variant, "method", PLAN.method_pairs)
    return tables


def weight_change_models(w):
    """The variant's fine-tuning folders (the models: weight_change's param), then its source models."""
    return {"models": finetuned_folders(w.variant, FINETUNE_RUNS_FROM_SOURCE),
            "sources": expand(SOURCE_MODEL, variant=w.variant, domain=PLAN.domains, seed=PLAN.seeds)}


def similarity_inputs(w):
    """The fine-tuning folders of the compared runs (their models: similarity's param), their source models (sources ×
    seeds) and their targets' test scans."""
    sources = dict.fromkeys(source for source, _ in PLAN.similarity_pairs)
    targets = dict.fromkeys(target for _, target in PLAN.similarity_pairs)
    return {**scans_read(sets_of=lambda w: [(target, "test") for target in targets])(w),
            "models": finetuned_folders(w.variant, SIMILARITY_RUNS),
            "sources": expand(SOURCE_MODEL, variant=w.variant, domain=sources, seed=PLAN.seeds)}


def model_similarity_inputs(w):
    """The fine-tuning folders of the compared runs (their models and records: model_similarity's params), the source
    models the from-source arms started from and the targets' test scans."""
    targets = dict.fromkeys(target for _, _, target, _, _ in MODEL_SIMILARITY_RUNS)
    return {**scans_read(sets_of=lambda w: [(target, "test") for target in targets])(w),
            "models": finetuned_folders(w.variant, MODEL_SIMILARITY_RUNS),
            "sources": [SOURCE_MODEL.format(variant=w.variant, domain=source, seed=seed)
                        for source, seed in sources_started_from(MODEL_SIMILARITY_RUNS)]}


def snapshot_inputs(w):
    """The fine-tuning folders of the runs that keep snapshots, the source models the from-source ones started from,
    the targets' test scans and held-out fine-tuning validation scans, and for the t-SNE the sources' held-out scans
    and the first pair's target's training scans."""
    pairs = dict.fromkeys((source, target) for _, source, target, _, _ in SNAPSHOT_RUNS)
    cases = [case for _, target in pairs for case in protocol.finetune_validation(PLAN.scan_roles, target)]
    if pairs:  # the t-SNE's pair: its target's training scans too
        cases += [case for budget in PLAN.budgets for case in PLAN.finetune_scans(next(iter(pairs))[1], budget)]
    sets = [(target, "test") for _, target in pairs] + [(source, "heldout") for source, _ in pairs]
    return {**scans_read(cases_of=lambda w: cases, sets_of=lambda w: sets)(w),
            "models": finetuned_folders(w.variant, SNAPSHOT_RUNS),
            "sources": [SOURCE_MODEL.format(variant=w.variant, domain=source, seed=seed)
                        for source, seed in sources_started_from(SNAPSHOT_RUNS)]}


def loss_predictor_tables(w):
    """The score tables, with each scan's loss, of the test-time arms whose loss is read as a predictor."""
    pairs = {arm: PLAN.method_pairs[arm] for arm in PLAN.loss_predictor_arms}
    return job_files(TEST_TIME_SCORES, w.variant, "method", pairs)


def prediction_qc_inputs(w):
    """What redraws any scored scan: the scores, every model of the variant (the fine-tuned ones in their job
    folders), the references test-time arms read and every scan (which are the best, median and worst is known only
    once the scores are)."""
    sources = {source for arm in PLAN.methods_reading_reference for source, _ in PLAN.method_pairs[arm]}
    return {**scans_read(sets_of=lambda w: [(domain, "all") for domain in PLAN.domains])(w),
            "scores": result("scores/scores.tsv"), "models": trained_files(w.variant)[0],
            "references": [INTENSITY_REFERENCE.format(domain=source) for source in sorted(sources)]}


def study_outputs():
    """The study's tables and figures, per model variant."""
    variants = PLAN.variants
    tables = expand(result("tables/{variant}/{name}.{ext}"), variant=variants,
                    name=["sdice_matrix", "gap_closed", "batchnorm", "forgetting"], ext=["csv", "md", "tex"])
    tables += expand(result("tables/{variant}/{name}"), variant=variants,
                     name=["winners.tsv", "summary.json", "batchnorm_tests.tsv", "convergence.tsv", "convergence.md"])
    figures = expand(result("figures/{variant}/{name}.{ext}"), variant=variants,
                     name=["sdice_matrix", "gap_closed", "winners", "batchnorm", "forgetting", "convergence",
                           "weight_change", "similarity_cka", "similarity_pwcca", "filters", "feature_maps"],
                     ext=["png", "pdf"])
    paper = expand(result("tables/{variant}/paper_{name}.{ext}"), variant=variants, name=["gap_closed", "scores"],
                   ext=["csv", "md", "tex"])
    paper += expand(result("figures/{variant}/paper_{name}.{ext}"), variant=variants, name=["winners", "gap_closed"],
                    ext=["png", "pdf"])
    if PLAN.model_similarity_arms:
        tables += expand(result("tables/{variant}/{name}.{ext}"), variant=variants,
                         name=["model_similarity", "feature_reuse"], ext=["csv", "md", "tex"])
    if PLAN.snapshot_steps:
        figures += expand(result("figures/{variant}/snapshot_{name}.{ext}"), variant=variants,
                          name=["similarity", "scores", "tsne"], ext=["png", "pdf"])
    if PLAN.loss_predictor_arms:
        tables += expand(result("tables/{variant}/test_time_loss.{ext}"), variant=variants, ext=["csv", "md", "tex"])
        figures += expand(result("figures/{variant}/test_time_loss.{ext}"), variant=variants, ext=["png", "pdf"])
    return tables + figures + paper + [result("tables/paper_vs_ours.md")]


def final_outputs():
    """What `rule all` asks for; the models are among their inputs. The size figure only when the study has more
    than one network size."""
    sizes = [result("figures/size_effects.png"), result("figures/size_effects.pdf"),
             result("stats/size_effects.tsv")] if len(config["models"]["sizes"]) > 1 else []
    return [result("data/integrity.tsv"), result("data/splits.json"), *expand(DATA_QC, domain=PLAN.domains),
            *study_outputs(), *expand([PREDICTION_QC, PREDICTION_QC_EXAMPLES], variant=PLAN.variants), *sizes]
