"""Prediction QC (rule prediction_qc): the best, median and worst scan (by sDice) of every arm at every budget, the
baseline and the oracle, predicted again by the model that was scored on it (test-time arms adapt it again, with the
run's own seed), drawn with both contours and where surface Dice loses; one figure per arm and budget."""

import json
from pathlib import Path

import pandas as pd
import torch

from mrishift import usage
from mrishift.adaptation import test_time
from mrishift.analysis import stats
from mrishift.data.scans import scan_files
from mrishift.evaluation import metrics, qc
from mrishift.evaluation.scoring import ScanCache, predict_volume, read_scores
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.models.inputs import resolve_device
from mrishift.reporting import plots
from mrishift.training.runs import load_model

# Re-predicting on the CPU gives the scored mask bit for bit; on a GPU, kernels may round differently. Beyond this the
# figure would show another prediction than the one scored: a wrong model or scan, never rounding.
SAME_SCORE = 0.01

log = log_to(snakemake)
params, inputs, variant = snakemake.params, snakemake.input, snakemake.wildcards.variant
makers = json.loads(params.made_by)  # what makes each model a job reads (named when one is damaged)
torch.set_num_threads(snakemake.threads)
runtime = snakemake.config
device = resolve_device(runtime["training"]["device"])
patterns = json.loads(params.model_patterns)
methods = {arm: test_time.build_arm(arm, spec) for arm, spec in json.loads(params.test_time).items()}
references = {json.loads(Path(path).read_text())["domain"]: test_time.SourceReference.read(path)
              for path in inputs.references}
declared = [Path(path) for path in inputs.models]  # files, and the fine-tuning job folders
scans = ScanCache(scan_files(inputs.images, inputs.masks, inputs.scan_sets), runtime["evaluation"]["scan_cache_mb"])

ROLES_AS_ARMS = ["baseline", "oracle"]  # drawn (and excluded) under their role's name; every other arm by its own
scores = read_scores(inputs.scores)
# the study's rows: forgetting's (a model on its source's held-out scans) are not a target-domain prediction
scores = scores[(scores["variant"] == variant) & scores["role"].isin(ROLES_AS_ARMS + list(stats.ADAPTED_ROLES))]
drawn_as = scores["strategy"].where(~scores["role"].isin(ROLES_AS_ARMS), scores["role"])
chosen = qc.examples(scores[~drawn_as.isin(params.exclude)])
if params.exclude:  # a name that is not an arm (an overlay replaced the arms) excludes nothing
    absent = sorted(set(params.exclude) - set(drawn_as))
    log.info("not drawn (evaluation.prediction_qc.exclude): %s%s", ", ".join(params.exclude),
             f"; not arms of this study, ignored: {', '.join(absent)}" if absent else "")
log.info("%s: %d examples of %d arms and budgets", variant, len(chosen), len(chosen) // len(qc.EXAMPLES))


def figure_name(row) -> tuple[str, str]:
    """(arm, budget) of a score row, the figure's folder and name: the arm as drawn_as names it."""
    budget = {"baseline": "source_model", "oracle": "target_folds"}.get(row.role, row.budget)
    return (row.role if row.role in ROLES_AS_ARMS else row.strategy), budget


def model_of(row) -> tuple[str, str]:
    """(path, what makes it: the workflow's made_by param) of the model scored in a row."""
    if row.role == "finetune":
        path = patterns["finetune"].format(variant=variant, strategy=row.strategy, source=row.source,
                                           target=row.target, budget=row.budget, seed=row.seed)
        return path, makers["finetune"]
    if row.role == "oracle":
        return patterns["oracle"].format(variant=variant, domain=row.target, fold=row.fold,
                                         seed=row.seed), makers["oracle"]
    kind = methods[row.strategy].source_model if row.role == "test_time" else "plain"
    return patterns[f"source_{kind}"].format(variant=variant, domain=row.source, seed=row.seed), makers[kind]


def predict(row):
    path, made_by = model_of(row)
    if not any(Path(path) == given or given in Path(path).parents for given in declared):
        raise ValueError(f"{path}: the model of {row.strategy} {row.source}→{row.target} is not an input of this job")
    image, reference, spacing = scans[row.case]
    network = load_model(path, made_by=made_by)
    if row.role == "test_time":
        adapt = methods[row.strategy].for_run(network, references, device, row.source, row.target, row.seed)
        network, image = adapt(image)
    predicted = predict_volume(network, image, runtime["evaluation"]["batch_size"], device,
                               runtime["training"]["bf16"])
    return image, reference, predicted, spacing


def label(row) -> str:
    origin = f"{row.target} fold {row.fold}" if row.role == "oracle" else f"{row.source}→{row.target}"
    return f"{row.example} of {row.of}: {row.case}\n{origin}, seed {row.seed}\nsDice {row.sdice:.3f}"


redrawn = []
for _, group in progress(list(chosen.groupby(["role", "strategy", "budget"], sort=False, dropna=False)),
                         "prediction_qc"):
    panels = []
    for row in group.itertuples(index=False):
        image, reference, predicted, spacing = predict(row)
        sdice = metrics.surface_dice(reference, predicted, spacing, params.tolerance_mm)
        if abs(sdice - row.sdice) > SAME_SCORE:
            raise ValueError(f"{row.case} under {row.strategy} {row.source}→{row.target} seed {row.seed}: re-predicted "
                             f"sDice {sdice:.4f}, scored {row.sdice:.4f} — not the prediction that was scored")
        missed, spurious = metrics.surface_misses(reference, predicted, spacing, params.tolerance_mm)
        panels.append(qc.Prediction(label(row), image, reference, predicted, missed, spurious, spacing))
        redrawn.append({**row._asdict(), "sdice_redrawn": sdice})
        usage.count("volumes")
    first = group.iloc[0]
    name, budget_name = figure_name(first)
    title = (f"{variant}: {name} at budget {budget_name}: best, median and worst of {first.of} scored scans "
             f"(tolerance {params.tolerance_mm:g} mm)")
    plots.save(qc.prediction_figure(panels, title), Path(snakemake.output.figures) / name / f"{budget_name}.png")
    log.info("%s %s: sDice %s", name, budget_name, ", ".join(f"{p:.3f}" for p in group.sdice))
write_table(snakemake.output.examples, pd.DataFrame(redrawn))
