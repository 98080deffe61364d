# Config validation, case lists and wildcard constraints shared by every rule file.
import json
import re
import sys

import yaml

# The library is imported from the repository, by this process and by every job's script.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from mrishift.jobenv import export_library_path

export_library_path(SRC)

from mrishift import architectures, protocol, registry, similarity, strategies, test_time  # none imports torch
from mrishift.config import apply_overlay, validate_config
from mrishift.data.cc359 import DOMAINS, case_id, subject_ids
from mrishift.data.splits import scan_roles

for overlay in workflow.config_settings.configfiles:  # each --configfile's arms and budgets replace, in order
    apply_overlay(config, yaml.safe_load(Path(overlay).read_text()) or {})
validate_config(config)  # fills defaults; stops the parse with a message naming any bad key
RESULTS = config["results"]


def result(path):
    """A path under the study's results folder (config key ``results``, default ``results``)."""
    return f"{RESULTS}/{path}"


ENV = "../envs/mrishift.yaml"
DOMAIN_NAMES = list(config["data"]["domains"])
if config["data"]["source"] == "synthetic":
    RAW_DATASET = "resources/synthetic_cc359"
    CASES_BY_DOMAIN = {d: subject_ids(d, config["data"]["synthetic"]["subjects_per_domain"]) for d in DOMAIN_NAMES}
else:
    RAW_DATASET = "resources/cc359"
    CASES_BY_DOMAIN = {d: [case_id(i) for i in DOMAINS[d].ids] for d in DOMAIN_NAMES}
CASES = [c for cases in CASES_BY_DOMAIN.values() for c in cases]


# Which scans each role reads is decided without reading an image (the slice indices of a budget are not), so the
# protocol is asked here, at parse time, with the same functions the jobs ask about the splits file.
SPLITS = config["splits"]
SCAN_ROLES = {d: scan_roles(d, CASES_BY_DOMAIN[d], SPLITS["seed"], SPLITS["n_validation"], SPLITS["n_folds"],
                            SPLITS["budgets"]) for d in DOMAIN_NAMES}


def scans_read(cases_of):
    """Input function: the splits and the preprocessed images and reference masks of exactly the scans a job reads —
    ``cases_of(wildcards)`` names them — so a changed scan reruns only the jobs that read it, and the DAG of the full
    study stays small (a fine-tune declares its budget's scans, not its target's 60)."""

    def inputs(wildcards):
        cases = list(dict.fromkeys(cases_of(wildcards)))
        return {"splits": result("data/splits.json"),
                "images": [result(f"data/preprocessed/{c}_image.nii.gz") for c in cases],
                "masks": [result(f"data/resampled/{c}_mask.nii.gz") for c in cases]}

    return inputs


# The scans each job reads (for scans_read), as mrishift.protocol decides them.
def source_training_scans(w):
    return protocol.source_training(SCAN_ROLES, w.domain).scans


def oracle_training_scans(w):
    return protocol.oracle_training(SCAN_ROLES, w.domain, int(w.fold)).scans


def finetune_training_scans(w):
    """The budget's target scans; for an arm whose strategy mixes in source slices, its sources' training scans too."""
    target = _scans_per_budget(finetune_runs(w), protocol.finetune_scans)
    if not ARMS_USING_SOURCE_DATA.get(w.strategy):
        return target
    sources = dict.fromkeys(source for source, _, _, _ in finetune_runs(w))
    return target + [case for source in sources for case in protocol.source_training(SCAN_ROLES, source).cases]


def in_domain_test_scans(w):
    """The oracle folds' test scans, and the source model's held-out scans (forgetting's reference)."""
    oracle = [case for fold in FOLDS for case in protocol.oracle_test(SCAN_ROLES, w.domain, fold)]
    return oracle + protocol.source_heldout(SCAN_ROLES, w.domain)


def baseline_test_scans(w):
    return [case for source in baseline_sources(w) for case in protocol.baseline_test(SCAN_ROLES, source)[w.target]]


