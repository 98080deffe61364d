# Config validation, case lists and wildcard constraints shared by every rule file.
import functools
import json
import re
import sys

import yaml

# The library is imported from the repository, by this process and by every job's script.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from mrishift.jobenv import export_library_path

export_library_path(SRC)

from mrishift import architectures, plan, protocol, registry, similarity, strategies, test_time  # no torch
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


SCAN_SET = result("data/scan_sets/{domain}/{set}")  # protocol.SCAN_SETS: a folder of the scans many jobs read


def scans_read(cases_of=lambda w: [], sets_of=lambda w: []):
    """Input function: the splits and the scans a job reads — the preprocessed images and reference masks of the
    scans ``cases_of(wildcards)`` names, and the scan-set folders of the (domain, set) ``sets_of(wildcards)`` names,
    each read whole — so a changed scan reruns only the jobs that read it. Sets keep the full study's DAG small: its
    scoring jobs would otherwise declare ~120 scans each."""

    def inputs(wildcards):
        return {"splits": result("data/splits.json"), **scan_files_of(dict.fromkeys(cases_of(wildcards))),
                "scan_sets": [SCAN_SET.format(domain=d, set=s) for d, s in dict.fromkeys(sets_of(wildcards))]}

    return inputs


def scan_files_of(cases):
    """The preprocessed images and the reference masks of these scans."""
    return {"images": [result(f"data/preprocessed/{c}_image.nii.gz") for c in cases],
            "masks": [result(f"data/resampled/{c}_mask.nii.gz") for c in cases]}


def scan_set_files(wildcards):
    return scan_files_of(protocol.scan_set(SCAN_ROLES, wildcards.domain, wildcards.set))


# What each job reads (for scans_read), as mrishift.protocol decides it: scans, or (domain, scan set) pairs.
def source_training_sets(w):
    return [(w.domain, "source")]


def oracle_training_sets(w):
    return [(w.domain, f"fold{w.fold}")]


def finetune_training_scans(w):
    """The target scans of the job's budgets (a few per target)."""
    runs = job_runs(w)
    targets_budgets = dict.fromkeys((target, budget) for _, target, budget, _ in runs)
    return [case for target, budget in targets_budgets for case in protocol.finetune_scans(SCAN_ROLES, target, budget)]


def finetune_training_sets(w):
    """For an arm whose strategy mixes in source slices, its sources' training scans."""
    if not ARMS_USING_SOURCE_DATA.get(w.strategy):
        return []
    return [(source, "source_train") for source, _, _, _ in job_runs(w)]


def in_domain_test_sets(w):
    """The oracle folds' test scans and the source model's held-out scans (forgetting's reference): every scan."""
    return [(w.domain, "all")]


def baseline_test_sets(w):
    return [(w.target, "all")]


def finetune_score_sets(w):
    """The runs' targets' test scans, then their sources' held-out scans (forgetting)."""
    runs = job_runs(w)
    return [(target, "test") for _, target, _, _ in runs] + [(source, "heldout") for source, _, _, _ in runs]


def intensity_reference_sets(w):
    return [(w.domain, "source_train")]


def test_time_test_sets(w):
    return [(target, "test") for _, target, _ in test_time_runs(w)]


