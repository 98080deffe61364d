"""The study's three figures for one model variant (rule figures)."""

import pandas as pd

from mrishift import plots, stats
from mrishift.logs import log_to

log = log_to(snakemake.log[0])
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
read = dict(sep="\t", dtype={"budget": str, "seed": str, "fold": str}, keep_default_na=False, na_values=[""])
scores = pd.read_csv(snakemake.input.scores, **read)
mean, std = stats.sdice_matrix(scores[scores.variant == variant])
metric = f"surface Dice at {params.tolerance_mm:g} mm"
plots.save(plots.sdice_matrix_figure(mean, std, metric, f"{variant}: cross-domain {metric} (diagonal = oracle)"),
           out.matrix_png, out.matrix_pdf)
per_pair = pd.read_csv(snakemake.input.per_pair, **read)
plots.save(plots.gap_closed_figure(per_pair, params.strategies, f"{variant}: share of the domain-shift gap closed"),
           out.gap_closed_png, out.gap_closed_pdf)
winners = pd.read_csv(snakemake.input.winners, **read)
plots.save(plots.winners_figure(winners, params.strategies, params.significance,
                                f"{variant}: best strategy per source→target pair (sign test)"),
           out.winners_png, out.winners_pdf)
