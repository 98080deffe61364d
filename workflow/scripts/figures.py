"""The study's figures for one model variant (rule figures)."""

import json

from mrishift.analysis import stats
from mrishift.evaluation.scoring import read_scores
from mrishift.logs import log_to
from mrishift.reporting import plots

log = log_to(snakemake)
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
scores = read_scores(snakemake.input.scores)
mean, std = stats.sdice_matrix(scores[scores.variant == variant])
ends = read_scores(snakemake.input.matrix_intervals).pivot(index="target", columns="source")
metric = f"surface Dice at {params.tolerance_mm:g} mm"
plots.save(plots.sdice_matrix_figure(mean, std, metric, f"{variant}: cross-domain {metric} (diagonal = oracle; "
                                     f"{params.bootstrap['level']:.0%} bootstrap intervals)", ends["low"], ends["high"]),
           out.matrix_png, out.matrix_pdf)
per_pair = read_scores(snakemake.input.per_pair)
intervals = read_scores(snakemake.input.gap_closed_intervals)
plots.save(plots.gap_closed_figure(per_pair, params.strategies, f"{variant}: share of the domain-shift gap closed",
                                   intervals), out.gap_closed_png, out.gap_closed_pdf)
arms = json.loads(params.arms)
statistics_arms = stats.statistics_only_arms(arms)
plots.save(plots.batchnorm_figure(per_pair, stats.batchnorm_arm_pairs(arms), statistics_arms,
                                  f"{variant}: BatchNorm statistics vs weights", intervals),
           out.batchnorm_png, out.batchnorm_pdf)
winners = read_scores(snakemake.input.winners)
plots.save(plots.winners_figure(winners, params.strategies, params.significance,
                                f"{variant}: best strategy per source→target pair (sign test)"),
           out.winners_png, out.winners_pdf)
