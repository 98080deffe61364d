"""Test-time adaptation (rule adapt_score): each test scan of a pair adapted on its own, with no label, from the
pair's source model, then scored; one tidy table per job, one row per (source model, test scan), budget 0, with the
method's label-free loss on the scan at the source model and at the adapted network (``loss_before``,
``loss_after``; empty for a method that minimises none)."""

import json
from pathlib import Path

import pandas as pd
import torch

from mrishift import usage
from mrishift.adaptation import test_time
from mrishift.data import protocol
from mrishift.data.scans import scan_files
from mrishift.evaluation.scoring import (
    IDENTITY_COLUMNS,
    SCORE_COLUMNS,
    ScanCache,
    score_scans,
)
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.models.inputs import resolve_device
from mrishift.training.runs import load_model

LOSS_COLUMNS = ["loss_before", "loss_after"]
log = log_to(snakemake)
params, wildcards = snakemake.params, dict(snakemake.wildcards.items())
makers = json.loads(params.made_by)  # what makes each model a job reads (named when one is damaged)
torch.set_num_threads(snakemake.threads)
splits = json.loads(Path(snakemake.input.splits).read_text())["domains"]
runtime = snakemake.config
device = resolve_device(runtime["training"]["device"])

method = test_time.build_arm(wildcards["method"], json.loads(params.hparams))
references = {json.loads(Path(path).read_text())["domain"]: test_time.SourceReference.read(path)
              for path in snakemake.input.references}
scans = ScanCache(scan_files(snakemake.input.images, snakemake.input.masks, snakemake.input.scan_sets),
                  runtime["evaluation"]["scan_cache_mb"])
runs = list(zip(json.loads(params.runs), snakemake.input.models, strict=True))
tables = []
for (source, target, seed), model_path in progress(runs, "test_time"):
    cases = protocol.test_time_test(splits, target)
    log.info("%s: %s adapted to each of %d scans of %s", method.arm, model_path, len(cases), target)
    model = load_model(model_path, made_by=makers[method.source_model])
    adapt, losses = method.for_run(model, references, device, source, target, seed), []

    def adapt_and_keep_loss(image):
        adapted = adapt(image)
        losses.append(method.volume_loss())  # score_scans adapts the cases in order, one call each
        return adapted

    table = score_scans(model, cases, scans, params.tolerance_mm, runtime["evaluation"]["batch_size"], device,
                        runtime["training"]["bf16"], adapt_and_keep_loss)
    identity = {"variant": wildcards["variant"], "role": "test_time", "strategy": method.arm, "source": source,
                "target": target, "budget": test_time.ZERO_BUDGET, "seed": seed, "fold": ""}
    table[LOSS_COLUMNS] = losses
    usage.count("volumes", len(cases))
    tables.append(table.assign(**identity)[IDENTITY_COLUMNS + SCORE_COLUMNS + LOSS_COLUMNS])
write_table(snakemake.output.table, pd.concat(tables, ignore_index=True))
