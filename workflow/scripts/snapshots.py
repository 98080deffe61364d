"""Fine-tuning runs through training, from the models they kept at training.snapshots' steps (rule snapshots):

* each block's similarity to where the run started (its source model; a scratch arm's seeded initialisation) on the
  pair's test slices, per step (the FCN study's Figs 6-7 ask it of the convergence epoch; we ask it of the start);
* the held-out score per step: surface Dice and Dice on the target's splits.n_finetune_validation scans, which no
  budget trains on and which are not test scans (the FCN study's Figs 2 and 4); none where the study keeps the
  paper's test set (n_finetune_validation 0: the figure says so);
* for the first pair and seed, a t-SNE of each slice's bottleneck features, per run and step, coloured as the
  gradient-transfer study's Fig. 1: the source site (its held-out scans), the target's training slices (the run's
  budget) and the target's test scans."""

import json

import numpy as np
import torch

from mrishift import usage
from mrishift.analysis.embedding import tsne
from mrishift.analysis.model_jobs import grouped, in_run_order, model_job
from mrishift.analysis.paper_view import metric_words
from mrishift.data import protocol
from mrishift.evaluation import features
from mrishift.evaluation.scoring import validation_scores
from mrishift.evaluation.similarity import MEASURES, block_similarity, evenly_spaced
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.models.inputs import network_inputs
from mrishift.reporting import plots, through_training
from mrishift.training.jobs import snapshot_path

log = log_to(snakemake)
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
job = model_job(snakemake)
evaluation = snakemake.config["evaluation"]
runs = list(zip(json.loads(params.runs), params.models, params.records, strict=True))
shown = tuple(runs[0][0][1:3]) + (runs[0][0][4],) if runs else None  # (source, target, seed) of the t-SNE


def training_slices(target: str, run_budget: str, model) -> torch.Tensor:
    """The budget's labelled slices of the target (a 3D network: every window of its training scans)."""
    data = protocol.finetune_training(job.splits, target, run_budget)
    volumes = [network_inputs(model, job.scans[case][0], job.device) for case in data.cases]
    if getattr(model, "dims", 2) == 2:
        volumes = [volume[chosen] for volume, chosen in zip(volumes, data.slices, strict=True)]
    return evenly_spaced(volumes, job.slices)


similarity, scores, panels, pair_slices, starts = [], [], [], {}, {}
# the runs come grouped by pair, and the job holds the current pair's slices and starts only
for index, ((arm, source, target, run_budget, seed), path, record) in progress(
        grouped(runs, lambda run: tuple(run[0][1:3])), "snapshot runs"):
    keys = {"run": index, "variant": variant, "strategy": arm, "source": source, "target": target,
            "budget": run_budget, "seed": seed}
    if (source, target) not in pair_slices:  # the pair's test slices, and the source's held-out ones (t-SNE)
        pair_slices.clear()
        starts.clear()
        model = job.load(path)
        pair_slices[(source, target)] = (job.test_slices(target, model),
                                         job.slices_of(protocol.source_heldout(job.splits, source), model))
    slices, source_slices = pair_slices[(source, target)]
    scratch = arm in params.scratch_arms
    started = (arm, source, target, run_budget, seed) if scratch else (source, target, seed)  # a source model: once
    if started not in starts:
        starts[started] = job.activations(job.start(scratch, source, seed, path, record), source, target, slices)
    held_out = protocol.finetune_validation(job.splits, target)
    usage.count("models", len(params.steps))
    for step in params.steps:
        snapshot = job.load(snapshot_path(path, step)).to(job.device)
        similarity += [{**keys, "step": step, **row}
                       for row in block_similarity(starts[started], job.activations(snapshot, source, target, slices))]
        if held_out:
            scores.append({**keys, "step": step, **validation_scores(
                snapshot, held_out, job.scans, evaluation["tolerance_mm"], evaluation["batch_size"],
                snakemake.config["training"]["device"])})
        if (source, target, seed) == shown:
            groups = {"source site": source_slices, "target train": training_slices(target, run_budget, snapshot),
                      "target test": slices}
            points = np.concatenate([features.bottleneck_features(snapshot, s) for s in groups.values()])
            panels.append((f"{arm} {run_budget}", step, tsne(points, params.seed),
                           [name for name, s in groups.items() for _ in range(len(s))]))


similarity = in_run_order(similarity, ["variant", "strategy", "source", "target", "budget", "seed", "step", "block",
                                       "depth", *MEASURES])
scores = in_run_order(scores, ["variant", "strategy", "source", "target", "budget", "seed", "step", "sdice", "dice"])
write_table(out.similarity, similarity)
write_table(out.scores, scores)
log.info("%d runs, %d snapshots each; mean held-out score per arm, budget and step:\n%s", len(runs),
         len(params.steps), scores.groupby(["strategy", "budget", "step"])[["sdice", "dice"]].mean().to_string())
plots.save(through_training.similarity_through_training(
    similarity, "cka", "linear CKA with the start", params.arms,
    f"{variant}: each stage's linear CKA with where the run started (source model; a scratch arm's initialisation) "
    "through fine-tuning"), out.similarity_png, out.similarity_pdf)
sdice = metric_words("sdice", evaluation["tolerance_mm"])
plots.save(through_training.score_through_training(
    scores, "sdice", f"held-out {sdice}", params.arms,
    f"{variant}: {sdice} on the targets' held-out scans through fine-tuning (mean over pairs and seeds)"),
    out.scores_png, out.scores_pdf)
pair = f"{shown[0]} → {shown[1]}, seed {shown[2]}" if shown else ""
plots.save(through_training.embedding_through_training(
    panels, f"{variant}: t-SNE of each slice's mean bottleneck features through fine-tuning, {pair}"),
    out.tsne_png, out.tsne_pdf)
