"""Each fine-tuned model's relative weight change per block from its source model, and its figure (rule
weight_change)."""

import json
from itertools import product

import pandas as pd

from mrishift.evaluation.weight_change import block_parameters, relative_change
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.reporting import plots
from mrishift.training.runs import load_saved, same_network, saved_network

log = log_to(snakemake)
params, variant = snakemake.params, snakemake.wildcards.variant
makers = json.loads(params.made_by)  # what makes each model a job reads (named when one is damaged)
sources = {key: load_saved(path, made_by=makers["source"])
           for key, path in zip(product(params.domains, params.seeds), snakemake.input.sources, strict=True)}
architecture = next(iter(sources.values()))
blocks = block_parameters(saved_network(architecture))
tables = []
for (strategy, source, target, budget, seed), path in progress(
        list(zip(json.loads(params.runs), params.models, strict=True)), "weight_change"):
    saved = load_saved(path, made_by=makers["finetune"])
    if not same_network(saved, architecture):
        raise ValueError(f"{path}: a {saved['arch']} of width {saved['width']} ({saved.get('levels')} levels), its "
                         f"source models are {architecture['arch']} of width {architecture['width']} "
                         f"({architecture.get('levels')} levels)")
    table = relative_change(saved["model"], sources[(source, seed)]["model"], blocks)
    tables.append(table.assign(variant=variant, strategy=strategy, source=source, target=target, budget=budget,
                               seed=seed))
changes = pd.concat(tables, ignore_index=True)
write_table(snakemake.output.table, changes[["variant", "strategy", "source", "target", "budget", "seed", "block",
                                             "depth", "parameters", "relative_change"]])
plots.save(plots.block_profile_figure(changes, "relative_change", "‖w − w_source‖ / ‖w_source‖", params.strategies,
                                      f"{variant}: how far fine-tuning moved each block (mean and quartiles over "
                                      "pairs)"), snakemake.output.figure, snakemake.output.figure_pdf)
means = changes.groupby(["strategy", "budget"]).relative_change.mean()
log.info("%d fine-tuned models; mean relative change per arm and budget:\n%s", len(tables), means.to_string())