# The model variants (mrishift.plan.variants): every training, scoring and analysis stage runs once per variant.
VARIANTS = plan.variants(config)
# The study's arms: name -> {strategy: registered class (default: the name), budgets (default: all), **hyper-parameters}.
# The {strategy} wildcard and the "strategy" column of every table hold the arm's name.
ARMS = config["strategies"]
STRATEGIES = list(ARMS)
ARM_DESCRIPTIONS = {arm: strategies.describe_arm(arm, spec) for arm, spec in ARMS.items()}
ARMS_USING_SOURCE_DATA = {arm: strategies.build_arm(arm, spec).uses_source_data for arm, spec in ARMS.items()}
ARMS_FROM_SCRATCH = {arm: description["from_scratch"] for arm, description in ARM_DESCRIPTIONS.items()}
ARMS_FROM_SOURCE = [arm for arm in ARMS if not ARMS_FROM_SCRATCH[arm]]  # what weight_change and similarity compare
BUDGETS = list(config["splits"]["budgets"])
ARM_BUDGETS = {arm: strategies.arm_budgets(spec, BUDGETS) for arm, spec in ARMS.items()}
SEEDS = list(config["training"]["seeds"])
# The source→target pairs of the fine-tuning study (splits.finetune_pairs; default: every ordered pair), and those each
# arm runs on (its sources/targets among them; default: all).
PAIRS = registry.chosen_pairs(config["splits"]["finetune_pairs"], DOMAIN_NAMES)
ARM_PAIRS = {arm: strategies.arm_pairs(spec, PAIRS) for arm, spec in ARMS.items()}
FOLDS = list(range(config["splits"]["n_folds"]))
# Test-time arms (budget 0): name -> {method: registered class (default: the name), sources and targets (the pairs
# it adapts; default: all), **hyper-parameters}.
TEST_TIME_ARMS = config["test_time"]
METHODS = list(TEST_TIME_ARMS)
# The paper's reading of the study (config study): its arms among those the study runs (an overlay that replaces the
# arms may leave some out: the paper view then compares those it has and says which are missing; none listed: every
# fine-tuning arm), its paper and metric.
STUDY = config["study"]
PAPER_ARMS = [arm for arm in STUDY["arms"] if arm in STRATEGIES + METHODS] or STRATEGIES
METHOD_PAIRS = {arm: test_time.arm_pairs(spec, DOMAIN_NAMES) for arm, spec in TEST_TIME_ARMS.items()}
# Which source models each arm adapts: "plain" (the study's) or "normalized" (trained with a normalizer in front), and
# the domains that need a normalized source model.
METHOD_MODELS = {arm: test_time.build_arm(arm, spec).source_model for arm, spec in TEST_TIME_ARMS.items()}
METHODS_READING_REFERENCE = {arm for arm, spec in TEST_TIME_ARMS.items() if test_time.build_arm(arm, spec).uses_reference}
NORMALIZED_DOMAINS = [d for d in DOMAIN_NAMES if any(d == source for arm, kind in METHOD_MODELS.items()
                                                      if kind == "normalized" for source, _ in METHOD_PAIRS[arm])]
FINETUNE_JOB = config["training"]["finetune_job"]
# What one fine-tuning job covers (training.finetune_job): one arm at every budget it runs, with every seed, for one
# pair ('pair'), every source into one target ('target') or all of its pairs ('strategy'). Its runs go in one folder,
# its single output, so the full study declares ~500 fine-tuning outputs, not one per model and record (112,320);
# each run still has its own seed, model and record, at the same path whatever the grouping. A scoring and a
# test-time job cover the same pairs.
JOB_PAIRS = {"pair": "to_{target}/{source}_to_{target}", "target": "to_{target}", "strategy": ""}[FINETUNE_JOB]
FINETUNE_JOB_ID = str(Path("{strategy}", JOB_PAIRS))
SCORE_JOB_ID = FINETUNE_JOB_ID
TEST_TIME_JOB_ID = str(Path("{method}", JOB_PAIRS))

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
    set=r"all|source_train|source|test|heldout|fold\d+",


FINETUNED_RUNS = result(f"models/{{variant}}/finetune/{FINETUNE_JOB_ID}")  # a fine-tuning job's folder: its runs
FINETUNED_MODEL = result("models/{variant}/finetune/{strategy}/to_{target}/{source}_to_{target}/{budget}/seed{seed}/"
                         "model.pt")
FINETUNED_RECORD = FINETUNED_MODEL.replace("model.pt", "record.json")
FINETUNE_SCORES = result(f"scores/{{variant}}/finetune/{SCORE_JOB_ID}.tsv")
BASELINE_SCORES = result("scores/{variant}/baseline/to_{target}/seed{seed}.tsv")  # every other domain's source model
TEST_TIME_SCORES = result(f"scores/{{variant}}/test_time/{TEST_TIME_JOB_ID}.tsv")
INTENSITY_REFERENCE = result("data/intensity_reference/{domain}.json")


def job_pairs(wildcards, arm_pairs):
    """The source→target pairs of one job (training.finetune_job), among its arm's ``arm_pairs``."""
    if FINETUNE_JOB == "pair":
        return [(wildcards.source, wildcards.target)]
    return [(s, t) for s, t in arm_pairs if FINETUNE_JOB == "strategy" or t == wildcards.target]


