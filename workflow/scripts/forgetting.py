"""How much of its source domain each fine-tuned model forgets (rule forgetting): the source model's and the fine-tuned
model's surface Dice on the source's held-out scans, as a table and a figure per model variant."""

from mrishift.analysis import stats
from mrishift.evaluation.scoring import read_scores
from mrishift.io import write_table
from mrishift.logs import log_to
from mrishift.reporting import plots, tables

log = log_to(snakemake)
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
scores = read_scores(snakemake.input.scores)
per_pair = stats.forgetting_per_pair(scores[scores.variant == variant])
log.info("%s: %d fine-tuned models on their sources' held-out scans", variant, len(per_pair))
write_table(out.per_pair, per_pair)
numbers, text = tables.forgetting_table(per_pair, [s for s in params.strategies if s in set(per_pair.strategy)])
metric = f"surface Dice at {params.tolerance_mm:g} mm"
tables.write_table(text, out.table.removesuffix(".csv"),
                   f"Forgetting: {metric} on the source domain's held-out scans (its source models' validation scans, "
                   "which no run trains on), before → after fine-tuning, mean over the arm's fine-tuned models "
                   "(pairs × seeds; in brackets the std of the change); first row: the source models themselves.",
                   numbers=numbers)
plots.save(plots.forgetting_figure(per_pair, params.strategies, metric,
                                   f"{variant}: what fine-tuning forgets of the source domain"),
           out.figure, out.figure_pdf)
