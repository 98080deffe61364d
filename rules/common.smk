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

from mrishift import strategies
from mrishift.config import apply_overlay, validate_config
from mrishift.data.cc359 import DOMAINS, case_id
from mrishift.data.synthetic import subject_ids

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


def domain_scans(domains):
    """Input function: the splits and the preprocessed images and reference masks of the domains a job reads —
    ``domains(wildcards)`` names them — and no others, so a changed scan reruns only the jobs of its domain and the
    DAG of the full study stays small."""

    def inputs(wildcards):
        cases = [c for d in domains(wildcards) for c in CASES_BY_DOMAIN[d]]
        return {"splits": result("data/splits.json"),
                "images": [result(f"data/preprocessed/{c}_image.nii.gz") for c in cases],
                "masks": [result(f"data/resampled/{c}_mask.nii.gz") for c in cases]}

    return inputs


# A model variant = an architecture trained without or with augmentation (models.augment_p); every training,
# scoring and analysis stage runs once per variant. The variant without augmentation is named after its architecture.
VARIANTS = {
    (arch if p == 0 else f"{arch}_aug{p:g}"): {"arch": arch, "augment_p": p}
    for arch in config["models"]["architectures"]
    for p in config["models"]["augment_p"]
}
# The study's arms: name -> {strategy: registered class (default: the name), budgets (default: all), **hyper-parameters}.
# The {strategy} wildcard and the "strategy" column of every table hold the arm's name.
ARMS = config["strategies"]
STRATEGIES = list(ARMS)
ARM_DESCRIPTIONS = {arm: strategies.describe_arm(arm, spec) for arm, spec in ARMS.items()}
BUDGETS = list(config["splits"]["budgets"])
ARM_BUDGETS = {arm: strategies.arm_budgets(spec, BUDGETS) for arm, spec in ARMS.items()}
SEEDS = list(config["training"]["seeds"])
PAIRS = [(s, t) for s in DOMAIN_NAMES for t in DOMAIN_NAMES if s != t]
FOLDS = list(range(config["splits"]["n_folds"]))
FINETUNE_JOB = config["training"]["finetune_job"]
# What one fine-tuning/scoring job covers (training.finetune_job): one arm at one budget, every seed, and one pair or
# all of them. Outputs are fixed when the workflow is parsed, so a job never spans budgets: arms may run on fewer.
FINETUNE_JOB_ID = {"pair": "{strategy}/{budget}/{source}_to_{target}", "strategy": "{strategy}/{budget}"}[FINETUNE_JOB]


wildcard_constraints:
    case="|".join(CASES),
    variant="|".join(re.escape(v) for v in VARIANTS),
    domain="|".join(DOMAIN_NAMES),
    source="|".join(DOMAIN_NAMES),
    target="|".join(DOMAIN_NAMES),
    strategy="|".join(STRATEGIES),
    budget="|".join(BUDGETS),
    seed=r"\d+",
    fold=r"\d+",


FINETUNED_MODEL = result("models/{variant}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/model.pt")
FINETUNED_RECORD = result("models/{variant}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/record.json")
FINETUNE_SCORES = result("scores/{variant}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}.tsv")


def _job_runs(pairs):
    return [(source, target, str(seed)) for source, target in pairs for seed in SEEDS]


def finetune_runs(wildcards):
    """(source, target, budget, seed) of every run of one fine-tuning job, in the order of its outputs."""
    pairs = [(wildcards.source, wildcards.target)] if FINETUNE_JOB == "pair" else PAIRS
    return [(source, target, wildcards.budget, seed) for source, target, seed in _job_runs(pairs)]


def finetune_outputs(pattern):
    """One path per run of a fine-tuning job (same order as finetune_runs); the job's own wildcards stay."""
    if FINETUNE_JOB == "pair":
        return expand(pattern, seed=SEEDS, allow_missing=True)
    sources, targets, seeds = (list(column) for column in zip(*_job_runs(PAIRS)))
    return expand(pattern, zip, source=sources, target=targets, seed=seeds, allow_missing=True)


def finetune_threads(wildcards):
    """A fine-tuning job's cores: training.threads for each of the runs it trains at once (training.runs_per_device)."""
    runtime = config["training"]
    return runtime["threads"] * min(runtime["runs_per_device"], len(finetune_runs(wildcards)))


