"""Each fine-tuned model's per-block representation similarity to its source model on its pair's test slices, and
the figures (rule similarity)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mrishift.data import protocol
from mrishift.data.scans import scan_files
from mrishift.evaluation.scoring import ScanCache
from mrishift.evaluation.similarity import MEASURES, block_activations, block_similarity
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.models.inputs import network_inputs, resolve_device
from mrishift.reporting import plots
from mrishift.seeding import seed_hash
from mrishift.training.runs import load_model

log = log_to(snakemake.log[0])
params, variant = snakemake.params, snakemake.wildcards.variant
makers = json.loads(params.made_by)  # what makes each model a job reads (named when one is damaged)
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.config["training"]["device"])
splits = json.loads(Path(snakemake.input.splits).read_text())["domains"]
budget = snakemake.config["splits"]["budgets"][0]  # every budget of a pair tests on the same scans
scans = ScanCache(scan_files(snakemake.input.images, snakemake.input.masks, snakemake.input.scan_sets))
source_paths = {tuple(key): path for key, path in zip(params.sources, snakemake.input.sources, strict=True)}


def test_slices(target: str, model) -> torch.Tensor:
    """``params.slices`` axial slices (padded to the model's stride), or a 3D model's sliding windows, evenly spaced
    through the target's test scans (in order)."""
    volumes = [network_inputs(model, scans[case][0], device) for case in protocol.finetune_test(splits, target, budget)]
    every = torch.cat(volumes)
    return every[np.linspace(0, len(every) - 1, min(params.slices, len(every))).round().astype(int)]


reference_cache = {}


def reference(source: str, target: str, seed: str):
    """The source model's block activations on the pair's slices (computed once per pair and seed)."""
    if (source, target, seed) not in reference_cache:
        model = load_model(source_paths[(source, seed)], made_by=makers["source"]).to(device)
        slices = test_slices(target, model)
        reference_cache[(source, target, seed)] = (slices, block_activations(
            model, slices, params.positions, seed_hash(params.seed, source, target)))
    return reference_cache[(source, target, seed)]


rows = []
for (strategy, source, target, run_budget, seed), path in progress(
        list(zip(json.loads(params.runs), params.models, strict=True)), "similarity"):
    slices, before = reference(source, target, seed)
    model = load_model(path, made_by=makers["finetune"]).to(device)
    after = block_activations(model, slices, params.positions, seed_hash(params.seed, source, target))
    rows += [{"variant": variant, "strategy": strategy, "source": source, "target": target, "budget": run_budget,
              "seed": seed, **row} for row in block_similarity(before, after)]
table = pd.DataFrame(rows)
write_table(snakemake.output.table, table)
labels = {"cka": "linear CKA with the source model", "pwcca": "PWCCA with the source model"}  # MEASURES' keys
for measure, png, pdf in (("cka", snakemake.output.cka, snakemake.output.cka_pdf),
                          ("pwcca", snakemake.output.pwcca, snakemake.output.pwcca_pdf)):
    plots.save(plots.block_profile_figure(table, measure, labels[measure], params.strategies,
                                          f"{variant}: {labels[measure]} per block on the pair's test slices "
                                          f"(mean and quartiles over {table.groupby(['source', 'target']).ngroups} "
                                          "pairs)"), png, pdf)
log.info("%d fine-tuned models; mean similarity per arm and budget:\n%s", len(table) // table.block.nunique(),
         table.groupby(["strategy", "budget"])[list(MEASURES)].mean().to_string())