def finetune_score_scans(w):
    """The runs' test scans, then their sources' held-out scans (forgetting)."""
    runs = scored_runs(w)
    sources = dict.fromkeys(source for source, _, _, _ in runs)
    heldout = [case for source in sources for case in protocol.source_heldout(SCAN_ROLES, source)]
    return _scans_per_budget(runs, protocol.finetune_test) + heldout


def intensity_reference_scans(w):
    return protocol.intensity_reference(SCAN_ROLES, w.domain)


def test_time_test_scans(w):
    targets = dict.fromkeys(target for _, target, _ in test_time_runs(w))
    return [case for target in targets for case in protocol.test_time_test(SCAN_ROLES, target)]


def _scans_per_budget(runs, scans_of):
    """``scans_of(SCAN_ROLES, target, budget)`` once per distinct (target, budget) of these fine-tuning runs: their
    seeds (and, for scoring, their budgets) share the same scans."""
    targets_budgets = dict.fromkeys((target, budget) for _, target, budget, _ in runs)
    return [case for target, budget in targets_budgets for case in scans_of(SCAN_ROLES, target, budget)]


# A model variant = an architecture of one size (models.sizes: width, resolution levels) trained without or with
# augmentation (models.augment_p), its source and oracle models trained whole or with the encoder frozen at its
# random initialisation (models.frozen_random_encoder: the strategy ft_decoder), with SGD or Adam
# (models.optimizers); every training, scoring and analysis stage runs once per variant. The plain variant is named
# after its architecture.
def _variant(arch, size, augment_p, frozen, optimizer):
    family = arch + ("" if augment_p == 0 else f"_aug{augment_p:g}") + ("_frozen_random_encoder" if frozen else "")
    family += "" if optimizer == "sgd" else f"_{optimizer}"
    name = family.replace(arch, arch + architectures.size_suffix(size), 1)
    return name, {"arch": arch, "width": size.get("width", config["models"]["width"]), "levels": size.get("levels"),
                  "augment_p": augment_p, "source_strategy": "ft_decoder" if frozen else "ft_all",
                  "optimizer": optimizer, "family": family,  # family: the variant whatever its size
                  "dims": architectures.dims(arch)}


VARIANTS = dict(
    _variant(arch, size, p, frozen, optimizer)
    for arch in config["models"]["architectures"]
    for size in config["models"]["sizes"]
    for p in config["models"]["augment_p"]
    for frozen in config["models"]["frozen_random_encoder"]
    for optimizer in config["models"]["optimizers"]
)
# The study's arms: name -> {strategy: registered class (default: the name), budgets (default: all), **hyper-parameters}.
# The {strategy} wildcard and the "strategy" column of every table hold the arm's name.
ARMS = config["strategies"]
STRATEGIES = list(ARMS)
ARM_DESCRIPTIONS = {arm: strategies.describe_arm(arm, spec) for arm, spec in ARMS.items()}
ARMS_USING_SOURCE_DATA = {arm: strategies.build_arm(arm, spec).uses_source_data for arm, spec in ARMS.items()}
BUDGETS = list(config["splits"]["budgets"])
ARM_BUDGETS = {arm: strategies.arm_budgets(spec, BUDGETS) for arm, spec in ARMS.items()}
SEEDS = list(config["training"]["seeds"])
# The source→target pairs of the fine-tuning study (splits.finetune_pairs; default: every ordered pair), and those each
# arm runs on (its sources/targets among them; default: all). With one job per arm and budget (training.finetune_job
# 'strategy') a job's outputs are fixed when the workflow is parsed: the arms on fewer pairs share one set, trained by
# rule finetune_subset (config.py checks it).
PAIRS = registry.chosen_pairs(config["splits"]["finetune_pairs"], DOMAIN_NAMES)
ARM_PAIRS = {arm: strategies.arm_pairs(spec, PAIRS) for arm, spec in ARMS.items()}
SUBSET_ARMS = [arm for arm in STRATEGIES if ARM_PAIRS[arm] != PAIRS]
STUDY_PAIR_ARMS = [arm for arm in STRATEGIES if arm not in SUBSET_ARMS]
SUBSET_PAIRS = ARM_PAIRS[SUBSET_ARMS[0]] if SUBSET_ARMS else []
FOLDS = list(range(config["splits"]["n_folds"]))
# Test-time arms (budget 0): name -> {method: registered class (default: the name), sources and targets (the pairs
# it adapts; default: all), **hyper-parameters}.
TEST_TIME_ARMS = config["test_time"]
METHODS = list(TEST_TIME_ARMS)
METHOD_PAIRS = {arm: test_time.arm_pairs(spec, DOMAIN_NAMES) for arm, spec in TEST_TIME_ARMS.items()}
# Which source models each arm adapts: "plain" (the study's) or "normalized" (trained with a normalizer in front), and
# the domains that need a normalized source model.
METHOD_MODELS = {arm: test_time.build_arm(arm, spec).source_model for arm, spec in TEST_TIME_ARMS.items()}
METHODS_READING_REFERENCE = {arm for arm, spec in TEST_TIME_ARMS.items() if test_time.build_arm(arm, spec).uses_reference}
NORMALIZED_DOMAINS = [d for d in DOMAIN_NAMES if any(d == source for arm, kind in METHOD_MODELS.items()
                                                      if kind == "normalized" for source, _ in METHOD_PAIRS[arm])]
