"""Gap closed per arm against network width and depth across the study's size variants (rule size_effects)."""

import json

import pandas as pd

from mrishift.analysis import stats
from mrishift.evaluation.scoring import read_scores
from mrishift.io import write_table
from mrishift.logs import log_to
from mrishift.reporting import plots

log = log_to(snakemake)
params, out = snakemake.params, snakemake.output
sizes = json.loads(params.sizes)
per_pair = pd.concat([read_scores(path).assign(variant=variant)
                      for variant, path in zip(params.variants, snakemake.input.per_pair, strict=True)])
table = stats.gap_closed_by_size(per_pair, sizes)
log.info("%d variants, %d arm-budget means", len(sizes), len(table))
write_table(out.table, table)
plots.save(plots.size_effects_figure(table, params.strategies, "gap closed against network width and depth"),
           out.figure, out.figure_pdf)