def job_runs(wildcards):
    """(source, target, budget, seed) of the runs one fine-tuning (or scoring) job covers: one arm at each of its
    budgets, every seed, for the job's pairs; ordered by pair, then budget, then seed."""
    arm = wildcards.strategy
    return [(source, target, budget, str(seed)) for source, target in job_pairs(wildcards, ARM_PAIRS[arm])
            for budget in ARM_BUDGETS[arm] for seed in SEEDS]


def test_time_runs(wildcards):
    """(source, target, seed) of the source models one test-time job adapts, for the job's pairs among the arm's;
    ordered by pair, then seed."""
    return [(source, target, str(seed)) for source, target in job_pairs(wildcards, METHOD_PAIRS[wildcards.method])
            for seed in SEEDS]


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


def finetuned_run_files(pattern, runs):
    """Param: the path (``pattern``: FINETUNED_MODEL or FINETUNED_RECORD) of each run ``runs(wildcards)`` lists, in
    that order, inside the fine-tuning folders the job declares."""
    return lambda w: [pattern.format(variant=w.variant, strategy=w.strategy, source=source, target=target,
                                     budget=budget, seed=seed) for source, target, budget, seed in runs(w)]


def finetuned_folders(variant, runs):
    """The fine-tuning job folders that hold these (arm, source, target, budget, seed) runs' models and records."""
    return list(dict.fromkeys(FINETUNED_RUNS.format(variant=variant, strategy=strategy, source=source, target=target)
                              for strategy, source, target, _, _ in runs))


def job_files(pattern, variant, arm_key, arm_pairs):
    """``pattern`` (a path with the job's wildcards) for every job of every arm: one per arm and pair, target or arm
    (training.finetune_job)."""
    return list(dict.fromkeys(pattern.format(variant=variant, **{arm_key: arm}, source=source, target=target)
                              for arm, pairs in arm_pairs.items() for source, target in pairs))


def finetune_threads(wildcards):
    """A fine-tuning job's cores: training.threads for each of the runs it trains at once (training.runs_per_device)."""
    runtime = config["training"]
    return runtime["threads"] * min(runtime["runs_per_device"], len(job_runs(wildcards)))


def finetune_source_models(wildcards):
    """The source models one fine-tuning job's runs start from (each source and seed once; none from scratch)."""
    return list(dict.fromkeys(start for start in finetune_starts(wildcards) if start))


def finetune_starts(wildcards):
    """Param: the source model each run of the job starts from, in the order of its runs (among its inputs); "" for
    an arm trained from scratch."""
    if ARMS_FROM_SCRATCH[wildcards.strategy]:
        return ["" for _ in job_runs(wildcards)]
    return [SOURCE_MODEL.format(variant=wildcards.variant, domain=source, seed=seed)
            for source, _, _, seed in job_runs(wildcards)]


def finetune_recipe(wildcards):
    """Param: the recipe of the job's arm: the fine-tuning one, or the source one for an arm trained from scratch."""
    return recipe("source" if ARMS_FROM_SCRATCH[wildcards.strategy] else "finetune")(wildcards)


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


def trained_files(variant, name="model.pt"):
    """(declared inputs, files) of every training run of one variant — source, normalized source, oracle and
    fine-tuning: each run's ``name`` (model.pt or record.json); the inputs name the fine-tuning job folders instead
    of their ~9,000 files (the full study), the files are what a job reads, in that order."""
    inputs, files = _trained_files(variant, name)
    return list(inputs), list(files)


@functools.cache
def _trained_files(variant, name):
    """trained_files, computed once per variant and name: three rules ask, and the full study's lists are long."""
    own = [model.removesuffix("model.pt") + name for model in
           expand(SOURCE_MODEL, variant=variant, domain=DOMAIN_NAMES, seed=SEEDS)
           + expand(NORMALIZED_SOURCE_MODEL, variant=variant, domain=NORMALIZED_DOMAINS, seed=SEEDS)
           + expand(ORACLE_MODEL, variant=variant, domain=DOMAIN_NAMES, fold=FOLDS, seed=SEEDS)]
    finetuned = [model.removesuffix("model.pt") + name for model in finetuned_study_models(variant)]
    return own + finetuned_folders(variant, finetuned_study_runs()), own + finetuned


