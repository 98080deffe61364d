"""The study as its paper reads it, for one model variant (rule paper_view): gap closed of every pair, winners and
sign tests among the paper's arms (DART 2020's Figs. 2 and 3), and the absolute-score table."""

from mrishift.analysis import paper_view, stats
from mrishift.evaluation.scoring import read_scores
from mrishift.io import write_table
from mrishift.logs import log_to
from mrishift.reporting import plots, tables

log = log_to(snakemake)
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
scores = read_scores(snakemake.input.scores)
scores = scores[scores.variant == variant]
arms, metric, bootstrap = params.arms, params.metric, params.bootstrap
per_scan = stats.per_scan_gap_closed(scores)

pairs = paper_view.per_pair(per_scan, arms, "sdice", params.min_gap)
numbers, table, intervals, spread = paper_view.gap_closed_table(pairs, arms, bootstrap)
flagged = sorted({f"{r.source}→{r.target}" for r in pairs[pairs.small_gap].itertuples()})
tables.write_table(table, out.gap_closed.removesuffix(".csv"),
                   f"Gap closed (DR = (D − D_baseline) / (D_oracle − D_baseline), surface Dice at "
                   f"{params.tolerance_mm:g} mm) of the paper's arms over every one of the "
                   f"{pairs.groupby(['source', 'target']).ngroups} pairs, as the paper averages them: {spread}. Pairs "
                   f"whose oracle − baseline gap is below {params.min_gap:g} are kept (our own gap-closed table leaves "
                   f"them out): {', '.join(flagged) or 'none'}.", numbers=numbers)
write_table(out.per_pair, pairs)

winners = stats.winners(per_scan[per_scan.strategy.isin(arms)], arms, params.significance, min_gap=None,
                        tested="gap_closed")
write_table(out.winners, winners)
counts = paper_view.winner_counts(winners, arms)
write_table(out.winner_counts, counts)
plots.save(plots.winners_figure(winners, arms, params.significance,
                                f"{variant}: best of the paper's arms per source→target pair (sign test on per-scan "
                                "gap closed)"), out.winners_png, out.winners_pdf)
plots.save(plots.gap_closed_figure(pairs.groupby(["strategy", "budget", "source", "target"], sort=False)
                                   .gap_closed.mean().reset_index(), arms,
                                   f"{variant}: gap closed of the paper's arms, every pair", intervals),
           out.gap_closed_png, out.gap_closed_pdf)

scored = paper_view.with_reference_scores(per_scan, scores, metric)
numbers, table, _, spread = paper_view.score_table(scored, arms, metric, bootstrap)
tables.write_table(table, out.scores.removesuffix(".csv"),
                   f"{paper_view.metric_words(metric, params.tolerance_mm)} of the paper's arms per target-data "
                   f"budget, and of the unadapted source model and the oracle on the same test scans: {spread}.",
                   numbers=numbers)
log.info("paper arms %s; wins per budget:\n%s", arms, counts)
