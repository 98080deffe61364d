# What the study is (mrishift.plan.Plan: scans, variants, arms, pairs, budgets, runs and their jobs), where its files
# live (path templates), and the input functions every rule file shares. Rule-specific input functions live beside
# their rules.
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

from mrishift.models import architectures  # no torch

from mrishift import plan

from mrishift.adaptation import strategies, test_time
from mrishift.config import apply_overlay, validate_config
from mrishift.data import protocol

for overlay in workflow.config_settings.configfiles:  # each --configfile's arms and budgets replace, in order
    apply_overlay(config, yaml.safe_load(Path(overlay).read_text()) or {})
validate_config(config)  # fills defaults; stops the parse with a message naming any bad key
PLAN = plan.Plan(config)
RESULTS = config["results"]
ENV = "../envs/mrishift.yaml"
EVALUATION = config["evaluation"]
# Asked by several rules' params and input functions, per job (the full study: tens of thousands of runs): listed once.
FINETUNE_RUNS_FROM_SOURCE = PLAN.finetune_runs(from_source_only=True)  # what weight_change and similarity compare
SIMILARITY_RUNS = PLAN.similarity_runs()
MODEL_SIMILARITY_RUNS = PLAN.model_similarity_runs()
SNAPSHOT_RUNS = PLAN.snapshot_runs()
RAW_DATASET = "resources/synthetic_cc359" if config["data"]["source"] == "synthetic" else "resources/cc359"
# What one fine-tuning, scoring or test-time job covers (training.finetune_job): one arm at every budget it runs, with
# every seed, for one pair ('pair'), every source into one target ('target') or all of its pairs ('strategy'). Its
# runs go in one folder, its single output, so the full study declares ~500 fine-tuning outputs, not one per model
# and record (112,320); each run still has its own seed, model and record, at the same path whatever the grouping.
JOB_PAIRS = {"pair": "to_{target}/{source}_to_{target}", "target": "to_{target}", "strategy": ""}[PLAN.finetune_job]
FINETUNE_JOB_ID = str(Path("{strategy}", JOB_PAIRS))
TEST_TIME_JOB_ID = str(Path("{method}", JOB_PAIRS))


def result(path):
    """A path under the study's results folder (config key ``results``, default ``results``)."""
    return f"{RESULTS}/{path}"


wildcard_constraints:
    case="|".join(PLAN.cases),
    variant="|".join(re.escape(v) for v in PLAN.variants),
    domain="|".join(PLAN.domains),
    source="|".join(PLAN.domains),
    target="|".join(PLAN.domains),
    strategy="|".join(PLAN.strategies),
    method="|".join(PLAN.methods) or "(?!)",  # (?!) matches nothing: a study without test-time arms
    budget="|".join(PLAN.budgets),
    seed=r"\d+",
    fold=r"\d+",
    set=r"all|source_train|source|test|heldout|fold\d+",


SCAN_SET = result("data/scan_sets/{domain}/{set}")  # protocol.SCAN_SETS: a folder of the scans many jobs read
SOURCE_MODEL = result("models/{variant}/source/{domain}/seed{seed}/model.pt")
SOURCE_RECORD = SOURCE_MODEL.replace("model.pt", "record.json")
NORMALIZED_SOURCE_MODEL = result("models/{variant}/source_normalized/{domain}/seed{seed}/model.pt")
NORMALIZED_SOURCE_RECORD = NORMALIZED_SOURCE_MODEL.replace("model.pt", "record.json")
ORACLE_MODEL = result("models/{variant}/oracle/{domain}/fold{fold}/seed{seed}/model.pt")
ORACLE_RECORD = ORACLE_MODEL.replace("model.pt", "record.json")
FINETUNED_RUNS = result(f"models/{{variant}}/finetune/{FINETUNE_JOB_ID}")  # a fine-tuning job's folder: its runs
FINETUNED_MODEL = result("models/{variant}/finetune/{strategy}/to_{target}/{source}_to_{target}/{budget}/seed{seed}/"
                         "model.pt")
FINETUNED_RECORD = FINETUNED_MODEL.replace("model.pt", "record.json")
FINETUNE_SCORES = result(f"scores/{{variant}}/finetune/{FINETUNE_JOB_ID}.tsv")
BASELINE_SCORES = result("scores/{variant}/baseline/to_{target}/seed{seed}.tsv")  # every other domain's source model
ORACLE_SCORES = result("scores/{variant}/oracle/{domain}/seed{seed}.tsv")
TEST_TIME_SCORES = result(f"scores/{{variant}}/test_time/{TEST_TIME_JOB_ID}.tsv")
INTENSITY_REFERENCE = result("data/intensity_reference/{domain}.json")
DATA_QC = result("qc/data/{domain}.png")
PREDICTION_QC = result("qc/predictions/{variant}")  # a folder: {arm}/{budget}.png
PREDICTION_QC_EXAMPLES = result("stats/{variant}/prediction_qc_examples.tsv")
# What makes each kind of model a job reads, by score role or source-model kind: a damaged model file's error says
# it (delete the file, rerun that rule). The library never names a rule; the jobs get these as a param.
MADE_BY = {role: f"rule {rule}" for role, rule in {
    "oracle": "train_oracle", "baseline": "train_source", "source": "train_source", "finetune": "finetune",
    "forgetting": "finetune", "plain": "train_source", "normalized": "train_source_normalized"}.items()}


