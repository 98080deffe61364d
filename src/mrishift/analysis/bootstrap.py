"""Bootstrap confidence intervals of the study's headline numbers: percentile intervals, seeded per cell.

Two designs:

- a mean over scans (an sDice-matrix cell): scans resampled with replacement (``scipy.stats.bootstrap``);
- the mean gap closed over pairs (a gap-closed table cell), hierarchical (scipy has no two-level bootstrap): pairs
  resampled with replacement, then, inside each drawn pair, its test scans (each draw of a pair gets its own scan
  resample). A pair's gap closed is
  recomputed from its resampled scans — (mean score − mean baseline) / (mean oracle − mean baseline), score,
  baseline and oracle of a scan kept together (paired) — so both the between-pair spread and the few test scans
  per pair widen the interval.

Only pairs whose gap closed is defined in the data (oracle − baseline ≥ min_gap) enter, as in the point estimate; a
resampled pair whose gap falls below min_gap is left out of that replicate's mean. Each cell draws from its own
generator, seeded from ``seed`` and the cell's name, so an interval does not depend on which other cells a study has.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from mrishift.analysis import stats
from mrishift.analysis.stats import GAP_EPS, matrix_cells
from mrishift.seeding import seed_hash


def percentile_interval(replicates, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates (NaN replicates ignored)."""
    replicates = np.asarray(replicates, dtype=float)
    replicates = replicates[~np.isnan(replicates)]
    if replicates.size == 0:
        return np.nan, np.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def _resampled_means(values: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` bootstrap means of each column of ``values`` (scans × k): shape (draws, k)."""
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    return values[picks].mean(axis=1)


def mean_interval(values, samples: int, seed: int, level: float = 0.95, name: str = "") -> tuple[float, float]:
    """Interval of the mean of ``values`` (e.g. one domain pair's per-scan scores), scans resampled (scipy's
    percentile bootstrap)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or np.isnan(values).any():
        raise ValueError(f"bootstrap of {name or 'a mean'}: needs finite values, got {values.size} with NaN")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])  # every resample is the same mean (scipy would warn)
    result = scipy.stats.bootstrap((values,), np.mean, n_resamples=samples, confidence_level=level,
                                   method="percentile", rng=np.random.default_rng(seed_hash(seed, "mean", name)))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def gap_closed_interval(pairs: list[np.ndarray], samples: int, seed: int, level: float = 0.95,
                        min_gap: float = GAP_EPS, name: str = "") -> tuple[float, float]:
    """Hierarchical interval of the mean gap closed over pairs. ``pairs``: one (scans × 3) array per pair whose gap
    closed is defined, columns score, baseline, oracle of each test scan (seed-averaged)."""
    if not pairs:
        return np.nan, np.nan
    rng = np.random.default_rng(seed_hash(seed, "gap_closed", name))
    drawn = rng.integers(0, len(pairs), size=(samples, len(pairs)))  # which pair fills each slot of each replicate
    gap_closed = np.empty(drawn.shape)
    for index, scans in enumerate(pairs):
        slots = drawn == index
        score, baseline, oracle = _resampled_means(np.asarray(scans, dtype=float), int(slots.sum()), rng).T
        gap_closed[slots] = stats.gap_closed(score, baseline, oracle, min_gap)
    defined = ~np.isnan(gap_closed)
    counts = defined.sum(axis=1)
    means = np.where(counts > 0, np.where(defined, gap_closed, 0).sum(axis=1) / np.maximum(counts, 1), np.nan)
    return percentile_interval(means, level)


def gap_closed_intervals(per_scan: pd.DataFrame, per_pair: pd.DataFrame, samples: int, seed: int, level: float,
                         metric: str = "sdice", min_gap: float = GAP_EPS) -> pd.DataFrame:
    """(strategy, budget) -> low, high of the mean gap closed over the pairs where it is defined (``per_pair``'s
    non-NaN rows, any seed), from ``per_scan`` (stats.per_scan_gap_closed) averaged over seeds per scan."""
    defined = set(per_pair.dropna(subset=["gap_closed"])[["strategy", "budget", "source", "target"]]
                  .itertuples(index=False, name=None))
    by_scan = per_scan.groupby(["strategy", "budget", "source", "target", "case"], sort=False)[
        [metric, "baseline", "oracle"]].mean()
    rows = []
    for (strategy, budget), cell in by_scan.groupby(level=["strategy", "budget"], sort=False):
        pairs = [scans.to_numpy() for (source, target), scans in cell.groupby(level=["source", "target"], sort=False)
                 if (strategy, budget, source, target) in defined]
        low, high = gap_closed_interval(pairs, samples, seed, level, min_gap, name=f"{strategy}/{budget}")
        rows.append({"strategy": strategy, "budget": budget, "low": low, "high": high, "n_pairs": len(pairs)})
    return pd.DataFrame(rows, columns=["strategy", "budget", "low", "high", "n_pairs"])


def sdice_matrix_intervals(scores: pd.DataFrame, samples: int, seed: int, level: float,
                           metric: str = "sdice") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Low and high ends of each sDice-matrix cell's interval (target rows × source columns, as stats.sdice_matrix),
    the cell's scans resampled (each scan's score averaged over seeds first)."""
    cells, domains = matrix_cells(scores)
    by_scan = cells.groupby(["target", "source", "case"], sort=False)[metric].mean()
    low, high = (pd.DataFrame(np.nan, index=domains, columns=domains) for _ in range(2))
    for (target, source), values in by_scan.groupby(level=["target", "source"], sort=False):
        low.loc[target, source], high.loc[target, source] = mean_interval(
            values.to_numpy(), samples, seed, level, name=f"{source}->{target}")
    return low, high
