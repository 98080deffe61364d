"""The test-time loss as a predictor of failure (rule test_time_loss): each adapted scan's loss at the source model
against the unadapted source model's score, with Spearman's rho per arm and per target
(mrishift.analysis.loss_predictor)."""

import pandas as pd

from mrishift.analysis import loss_predictor
from mrishift.analysis.paper_view import metric_words
from mrishift.evaluation.scoring import read_scores
from mrishift.io import write_table
from mrishift.logs import log_to
from mrishift.reporting import plots, tables

log = log_to(snakemake)
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
scores = read_scores(snakemake.input.scores)
adapted = pd.concat([read_scores(path) for path in snakemake.input.tables], ignore_index=True)
rows = loss_predictor.loss_and_unadapted_score(adapted[adapted.variant == variant], scores, params.metric)
write_table(out.per_scan, rows)
boot = params.bootstrap
found = loss_predictor.correlations(rows, boot["samples"], boot["seed"], boot["level"])
log.info("%s: %d adapted scans; Spearman rho of loss before adapting and unadapted %s:\n%s", variant, len(rows),
         params.metric, found.to_string())
metric = metric_words(params.metric, params.tolerance_mm)
text = found.assign(rho=[f"{r:.2f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in zip(found.rho, found.low, found.high)])
text = text[["strategy", "target", "pairs", "n", "rho", "p", "mean_loss_before", "mean_loss_after", "mean_unadapted"]]
tables.write_table(text.round(4).set_index("strategy"), out.table.removesuffix(".csv"),
                   f"The test-time loss as a predictor: Spearman's ρ [{boot['level']:.0%} bootstrap interval over "
                   f"scans] of each adapted scan's loss before adapting with the unadapted source model's {metric}, "
                   "per arm over all its scans and per target domain.", numbers=found.set_index(["strategy", "target"]))
plots.save(plots.loss_predictor_figure(rows, found, metric,
                                       f"{variant}: the loss before adapting vs the unadapted score"),
           out.figure, out.figure_pdf)