def finetune_domains(wildcards):
    """The domains whose scans one fine-tuning (or its scoring) job reads: its target, or every domain."""
    return [wildcards.target] if FINETUNE_JOB == "pair" else DOMAIN_NAMES


def finetune_source_models(wildcards):
    """The source model each run of one fine-tuning job starts from, in the order of its runs."""
    return [SOURCE_MODEL.format(variant=wildcards.variant, domain=source, seed=seed)
            for source, _, _, seed in finetune_runs(wildcards)]


def variant_arch(wildcards):
    return VARIANTS[wildcards.variant]["arch"]


def recipe(kind):
    """Param: the sorted-JSON recipe of source/oracle ("source") or fine-tuning ("finetune") runs of a variant."""
    return lambda w: as_json({**config["training"][kind], "augment_p": VARIANTS[w.variant]["augment_p"]})


def as_json(value):
    """Sorted JSON: a param that only changes when the value changes (dict params compare in key order)."""
    return json.dumps(value, sort_keys=True)


SOURCE_MODEL = result("models/{variant}/source/{domain}/seed{seed}/model.pt")
SOURCE_RECORD = result("models/{variant}/source/{domain}/seed{seed}/record.json")
PAIR_SOURCE_MODEL = result("models/{variant}/source/{source}/seed{seed}/model.pt")  # a pair's source model
ORACLE_MODEL = result("models/{variant}/oracle/{domain}/fold{fold}/seed{seed}/model.pt")
ORACLE_RECORD = result("models/{variant}/oracle/{domain}/fold{fold}/seed{seed}/record.json")


def run_records(wildcards):
    """Every training run's record.json (source, oracle, fine-tuning) of one model variant."""
    return [str(Path(model).with_name("record.json")) for model in trained_models([wildcards.variant])]


def trained_models(variants=VARIANTS):
    sources = expand(SOURCE_MODEL, variant=variants, domain=DOMAIN_NAMES, seed=SEEDS)
    oracles = expand(ORACLE_MODEL, variant=variants, domain=DOMAIN_NAMES, fold=FOLDS, seed=SEEDS)
    finetuned = [
        FINETUNED_MODEL.format(variant=variant, strategy=strategy, source=source, target=target, budget=budget,
                               seed=seed)
        for variant in variants for strategy in STRATEGIES for source, target in PAIRS
        for budget in ARM_BUDGETS[strategy] for seed in SEEDS
    ]
    return sources + oracles + finetuned


def score_tables():
    """Every per-model score table of the study."""
    tables = expand(result("scores/{variant}/oracle/{domain}/seed{seed}.tsv"), variant=VARIANTS, domain=DOMAIN_NAMES,
                    seed=SEEDS)
    tables += expand(result("scores/{variant}/baseline/{source}/seed{seed}.tsv"), variant=VARIANTS,
                     source=DOMAIN_NAMES, seed=SEEDS)
    tables += [FINETUNE_SCORES.format(variant=variant, strategy=strategy, source=source, target=target, budget=budget,
                                      seed=seed)
               for variant in VARIANTS for strategy in STRATEGIES for source, target in PAIRS
               for budget in ARM_BUDGETS[strategy] for seed in SEEDS]
    return tables


def study_outputs():
    """The study's tables and figures, per model variant."""
    tables = expand(result("tables/{variant}/{name}.{ext}"), variant=VARIANTS,
                    name=["sdice_matrix", "gap_closed", "batchnorm"], ext=["csv", "md", "tex"])
    tables += expand(result("tables/{variant}/{name}"), variant=VARIANTS,
                     name=["winners.tsv", "summary.json", "batchnorm_tests.tsv", "convergence.tsv", "convergence.md"])
    figures = expand(result("figures/{variant}/{name}.{ext}"), variant=VARIANTS,
                     name=["sdice_matrix", "gap_closed", "winners", "batchnorm", "convergence"], ext=["png", "pdf"])
    return tables + figures


def final_outputs():
    return [result("data/integrity.tsv"), result("data/splits.json"), *trained_models(), *study_outputs()]
