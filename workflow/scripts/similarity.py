"""Each fine-tuned model's per-block representation similarity to its source model on its pair's test slices, and
the figures (rule similarity); for the first analysed pair and seed, every model's first-layer filters and first-block
feature maps on one of the pair's test slices beside its source model's."""

import json

import torch

from mrishift import usage
from mrishift.analysis.model_jobs import grouped, in_run_order, model_job
from mrishift.evaluation import features
from mrishift.evaluation.similarity import MEASURES, block_similarity
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.reporting import plots

log = log_to(snakemake)
params, variant = snakemake.params, snakemake.wildcards.variant
job = model_job(snakemake)


FILTERS, MAPS = 16, 8  # first-layer channels drawn
runs = list(zip(json.loads(params.runs), params.models, strict=True))
shown = tuple(runs[0][0][1:3]) + (runs[0][0][4],) if runs else None  # (source, target, seed) of the first run
filters, maps, shown_source = [], [], []


def first_layer(label: str, model, slices: torch.Tensor, change: str = "") -> None:
    """The model's first-layer filters and its first block's feature maps on the shown pair's middle test slice."""
    filters.append((f"{label}{change}", features.first_filters(model, FILTERS)))
    maps.append((label, features.first_block_maps(model, slices[len(slices) // 2:][:1], MAPS)))


reference_held = {}  # the current pair and seed's only: the runs come grouped by them


def reference(source: str, target: str, seed: str):
    """The source model's block activations on the pair's slices (computed once per pair and seed); for the shown
    pair, also its first layer, and the model is kept to measure the fine-tuned models' first-layer change."""
    if (source, target, seed) not in reference_held:
        reference_held.clear()
        model = job.load(job.source_paths[(source, seed)], "source").to(job.device)
        slices = job.test_slices(target, model)
        reference_held[(source, target, seed)] = (slices, job.activations(model, source, target, slices))
        if (source, target, seed) == shown:
            shown_source.append(model)
            first_layer("source model", model, slices)
    return reference_held[(source, target, seed)]


rows = []
for index, ((strategy, source, target, run_budget, seed), path) in progress(
        grouped(runs, lambda run: (run[0][1], run[0][2], run[0][4])), "similarity"):
    slices, before = reference(source, target, seed)
    model = job.load(path).to(job.device)
    after = job.activations(model, source, target, slices)
    if (source, target, seed) == shown:
        first_layer(f"{strategy} {run_budget}", model, slices,
                    f" (Δw {features.relative_change(model, shown_source[0]):.1%})")
    rows += [{"run": index, "variant": variant, "strategy": strategy, "source": source, "target": target,
              "budget": run_budget, "seed": seed, **row} for row in block_similarity(before, after)]
    usage.count("models")
table = in_run_order(rows)
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
if shown:
    pair = f"{shown[0]} → {shown[1]}, seed {shown[2]}"
    plots.save(plots.first_layer_figure(filters, f"{variant}: the first convolution's first {FILTERS} filters, {pair} "
                                        "(Δw: relative change from the source model)", symmetric=True),
               snakemake.output.filters, snakemake.output.filters_pdf)
    plots.save(plots.first_layer_figure(maps, f"{variant}: the first block's first {MAPS} feature maps on the middle "
                                        f"test slice of {pair}", symmetric=False),
               snakemake.output.feature_maps, snakemake.output.feature_maps_pdf)
