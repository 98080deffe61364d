"""Gap closed, winners with sign tests, and the study's tables for one model variant (rule analyse)."""

import pandas as pd

from mrishift import stats, tables
from mrishift.io import write_json, write_table
from mrishift.logs import log_to

log = log_to(snakemake.log[0])
params, out = snakemake.params, snakemake.output
scores = pd.read_csv(snakemake.input.scores, sep="\t", dtype={"budget": str, "seed": str, "fold": str},
                     keep_default_na=False, na_values=[""])
scores = scores[scores.variant == snakemake.wildcards.variant]
metric = "sdice"

mean, std = stats.sdice_matrix(scores, metric)
tables.write_table(tables.sdice_matrix_table(mean, std), out.matrix.removesuffix(".csv"),
                   f"Surface Dice at {params.tolerance_mm:g} mm, mean (std) over scans: rows = target domain, "
                   "columns = source domain, diagonal = oracle (3-fold CV).", numbers=mean)

per_scan = stats.per_scan_gap_closed(scores, metric)
per_pair = stats.per_pair_gap_closed(per_scan, metric)
gap_mean, gap_table = tables.gap_closed_table(per_pair, params.strategies)
tables.write_table(gap_table, out.gap_closed.removesuffix(".csv"),
                   f"Gap closed (0 = no adaptation, 1 = oracle), mean (std) over {per_pair.groupby(['source', 'target']).ngroups}"
                   " source→target pairs, per strategy (rows) and target-data budget (columns).", numbers=gap_mean)
winners = stats.winners(per_scan, params.strategies, params.significance, metric)
write_table(out.per_scan, per_scan)
write_table(out.per_pair, per_pair)
write_table(out.winners, winners)

baseline, oracle = scores[scores.role == "baseline"][metric], scores[scores.role == "oracle"][metric]
summary = {
    "metric": f"surface Dice at {params.tolerance_mm:g} mm",
    "oracle_mean": float(oracle.mean()),
    "baseline_mean": float(baseline.mean()),
    "baseline_on_pair_test_scans_mean": float(per_scan.drop_duplicates(["source", "case"]).baseline.mean()),
    "gap_closed_mean": {s: {b: float(gap_mean.loc[s, b]) for b in gap_mean.columns} for s in gap_mean.index},
    "wins": {b: group.winner.value_counts().to_dict() for b, group in winners.groupby("budget")},
    "significant_wins": {b: group[group.significant].winner.value_counts().to_dict()
                         for b, group in winners.groupby("budget")},
    "undefined_gap_closed_pairs": int(per_pair.gap_closed.isna().sum()),
}
write_json(out.summary, summary)
log.info("oracle %.3f, baseline %.3f; gap closed:\n%s", summary["oracle_mean"], summary["baseline_mean"], gap_table)
