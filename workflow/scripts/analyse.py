"""Gap closed, winners with sign tests, the BatchNorm-mode comparison, and the study's tables for one model variant
(rule analyse)."""

import json

import pandas as pd

from mrishift.analysis import bootstrap, paper_view, stats
from mrishift.evaluation.scoring import read_scores
from mrishift.io import write_json, write_table
from mrishift.logs import log_to
from mrishift.reporting import tables

log = log_to(snakemake)
params, out = snakemake.params, snakemake.output
scores = read_scores(snakemake.input.scores)
scores = scores[scores.variant == snakemake.wildcards.variant]
metric = params.metric  # study.metric: the matrix, gap closed and tests are of this metric
words = paper_view.metric_words(metric, params.tolerance_mm)

resampling = params.bootstrap
interval_words = (f"[{resampling['level']:.0%} bootstrap interval: {resampling['samples']} replicates, seed "
                  f"{resampling['seed']}")
mean, std = stats.sdice_matrix(scores, metric)
low, high = bootstrap.sdice_matrix_intervals(scores, resampling["samples"], resampling["seed"], resampling["level"],
                                             metric)
tables.write_table(tables.sdice_matrix_table(mean, std, low, high), out.matrix.removesuffix(".csv"),
                   f"{words[0].upper() + words[1:]}, mean (std) {interval_words}, scans resampled] over "
                   "scans: rows = target domain, columns = source domain, diagonal = oracle (3-fold CV).",
                   numbers=mean)
write_table(out.matrix_intervals, pd.concat({"low": low.stack(), "high": high.stack()}, axis=1)
            .rename_axis(["target", "source"]).reset_index())

per_scan = stats.per_scan_gap_closed(scores, metric, params.min_gap)
per_pair = stats.per_pair_gap_closed(per_scan, metric, params.min_gap)
intervals = bootstrap.gap_closed_intervals(per_scan, per_pair, resampling["samples"], resampling["seed"],
                                           resampling["level"], metric, params.min_gap)
gap_mean, gap_table = tables.gap_closed_table(per_pair, params.strategies, intervals)
n_pairs = per_pair.groupby(["source", "target"]).ngroups
arm_pairs = per_pair.groupby("strategy")[["source", "target"]].apply(lambda d: len(d.drop_duplicates()))
# an arm run on fewer pairs (strategies/test_time: sources, targets) says so
gap_table.index = [arm if arm_pairs.get(arm, n_pairs) == n_pairs
                   else f"{arm} ({arm_pairs[arm]} pair{'s' if arm_pairs[arm] > 1 else ''})" for arm in gap_table.index]
n_defined = per_pair.dropna(subset=["gap_closed"]).groupby(["source", "target"]).ngroups
spread = "std over the seeds' means" if per_pair.seed.nunique() > 1 else "std over pairs"
tables.write_table(gap_table, out.gap_closed.removesuffix(".csv"),
                   f"Our view: gap closed of {words} (0 = no adaptation, 1 = oracle), mean ({spread}) "
                   f"{interval_words}, pairs then their test scans resampled, pairs treated as independent although each source model serves "
                   "several; conditional on the trained models] over the "
                   f"{n_defined} of {n_pairs} source→target pairs with an oracle−baseline gap of at least "
                   f"{params.min_gap:g} (the paper's view, paper_gap_closed, keeps every pair), per strategy (rows) and "
                   "target-data budget (columns).", numbers=gap_mean)
winners = stats.winners(per_scan, params.strategies, params.significance, metric, params.min_gap)

# Statistics vs weights: arms that differ only in their frozen layers' BatchNorm mode, and statistics-only arms.
arms = json.loads(params.arms)
bn_pairs = stats.batchnorm_arm_pairs(arms)
statistics_arms = stats.statistics_only_arms(arms)
bn_rows = [arm for pair in bn_pairs for arm in pair] + statistics_arms
bn_mean, bn_table = tables.gap_closed_table(per_pair[per_pair.strategy.isin(bn_rows)], bn_rows, intervals)
bn_table.index = [f"{arm} ({'statistics only' if arm in statistics_arms else 'frozen BN: ' + arms[arm]['hparams']['frozen_bn']})"
                  for arm in bn_table.index]
