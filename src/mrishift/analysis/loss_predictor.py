"""The test-time loss as a label-free predictor of failure (the test-time BN-statistics study's Fig. 8: "the
difference in feature statistics (i.e. the loss in Eq. (1)) and the mean Dice score without adaptation"): each test
scan's adaptation loss at the source model, before any step, against the unadapted source model's score of that scan.

The paper reports a weak negative correlation and its coefficients without saying which; we give Spearman's rank
correlation (no assumption on the shape of the relation, robust to the loss's heavy tail) with a percentile bootstrap
interval over scans, pooled over an arm's pairs (the paper pools the partitions of one group) and per target domain.
The unadapted score is the study's baseline row of the same source model, seed and scan, so only arms that adapt the
study's plain source model are analysed (a normalizer arm starts from another source model, never scored unadapted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from mrishift.analysis.bootstrap import percentile_interval
from mrishift.seeding import seed_hash

KEYS = ["variant", "source", "target", "seed", "case"]
ALL_TARGETS = "all"  # the group of every pair of an arm


def loss_and_unadapted_score(test_time: pd.DataFrame, scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per adapted scan of the arms with a loss: its ``loss_before``, ``loss_after`` and the unadapted source
    model's ``unadapted`` score (its baseline row). A scan without its baseline row is an error naming it."""
    adapted = test_time.dropna(subset=["loss_before"])
    baseline = scores.loc[scores.role == "baseline", KEYS + [metric]].rename(columns={metric: "unadapted"})
    rows = adapted.merge(baseline, on=KEYS, how="left", validate="many_to_one")
    missing = rows[rows.unadapted.isna()]
    if len(missing):
        raise ValueError(f"{len(missing)} adapted scans have no baseline score, e.g. "
                         f"{missing.iloc[0][KEYS].to_dict()}")
    return rows[["strategy", *KEYS, "loss_before", "loss_after", "unadapted", metric]].reset_index(drop=True)


def spearman_interval(loss, score, samples: int, seed: int, level: float, name: str = "") -> dict:
    """Spearman's ρ of ``loss`` and ``score`` with its two-sided p-value and a percentile bootstrap interval (scans
    resampled with replacement; a replicate whose ranks are all tied in one variable is left out)."""
    loss, score = np.asarray(loss, dtype=float), np.asarray(score, dtype=float)
    n = loss.size
    if n < 3:
        return {"n": n, "rho": np.nan, "p": np.nan, "low": np.nan, "high": np.nan}
    rho, p = scipy.stats.spearmanr(loss, score)
    rng = np.random.default_rng(seed_hash(seed, "spearman", name))
    draws = rng.integers(0, n, size=(samples, n))
    replicates = [_spearman(loss[d], score[d]) for d in draws]
    low, high = percentile_interval(replicates, level)
    return {"n": n, "rho": float(rho), "p": float(p), "low": low, "high": high}


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(scipy.stats.spearmanr(x, y)[0])


def correlations(rows: pd.DataFrame, samples: int, seed: int, level: float) -> pd.DataFrame:
    """Spearman's ρ of loss before adapting and unadapted score per arm: over all its adapted scans (target
    ``all``) and per target domain."""
    out = []
    for arm, of_arm in rows.groupby("strategy", sort=False):
        groups = [(ALL_TARGETS, of_arm), *of_arm.groupby("target", sort=True)]
        for target, group in groups:
            result = spearman_interval(group.loss_before, group.unadapted, samples, seed, level, f"{arm}/{target}")
            pairs = len(group[["source", "target"]].drop_duplicates())
            out.append({"strategy": arm, "target": target, "pairs": pairs, **result,
                        "mean_loss_before": group.loss_before.mean(), "mean_loss_after": group.loss_after.mean(),
                        "mean_unadapted": group.unadapted.mean()})
    return pd.DataFrame(out)