FINETUNE_JOB = config["training"]["finetune_job"]
# What one fine-tuning job covers (training.finetune_job): one arm at one budget, every seed, and one pair or all of
# them. Outputs are fixed when the workflow is parsed, so it never spans budgets: arms may run on fewer. A scoring job
# covers the same pairs and seeds at every budget of its arm (they share their test scans; see scored_runs).
FINETUNE_JOB_ID = {"pair": "{strategy}/{budget}/{source}_to_{target}", "strategy": "{strategy}/{budget}"}[FINETUNE_JOB]
SCORE_JOB_ID = {"pair": "{strategy}/{source}_to_{target}", "strategy": "{strategy}"}[FINETUNE_JOB]  # every budget
TEST_TIME_JOB_ID = {"pair": "{method}/{source}_to_{target}", "strategy": "{method}"}[FINETUNE_JOB]  # every seed


wildcard_constraints:
    case="|".join(CASES),
    variant="|".join(re.escape(v) for v in VARIANTS),
    domain="|".join(DOMAIN_NAMES),
    source="|".join(DOMAIN_NAMES),
    target="|".join(DOMAIN_NAMES),
    strategy="|".join(STRATEGIES),
    method="|".join(METHODS) or "(?!)",  # (?!) matches nothing: a study without test-time arms
    budget="|".join(BUDGETS),
    seed=r"\d+",
    fold=r"\d+",


FINETUNED_MODEL = result("models/{variant}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/model.pt")
FINETUNED_RECORD = result("models/{variant}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/record.json")
FINETUNE_SCORES = result(f"scores/{{variant}}/finetune/{SCORE_JOB_ID}.tsv")
BASELINE_SCORES = result("scores/{variant}/baseline/to_{target}/seed{seed}.tsv")  # every other domain's source model
TEST_TIME_SCORES = result(f"scores/{{variant}}/test_time/{TEST_TIME_JOB_ID}.tsv")
INTENSITY_REFERENCE = result("data/intensity_reference/{domain}.json")


def _runs(wildcards, budgets):
    """(source, target, budget, seed) of a job's runs at these budgets — for its pair, or every pair of its arm (by
    training.finetune_job) — in the order of the job's outputs: pair, then budget, then seed."""
    pairs = [(wildcards.source, wildcards.target)] if FINETUNE_JOB == "pair" else ARM_PAIRS[wildcards.strategy]
    return [(source, target, budget, str(seed)) for source, target in pairs for budget in budgets for seed in SEEDS]


def finetune_runs(wildcards):
    """The runs one fine-tuning job trains: one arm at one budget, every seed."""
    return _runs(wildcards, [wildcards.budget])


def scored_runs(wildcards):
    """The runs whose models one fine-tune scoring job scores: one arm at each of its budgets, every seed. Scoring
    covers the budgets at once because they share their test scans: a job per budget would declare the ~60 test scans
    of a target eight times over, and that (1.3 M inputs) made planning the paper's study take two minutes."""
    return _runs(wildcards, ARM_BUDGETS[wildcards.strategy])