def finetuned_study_runs(from_source_only=False):
    """(arm, source, target, budget, seed) of every fine-tuning run of the study (each model variant has them all);
    ``from_source_only``: of the arms that start from a source model (what weight_change and similarity compare)."""
    return [(strategy, source, target, budget, str(seed)) for strategy in STRATEGIES
            if not (from_source_only and ARMS_FROM_SCRATCH[strategy])
            for source, target in ARM_PAIRS[strategy] for budget in ARM_BUDGETS[strategy] for seed in SEEDS]


def finetuned_study_models(variant, runs=None):
    """The model of each of these runs (default: finetuned_study_runs()), in that order."""
    runs = finetuned_study_runs() if runs is None else runs
    return [FINETUNED_MODEL.format(variant=variant, strategy=strategy, source=source, target=target, budget=budget,
                                   seed=seed) for strategy, source, target, budget, seed in runs]


def score_tables():
    """Every per-model score table of the study."""
    tables = expand(result("scores/{variant}/oracle/{domain}/seed{seed}.tsv"), variant=VARIANTS, domain=DOMAIN_NAMES,
                    seed=SEEDS)
    tables += expand(BASELINE_SCORES, variant=VARIANTS, target=DOMAIN_NAMES, seed=SEEDS)
    for variant in VARIANTS:
        tables += job_files(FINETUNE_SCORES, variant, "strategy", ARM_PAIRS)
        tables += job_files(TEST_TIME_SCORES, variant, "method", METHOD_PAIRS)
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
    paper = expand(result("tables/{variant}/paper_{name}.{ext}"), variant=VARIANTS, name=["gap_closed", "scores"],
                   ext=["csv", "md", "tex"])
    paper += expand(result("figures/{variant}/paper_{name}.{ext}"), variant=VARIANTS, name=["winners", "gap_closed"],
                    ext=["png", "pdf"])
    return tables + figures + paper + [result("tables/paper_vs_ours.md")]


def weight_change_models(wildcards):
    """The variant's fine-tuning folders (the models: weight_change's param), then its source models."""
    return {"models": finetuned_folders(wildcards.variant, finetuned_study_runs(from_source_only=True)),
            "sources": expand(SOURCE_MODEL, variant=wildcards.variant, domain=DOMAIN_NAMES, seed=SEEDS)}


SIMILARITY = config["evaluation"]["similarity"]
# Its sources and targets (default: all) among the fine-tuned pairs.
SIMILARITY_PAIRS = [pair for pair in similarity.analysed_pairs(SIMILARITY, DOMAIN_NAMES) if pair in PAIRS]


def similarity_runs():
    """The fine-tuning runs whose models the similarity analysis compares with their source models."""
    return [run for run in finetuned_study_runs(from_source_only=True) if (run[1], run[2]) in SIMILARITY_PAIRS]


def similarity_inputs(wildcards):
    """The fine-tuning folders of those runs (their models: similarity's param), their source models (sources ×
    seeds) and their targets' test scans."""
    sources = dict.fromkeys(source for source, _ in SIMILARITY_PAIRS)
    targets = dict.fromkeys(target for _, target in SIMILARITY_PAIRS)
    return {**scans_read(sets_of=lambda w: [(target, "test") for target in targets])(wildcards),
            "models": finetuned_folders(wildcards.variant, similarity_runs()),
            "sources": expand(SOURCE_MODEL, variant=wildcards.variant, domain=sources, seed=SEEDS)}


PREDICTION_QC = result("qc/predictions/{variant}")  # a folder: {arm}/{budget}.png
PREDICTION_QC_EXAMPLES = result("stats/{variant}/prediction_qc_examples.tsv")


def prediction_qc_inputs(wildcards):
    """What redraws any scored scan: the scores, every model of the variant (the fine-tuned ones in their job
    folders), the references test-time arms read and every scan (which are the best, median and worst is known only
    once the scores are)."""
    sources = {source for arm in METHODS_READING_REFERENCE for source, _ in METHOD_PAIRS[arm]}
    return {**scans_read(sets_of=lambda w: [(domain, "all") for domain in DOMAIN_NAMES])(wildcards),
            "scores": result("scores/scores.tsv"), "models": trained_files(wildcards.variant)[0],
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