declared_pairs = {arm: set(map(tuple, pairs)) for arm, pairs in json.loads(params.arm_pairs).items()}
bn_tests = pd.concat([stats.compare_arms(per_scan, a, b, params.significance, metric, params.min_gap,
                                         pairs=declared_pairs[a] & declared_pairs[b])
                      for a, b in bn_pairs] or [pd.DataFrame()], ignore_index=True)
counts = []
for (a, b, budget), group in (bn_tests.groupby(["arm_a", "arm_b", "budget"], sort=False) if len(bn_tests) else []):
    counts.append(f"{a} vs {b} at {budget}: {a} better in {(group.better == a).sum()} pairs "
                  f"({(group.significant & (group.better == a)).sum()} significant), {b} better in "
                  f"{(group.better == b).sum()} ({(group.significant & (group.better == b)).sum()} significant)")
tables.write_table(bn_table, out.batchnorm.removesuffix(".csv"),
                   f"Statistics vs weights. Gap closed, mean (std) {interval_words}] over pairs, of each arm whose "
                   "frozen layers' "
                   "BatchNorm statistics follow the target ('train', the public code) or stay the source's ('eval'), and "
                   "of statistics-only arms (every BatchNorm layer re-estimated on the budget's slices, no weight moves). "
                   f"Paired sign tests per pair on per-scan {words} (p < {params.significance:g}): "
                   + ("; ".join(counts) if counts else "no arms differ only in their BatchNorm mode") + ".",
                   numbers=bn_mean)
write_table(out.batchnorm_tests, bn_tests)
write_table(out.per_scan, per_scan)
write_table(out.per_pair, per_pair)
write_table(out.gap_closed_intervals, intervals)
write_table(out.winners, winners)

baseline, oracle = scores[scores.role == "baseline"][metric], scores[scores.role == "oracle"][metric]
summary = {
    "metric": words,
    "oracle_mean": float(oracle.mean()),
    "baseline_mean": float(baseline.mean()),
    "baseline_on_pair_test_scans_mean": float(per_scan.drop_duplicates(["source", "case"]).baseline.mean()),
    "gap_closed_mean": {s: {b: float(gap_mean.loc[s, b]) for b in gap_mean.columns if pd.notna(gap_mean.loc[s, b])}
                        for s in gap_mean.index},  # an arm run on fewer budgets has no value at the others
    "wins": {b: group.winner.value_counts().to_dict() for b, group in winners.groupby("budget")},
    "significant_wins": {b: group[group.significant].winner.value_counts().to_dict()
                         for b, group in winners.groupby("budget")},
    "gap_closed_interval": {s: {r.budget: [r.low, r.high] for r in g.itertuples() if pd.notna(r.low)}
                            for s, g in intervals.groupby("strategy", sort=False)},
    "bootstrap": resampling,
    "gap_closed_median": {s: {b: float(v) for b, v in g.groupby("budget").gap_closed.median().items()}
                          for s, g in per_pair.groupby("strategy")},
    "min_gap": params.min_gap,
    "pairs_without_gap": sorted({f"{r.source}→{r.target}" for r in per_pair[per_pair.gap_closed.isna()].itertuples()}),
    "pairs_with_oracle_below_baseline": sorted({f"{r.source}→{r.target}" for r in per_pair[
        per_pair.oracle < per_pair.baseline].itertuples()}),
    "batchnorm_comparisons": counts,
}
write_json(out.summary, summary)
log.info("oracle %.3f, baseline %.3f; gap closed:\n%s", summary["oracle_mean"], summary["baseline_mean"], gap_table)