def test_time_runs(wildcards):
    """(source, target, seed) of the source models one test-time job adapts: for its own pair, or for every pair of
    the arm (its sources and targets) when training.finetune_job is 'strategy'; ordered by pair, then seed."""
    pairs = [(wildcards.source, wildcards.target)] if FINETUNE_JOB == "pair" else METHOD_PAIRS[wildcards.method]
    return [(source, target, str(seed)) for source, target in pairs for seed in SEEDS]


def test_time_models(wildcards):
    pattern = NORMALIZED_SOURCE_MODEL if METHOD_MODELS[wildcards.method] == "normalized" else SOURCE_MODEL
    return [pattern.format(variant=wildcards.variant, domain=source, seed=seed)
            for source, _, seed in test_time_runs(wildcards)]


def test_time_references(wildcards):
    """The source domains' intensity references, for the methods that read one (none for the others)."""
    if wildcards.method not in METHODS_READING_REFERENCE:
        return []
    sources = dict.fromkeys(source for source, _, _ in test_time_runs(wildcards))
    return [INTENSITY_REFERENCE.format(domain=source) for source in sources]


def finetune_outputs(pattern, arms=None, pairs=None):
    """One path per run of a fine-tuning job (same order as finetune_runs); the job's own wildcards stay. With one job
    per arm and budget, the job's ``pairs`` (default: the study's) are expanded and its {strategy} is one of ``arms``
    (default: any)."""
    if FINETUNE_JOB == "pair":
        return expand(pattern, seed=SEEDS, allow_missing=True)
    if arms is not None:  # (?!) matches nothing: every arm runs on fewer pairs
        pattern = pattern.replace("{strategy}", "{strategy," + ("|".join(map(re.escape, arms)) or "(?!)") + "}", 1)
    pairs = PAIRS if pairs is None else pairs
    sources, targets = zip(*[(source, target) for source, target in pairs for _ in SEEDS])
    return expand(pattern, zip, source=sources, target=targets, seed=SEEDS * len(pairs), allow_missing=True)


def finetuned_models(runs):
    """Input function: the model of each run ``runs(wildcards)`` lists, in that order."""
    return lambda w: [FINETUNED_MODEL.format(variant=w.variant, strategy=w.strategy, source=source, target=target,
                                             budget=budget, seed=seed) for source, target, budget, seed in runs(w)]


def finetune_threads(wildcards):
    """A fine-tuning job's cores: training.threads for each of the runs it trains at once (training.runs_per_device)."""
    runtime = config["training"]
    return runtime["threads"] * min(runtime["runs_per_device"], len(finetune_runs(wildcards)))


def finetune_source_models(wildcards):
    """The source model each run of one fine-tuning job starts from, in the order of its runs."""
    return [SOURCE_MODEL.format(variant=wildcards.variant, domain=source, seed=seed)
            for source, _, _, seed in finetune_runs(wildcards)]


def variant_arch(wildcards):
    return VARIANTS[wildcards.variant]["arch"]


def variant_network(wildcards):
    """Param: what builds a variant's network besides its architecture — width, and resolution levels when the
    variant changes them (absent otherwise, so the study's own variants keep their params)."""
    variant = VARIANTS[wildcards.variant]
    return as_json({"width": variant["width"], **({"levels": variant["levels"]} if variant["levels"] else {})})


def source_strategy(wildcards):
    """The strategy source and oracle models of a variant train with: ft_all, or ft_decoder (frozen random encoder)."""
    return VARIANTS[wildcards.variant]["source_strategy"]


def recipe(kind):
    """Param: the sorted-JSON recipe of source/oracle ("source") or fine-tuning ("finetune") runs of a variant: the
    configured one with the variant's augmentation and optimizer (Adam: training.adam's changes; a 3D network:
    training.volumetric's)."""

    def of_variant(w):
        variant = VARIANTS[w.variant]
        settings = {**config["training"][kind], "augment_p": variant["augment_p"], "optimizer": variant["optimizer"]}
        if variant["optimizer"] == "adam":
            settings.update({k: v for k, v in config["training"]["adam"][kind].items() if v is not None})
        if variant["dims"] == 3:
            settings.update(config["training"]["volumetric"][kind])
        return as_json(settings)

    return of_variant