def as_json(value):
    """Sorted JSON: a param that only changes when the value changes (dict params compare in key order)."""
    return json.dumps(value, sort_keys=True)


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


def job_runs(w):
    """(source, target, budget, seed) of the runs one fine-tuning (or scoring) job covers (Plan.job_runs)."""
    return PLAN.job_runs(w.strategy, w.get("source"), w.get("target"))


def job_run_params(w):
    """Param: job_runs, each run that keeps snapshots (Plan.snapshot_runs) with {"snapshots": its steps} appended
    (part of its identity); the other runs as before, so adding snapshots to some runs retrains only those jobs."""
    keeping = {tuple(run[1:]) for run in SNAPSHOT_RUNS if run[0] == w.strategy}
    return [[*run, {"snapshots": PLAN.snapshot_steps}] if tuple(run) in keeping else list(run) for run in job_runs(w)]


def test_time_runs(w):
    """(source, target, seed) of the source models one test-time job adapts (Plan.test_time_runs)."""
    return PLAN.test_time_runs(w.method, w.get("source"), w.get("target"))


def finetuned_run_files(pattern, runs):
    """Param: the path (``pattern``: FINETUNED_MODEL or FINETUNED_RECORD) of each run ``runs(wildcards)`` lists, in
    that order, inside the fine-tuning folders the job declares."""
    return lambda w: [pattern.format(variant=w.variant, strategy=w.strategy, source=source, target=target,
                                     budget=budget, seed=seed) for source, target, budget, seed in runs(w)]


def finetuned_folders(variant, runs):
    """The fine-tuning job folders that hold these (arm, source, target, budget, seed) runs' models and records."""
    return list(dict.fromkeys(FINETUNED_RUNS.format(variant=variant, strategy=strategy, source=source, target=target)
                              for strategy, source, target, _, _ in runs))


def sources_started_from(runs):
    """(source, seed) of the source models these (arm, source, target, budget, seed) runs started from, each once (none
    for an arm trained from scratch): a job's ``sources`` param, in the order of its source-model inputs."""
    return list(dict.fromkeys((source, seed) for arm, source, _, _, seed in runs if not PLAN.arms_from_scratch[arm]))


def finetuned_models(variant, runs, pattern=FINETUNED_MODEL):
    """The model (``pattern``: or the record, FINETUNED_RECORD) of each of these (arm, source, target, budget, seed)
    runs, in that order."""
    return [pattern.format(variant=variant, strategy=strategy, source=source, target=target, budget=budget,
                           seed=seed) for strategy, source, target, budget, seed in runs]


def job_files(pattern, variant, arm_key, arm_pairs):
    """``pattern`` (a path with the job's wildcards) for every job of every arm (training.finetune_job)."""
    return list(dict.fromkeys(pattern.format(variant=variant, **{arm_key: arm}, source=source, target=target)
                              for arm, pairs in arm_pairs.items() for source, target in pairs))


def recipe(kind):
    """Param: the sorted-JSON recipe (Plan.recipe) of source/oracle ("source") or fine-tuning ("finetune") runs."""
    return lambda w: as_json(PLAN.recipe(w.variant, kind))


def variant_arch(wildcards):
    return PLAN.variants[wildcards.variant]["arch"]


def variant_network(wildcards):
    return as_json(PLAN.network(wildcards.variant))


@functools.cache
def trained_files(variant, name="model.pt"):
    """(declared inputs, files) of every training run of one variant — source, normalized source, oracle and
    fine-tuning: each run's ``name`` (model.pt or record.json); the inputs name the fine-tuning job folders instead
    of their ~9,000 files (the full study), the files are what a job reads, in that order. Computed once per variant
    and name: three rules ask, and the full study's lists are long."""
    own = [model.removesuffix("model.pt") + name for model in
           expand(SOURCE_MODEL, variant=variant, domain=PLAN.domains, seed=PLAN.seeds)
           + expand(NORMALIZED_SOURCE_MODEL, variant=variant, domain=PLAN.normalized_domains, seed=PLAN.seeds)
           + expand(ORACLE_MODEL, variant=variant, domain=PLAN.domains, fold=PLAN.folds, seed=PLAN.seeds)]
    runs = PLAN.finetune_runs()
    finetuned = [model.removesuffix("model.pt") + name for model in finetuned_models(variant, runs)]
    return own + finetuned_folders(variant, runs), own + finetuned