def as_json(value):
    """Sorted JSON: a param that only changes when the value changes (dict params compare in key order)."""
    return json.dumps(value, sort_keys=True)


SOURCE_MODEL = result("models/{variant}/source/{domain}/seed{seed}/model.pt")
SOURCE_RECORD = result("models/{variant}/source/{domain}/seed{seed}/record.json")
NORMALIZED_SOURCE_MODEL = result("models/{variant}/source_normalized/{domain}/seed{seed}/model.pt")
NORMALIZED_SOURCE_RECORD = result("models/{variant}/source_normalized/{domain}/seed{seed}/record.json")
ORACLE_MODEL = result("models/{variant}/oracle/{domain}/fold{fold}/seed{seed}/model.pt")
ORACLE_RECORD = result("models/{variant}/oracle/{domain}/fold{fold}/seed{seed}/record.json")


def baseline_sources(wildcards):
    """The domains whose source models a baseline job tests on its target: every other domain."""
    return [domain for domain in DOMAIN_NAMES if domain != wildcards.target]


def baseline_models(wildcards):
    return [SOURCE_MODEL.format(variant=wildcards.variant, domain=source, seed=wildcards.seed)
            for source in baseline_sources(wildcards)]


def run_records(wildcards):
    """Every training run's record.json (source, normalized source, oracle, fine-tuning) of one model variant."""
    return [str(Path(model).with_name("record.json")) for model in trained_models([wildcards.variant])]


def trained_models(variants=VARIANTS):
    sources = expand(SOURCE_MODEL, variant=variants, domain=DOMAIN_NAMES, seed=SEEDS)
    sources += expand(NORMALIZED_SOURCE_MODEL, variant=variants, domain=NORMALIZED_DOMAINS, seed=SEEDS)
    oracles = expand(ORACLE_MODEL, variant=variants, domain=DOMAIN_NAMES, fold=FOLDS, seed=SEEDS)
    return sources + oracles + [model for variant in variants for model in finetuned_study_models(variant)]


def finetuned_study_runs():
    """(arm, source, target, budget, seed) of every fine-tuning run of the study (each model variant has them all)."""
    return [(strategy, source, target, budget, str(seed)) for strategy in STRATEGIES
            for source, target in ARM_PAIRS[strategy] for budget in ARM_BUDGETS[strategy] for seed in SEEDS]


def finetuned_study_models(variant):
    """The model of each of finetuned_study_runs(), in that order."""
    return [FINETUNED_MODEL.format(variant=variant, strategy=strategy, source=source, target=target, budget=budget,
                                   seed=seed) for strategy, source, target, budget, seed in finetuned_study_runs()]


def score_tables():
    """Every per-model score table of the study."""
    tables = expand(result("scores/{variant}/oracle/{domain}/seed{seed}.tsv"), variant=VARIANTS, domain=DOMAIN_NAMES,
                    seed=SEEDS)
    tables += expand(BASELINE_SCORES, variant=VARIANTS, target=DOMAIN_NAMES, seed=SEEDS)
    if FINETUNE_JOB == "pair":
        tables += [FINETUNE_SCORES.format(variant=variant, strategy=strategy, source=source, target=target)
                   for variant in VARIANTS for strategy in STRATEGIES for source, target in ARM_PAIRS[strategy]]
        tables += [TEST_TIME_SCORES.format(variant=variant, method=method, source=source, target=target)
                   for variant in VARIANTS for method in METHODS for source, target in METHOD_PAIRS[method]]
    else:
        tables += expand(FINETUNE_SCORES, variant=VARIANTS, strategy=STRATEGIES)
        tables += expand(TEST_TIME_SCORES, variant=VARIANTS, method=METHODS)
    return tables


def study_outputs():
    """The study's tables and figures, per model variant."""
    tables = expand(result("tables/{variant}/{name}.{ext}"), variant=VARIANTS,
                    name=["sdice_matrix", "gap_closed", "batchnorm", "forgetting"], ext=["csv", "md", "tex"])
    tables += expand(result("tables/{variant}/{name}"), variant=VARIANTS,
                     name=["winners.tsv", "summary.json", "batchnorm_tests.tsv", "convergence.tsv", "convergence.md"])
    figures = expand(result("figures/{variant}/{name}.{ext}"), variant=VARIANTS,
                     name=["sdice_matrix", "gap_closed", "winners", "batchnorm", "forgetting", "convergence",
                           "weight_change", "similarity_cka", "similarity_pwcca"], ext=["png", "pdf"])
    return tables + figures


def weight_change_models(wildcards):
    """Each fine-tuned model of the variant (finetuned_study_runs' order), then its source models."""
    return {"models": finetuned_study_models(wildcards.variant),
            "sources": expand(SOURCE_MODEL, variant=wildcards.variant, domain=DOMAIN_NAMES, seed=SEEDS)}


SIMILARITY = config["evaluation"]["similarity"]
# Its sources and targets (default: all) among the fine-tuned pairs.
SIMILARITY_PAIRS = [pair for pair in similarity.analysed_pairs(SIMILARITY, DOMAIN_NAMES) if pair in PAIRS]


def similarity_runs():
    """The fine-tuning runs whose models the similarity analysis compares with their source models."""
    return [run for run in finetuned_study_runs() if (run[1], run[2]) in SIMILARITY_PAIRS]


def similarity_inputs(wildcards):
    """Those runs' models (in similarity_runs' order), their source models (sources × seeds) and their targets' test
    scans (one budget's: every budget tests on the same scans)."""
    sources = dict.fromkeys(source for source, _ in SIMILARITY_PAIRS)
    targets = dict.fromkeys(target for _, target in SIMILARITY_PAIRS)
    test_scans = lambda w: [c for t in targets for c in protocol.finetune_test(SCAN_ROLES, t, BUDGETS[0])]
    analysed = [model for run, model in zip(finetuned_study_runs(), finetuned_study_models(wildcards.variant))
                if (run[1], run[2]) in SIMILARITY_PAIRS]
    return {**scans_read(test_scans)(wildcards), "models": analysed,
            "sources": expand(SOURCE_MODEL, variant=wildcards.variant, domain=sources, seed=SEEDS)}


PREDICTION_QC = result("qc/predictions/{variant}")  # a folder: {arm}/{budget}.png
PREDICTION_QC_EXAMPLES = result("stats/{variant}/prediction_qc_examples.tsv")


def prediction_qc_inputs(wildcards):
    """What redraws any scored scan: the scores, every model of the variant, the references test-time arms read and
    every scan (which are the best, median and worst is known only once the scores are)."""
    sources = {source for arm in METHODS_READING_REFERENCE for source, _ in METHOD_PAIRS[arm]}
    return {**scans_read(lambda w: CASES)(wildcards), "scores": result("scores/scores.tsv"),
            "models": trained_models([wildcards.variant]),
            "references": [INTENSITY_REFERENCE.format(domain=source) for source in sorted(sources)]}


DATA_QC = result("qc/data/{domain}.png")
QC_CASE = {domain: cases[0] for domain, cases in CASES_BY_DOMAIN.items()}  # each domain's first scan is shown


# Network-size variants (models.sizes): the size figure compares the sizes of each family, width among the variants
# at the architecture's own levels, levels among those at models.width.
SIZES = {variant: {"family": spec["family"], "width": spec["width"],
                   "levels": spec["levels"] or architectures.default_levels(spec["arch"]),
                   "on_width_axis": spec["levels"] is None, "on_levels_axis": spec["width"] == config["models"]["width"]}
         for variant, spec in VARIANTS.items()}
SIZE_FIGURE = [result("figures/size_effects.png"), result("figures/size_effects.pdf"),
               result("stats/size_effects.tsv")] if len(config["models"]["sizes"]) > 1 else []


def final_outputs():
    return [result("data/integrity.tsv"), result("data/splits.json"), *expand(DATA_QC, domain=DOMAIN_NAMES),
            *study_outputs(), *expand([PREDICTION_QC, PREDICTION_QC_EXAMPLES], variant=VARIANTS),
            *SIZE_FIGURE]  # models: inputs
