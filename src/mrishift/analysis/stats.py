"""The study's statistics: gap closed ("DR"), the winning strategy per pair and budget, and the paired sign test.

All functions take the tidy per-scan score table written by the workflow (one row per model × test scan, columns
role, strategy (the arm's name), source, target, budget, seed, case and the metrics) and return tidy tables. A
fine-tuned model of seed s is compared with the baseline and the oracle of the same seed (seeds run the whole chain).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

GAP_EPS = 1e-9  # the smallest gap ever divided by: below it gap closed is undefined, never a division by ~0


def gap_closed(score, baseline, oracle, min_gap: float | None = GAP_EPS):
    """(score − baseline) / (oracle − baseline), elementwise; NaN unless oracle − baseline ≥ ``min_gap`` (> 0).

    A pair whose unadapted model is already (nearly) as good as the oracle has no gap to close: any difference,
    divided by the tiny gap, would become an arbitrarily large ratio and dominate every mean. Where the oracle is
    *below* the baseline the ratio would flip sign — the worst strategy would look best — so it is undefined too.
    ``min_gap=None`` is the papers' definition (DART 2020's DR): the ratio wherever the gap is not ~0, a negative gap
    included — every pair counts, as in their means; the caller flags the small and negative gaps."""
    score, baseline, oracle = (np.asarray(x, dtype=float) for x in (score, baseline, oracle))
    gap = oracle - baseline
    defined = np.abs(gap) >= GAP_EPS if min_gap is None else gap >= max(min_gap, GAP_EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined, (score - baseline) / gap, np.nan)


def sign_test(differences) -> float:
    """Two-sided paired sign test: p-value of the signs of ``differences`` under H0 "positive and negative equally
    likely". Zero differences (ties) are dropped; with no non-zero difference the p-value is 1."""
    d = np.asarray(differences, dtype=float)
    if np.isnan(d).any():
        raise ValueError("sign_test: differences contain NaN")
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    return float(binomtest(int((d > 0).sum()), len(d), 0.5, alternative="two-sided").pvalue)


def significant_win(differences, significance: float) -> tuple[float, bool]:
    """The two-sided sign test of ``differences`` (winner − runner-up, per scan) and whether it makes the win
    significant: p below ``significance`` *and* more scans favouring the winner than the runner-up — a small p with
    most scans on the runner-up's side is evidence against the win, never for it."""
    d = np.asarray(differences, dtype=float)
    p = sign_test(d)
    return p, bool(p < significance and (d > 0).sum() > (d < 0).sum())


def reference_scores(scores: pd.DataFrame, metric: str = "sdice") -> pd.DataFrame:
    """Per (source, seed, case): the baseline (source model, no adaptation) and the oracle (target's own CV) score."""
    baseline = scores[scores.role == "baseline"][["source", "seed", "case", metric]].rename(columns={metric: "baseline"})
    oracle = scores[scores.role == "oracle"][["seed", "case", metric]].rename(columns={metric: "oracle"})
    if oracle.duplicated(["seed", "case"]).any():
        raise ValueError("oracle scores list a case twice for one seed: the CV test folds must not overlap")
    return baseline.merge(oracle, on=["seed", "case"], how="left", validate="many_to_one")


def per_scan_gap_closed(scores: pd.DataFrame, metric: str = "sdice", min_gap: float = GAP_EPS) -> pd.DataFrame:
    """Adapted rows — fine-tuned, and test-time (budget 0) — with their baseline and oracle scores on the same scan
    and the per-scan gap closed."""
    finetuned = scores[scores.role.isin(ADAPTED_ROLES)]
    merged = finetuned.merge(reference_scores(scores, metric), on=["source", "seed", "case"], how="left",
                             validate="many_to_one")
    missing = merged[merged.baseline.isna() | merged.oracle.isna()]
    if len(missing):
        raise ValueError(f"no baseline/oracle score for {len(missing)} fine-tuned test scans, "
                         f"e.g. {missing.iloc[0][['source', 'seed', 'case']].to_dict()}")
    merged["gap_closed"] = gap_closed(merged[metric], merged.baseline, merged.oracle, min_gap)
    return merged


ADAPTED_ROLES = ("finetune", "test_time")
PAIR_KEYS = ["variant", "source", "target", "budget", "strategy"]


def per_pair_gap_closed(per_scan: pd.DataFrame, metric: str = "sdice", min_gap: float = GAP_EPS,
                        by_seed: bool = True) -> pd.DataFrame:
    """Gap closed of each (variant, pair, budget, strategy[, seed]) from the pair means (the paper's per-pair DR);
    with ``by_seed=False`` the means pool the seeds (equal-sized, so = the mean of the seeds' means)."""
    means = per_scan.groupby(PAIR_KEYS + (["seed"] if by_seed else []), sort=False).agg(
        score=(metric, "mean"), baseline=("baseline", "mean"), oracle=("oracle", "mean"), n_scans=("case", "nunique"))
    means["gap_closed"] = gap_closed(means.score, means.baseline, means.oracle, min_gap)
    return means.reset_index()


def gap_closed_by_size(per_pair: pd.DataFrame, sizes: dict[str, dict]) -> pd.DataFrame:
    """Mean gap closed over pairs (and seeds) per (variant, arm, budget) of the per-pair tables of several variants,
    with each variant's size (``sizes``: variant -> family, width, levels, on_width_axis, on_levels_axis)."""
    means = per_pair.groupby(["variant", "strategy", "budget"], sort=False).gap_closed.agg(
        gap_closed="mean", n_pairs="count").reset_index()
    return means.merge(pd.DataFrame.from_dict(sizes, orient="index").rename_axis("variant").reset_index(),
                       on="variant", how="left", validate="many_to_one")


def forgetting_per_pair(scores: pd.DataFrame, metric: str = "sdice") -> pd.DataFrame:
    """Per fine-tuned model (``PAIR_KEYS`` and seed): ``before``, its source model's mean ``metric`` over the source
    domain's held-out scans (role ``source``), ``after``, the fine-tuned model's over the same scans (role
    ``forgetting``), and ``change`` = after − before. Raises when a model lacks its source's row or scans."""
    keys = ["variant", "source", "seed"]
    source = scores[scores.role == "source"]
    before = source.groupby(keys).agg(before=(metric, "mean"), before_cases=("case", lambda c: tuple(sorted(c))))
    after = scores[scores.role == "forgetting"].groupby(PAIR_KEYS + ["seed"], sort=False).agg(
        after=(metric, "mean"), after_cases=("case", lambda c: tuple(sorted(c))), n_scans=("case", "nunique"))
    merged = after.reset_index().merge(before.reset_index(), on=keys, how="left", validate="many_to_one")
    unmatched = merged[merged.before.isna() | (merged.before_cases != merged.after_cases)]
    if len(unmatched):
        raise ValueError(f"{len(unmatched)} fine-tuned models were scored on their source's held-out scans without "
                         f"their source model on the same scans, e.g. {unmatched.iloc[0][PAIR_KEYS + ['seed']].to_dict()}")
    merged["change"] = merged.after - merged.before
    return merged.drop(columns=["before_cases", "after_cases"])


def winners(per_scan: pd.DataFrame, strategy_order: list[str], significance: float, metric: str = "sdice",
            min_gap: float | None = GAP_EPS, tested: str = "score") -> pd.DataFrame:
    """Per (variant, pair, budget) where at least two arms ran (budget 0: the test-time arms): the arm with the largest
    gap closed, the runner-up, and the sign test of their per-scan differences (seed-averaged) — of the ``metric``
    (``tested="score"``) or of the per-scan gap closed (``"gap_closed"``: DART 2020's test, "the relative
    improvements … for every single test image"; the two differ in sign on every scan whose oracle scores below its
    baseline, and a scan with no gap at all is left out). A win is significant when p < ``significance`` and most
    scans favour the winner (significant_win). Ties at the top go to the strategy listed first in
    ``strategy_order`` and are marked ``tied`` (never significant). Where the oracle–baseline gap is below
    ``min_gap``, gap closed is undefined and the strategies are ranked by their mean score instead (the same order a
    small positive gap would give)."""
    pairs = per_pair_gap_closed(per_scan, metric, min_gap, by_seed=False)
    by_scan = _per_scan_means(per_scan, metric) if tested == "score" else _per_scan_gap_closed_means(per_scan, metric)
    rows = []
    for (variant, source, target, budget), group in pairs.groupby(["variant", "source", "target", "budget"], sort=False):
        if len(group) < 2:
            continue  # e.g. a single test-time arm at budget 0, or an arm run on fewer budgets than the others
        key = group.gap_closed.where(group.gap_closed.notna(), group.score)
        rank = np.array([strategy_order.index(s) for s in group.strategy])
        order = np.lexsort((rank, -key.to_numpy()))
        best, second = group.iloc[order[0]], group.iloc[order[1]]
        tied = bool(np.isclose(key.iloc[order[0]], key.iloc[order[1]], rtol=0, atol=1e-12))
        differences = _paired_differences(by_scan, (variant, source, target, budget), best.strategy,
                                          second.strategy)
        differences = _without_gapless_scans(differences, tested)
        p, significant = (1.0, False) if tied else significant_win(differences, significance)
        rows.append({"variant": variant, "source": source, "target": target, "budget": budget,
                     "winner": best.strategy, "runner_up": second.strategy,
                     "winner_gap_closed": best.gap_closed, "runner_up_gap_closed": second.gap_closed,
                     "n_scans": int(best.n_scans), "scans_for_winner": int((differences > 0).sum()),
                     "scans_for_runner_up": int((differences < 0).sum()), "p_value": p, "tied": tied,
                     "significant": significant})
    return pd.DataFrame(rows, columns=WINNER_COLUMNS)


WINNER_COLUMNS = ["variant", "source", "target", "budget", "winner", "runner_up", "winner_gap_closed",
                  "runner_up_gap_closed", "n_scans", "scans_for_winner", "scans_for_runner_up", "p_value", "tied",
                  "significant"]


def sdice_matrix(scores: pd.DataFrame, metric: str = "sdice") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and std of ``metric`` per (target row, source column): off-diagonal the baseline on every scan of the
    target domain, on the diagonal the oracle (union of the CV test folds, i.e. every scan of the domain)."""
    cells, domains = matrix_cells(scores)
    stats = cells.groupby(["target", "source"])[metric].agg(["mean", "std"])
    mean = stats["mean"].unstack("source").reindex(index=domains, columns=domains)
    std = stats["std"].unstack("source").reindex(index=domains, columns=domains)
    return mean, std


def matrix_cells(scores: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the sDice matrix's cells — the baseline rows, and the oracle rows with source = target — and the
    domains in the study's order."""
    baseline = scores[scores.role == "baseline"]
    oracle = scores[scores.role == "oracle"].assign(source=lambda d: d.target)
    return pd.concat([baseline, oracle]), list(dict.fromkeys([*oracle.target, *baseline.source, *baseline.target]))


def _per_scan_means(per_scan: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` per (variant, source, target, budget, strategy, case), averaged over seeds."""
    return per_scan.groupby(["variant", "source", "target", "budget", "strategy", "case"])[metric].mean()


def _per_scan_gap_closed_means(per_scan: pd.DataFrame, metric: str) -> pd.Series:
    """Per-scan gap closed (score − baseline) / (oracle − baseline) per (variant, source, target, budget, strategy,
    case), from the seed-averaged scores; NaN on a scan whose oracle equals its baseline."""
    means = per_scan.groupby(["variant", "source", "target", "budget", "strategy", "case"])[
        [metric, "baseline", "oracle"]].mean()
    return pd.Series(gap_closed(means[metric], means.baseline, means.oracle, None), index=means.index)


def _without_gapless_scans(differences: np.ndarray, tested: str) -> np.ndarray:
    """Per-scan gap-closed differences without the scans whose oracle equals their baseline (no ratio there); score
    differences as they are, so a missing score still stops the sign test (sign_test raises on NaN)."""
    return differences[~np.isnan(differences)] if tested == "gap_closed" else differences


def _paired_differences(by_scan: pd.Series, pair: tuple, a: str, b: str) -> np.ndarray:
    """Per test scan of one (variant, source, target, budget): arm ``a``'s score minus arm ``b``'s."""
    x, y = by_scan.loc[(*pair, a)], by_scan.loc[(*pair, b)]
    return (x - y.reindex(x.index)).to_numpy()


def statistics_only_arms(arms: dict[str, dict]) -> list[str]:
    """Arms that change the source model without training it (e.g. ``bn_stats``); the baseline ``none`` is not one."""
    return [arm for arm, spec in arms.items() if not spec["trains"] and spec["class"] != "none"]


def batchnorm_arm_pairs(arms: dict[str, dict]) -> list[tuple[str, str]]:
    """(train-mode arm, eval-mode arm) pairs of a study: the same strategy class and hyper-parameters but for
    ``frozen_bn``. ``arms``: arm -> {"class": ..., "hparams": {... resolved, frozen_bn included}}."""
    modes: dict[tuple, dict[str, str]] = {}
    for arm, spec in arms.items():
        hparams = dict(spec["hparams"])
        mode = hparams.pop("frozen_bn", None)
        if mode is not None:
            modes.setdefault((spec["class"], repr(sorted(hparams.items()))), {})[mode] = arm
    return [(m["train"], m["eval"]) for m in modes.values() if {"train", "eval"} <= set(m)]


def compare_arms(per_scan: pd.DataFrame, a: str, b: str, significance: float, metric: str = "sdice",
                 min_gap: float | None = GAP_EPS, pairs: set[tuple[str, str]] | None = None,
                 tested: str = "score") -> pd.DataFrame:
    """Arm ``a`` against arm ``b`` per (variant, pair, budget) at the budgets both arms ran: their gap closed
    (seed-averaged pair means), which is better, and the two-sided sign test of the per-scan differences
    (seed-averaged) — of the ``metric`` (``tested="score"``: better by the mean score difference) or of the per-scan
    gap closed (``"gap_closed"``, DART 2020's test: better by the pairs' gap closed). Significant only where p <
    ``significance`` and most scans favour the better arm. ``pairs``: the (source, target) pairs both arms were run on
    (default: every pair scored), for arms run on some pairs only (strategies.<arm>.sources/targets); one of them
    missing an arm at a shared budget raises — never a silently smaller comparison."""
    shared = set(per_scan.budget[per_scan.strategy == a]) & set(per_scan.budget[per_scan.strategy == b])
    both = per_scan[per_scan.strategy.isin([a, b]) & per_scan.budget.isin(shared)]
    per_pair = per_pair_gap_closed(both, metric, min_gap, by_seed=False)
    by_scan = _per_scan_means(both, metric) if tested == "score" else _per_scan_gap_closed_means(both, metric)
    rows = []
    for (variant, source, target, budget), group in per_pair.groupby(["variant", "source", "target", "budget"],
                                                                     sort=False):
        if pairs is not None and (source, target) not in pairs:
            continue
        arms = group.set_index("strategy")
        if not {a, b} <= set(arms.index):
            raise ValueError(f"{variant} {source}→{target} {budget}: arms {a} and {b} are not both scored")
        difference = _paired_differences(by_scan, (variant, source, target, budget), a, b)
        difference = _without_gapless_scans(difference, tested)
        mean_difference = float(np.mean(difference)) if len(difference) else 0.0
        lead = (mean_difference if tested == "score"
                else np.nan_to_num(arms.loc[a, "gap_closed"] - arms.loc[b, "gap_closed"]))
        p, significant = significant_win(difference if lead >= 0 else -difference, significance)
        rows.append({"variant": variant, "source": source, "target": target, "budget": budget, "arm_a": a, "arm_b": b,
                     "gap_closed_a": arms.loc[a, "gap_closed"], "gap_closed_b": arms.loc[b, "gap_closed"],
                     f"mean_{metric if tested == 'score' else 'gap_closed'}_difference": mean_difference,
                     "p_value": p, "better": a if lead > 0 else b if lead < 0 else "tie",
                     "significant": significant and lead != 0})
    return pd.DataFrame(rows)


def mean_std(mean: pd.DataFrame, std: pd.DataFrame, low: pd.DataFrame | None = None, high: pd.DataFrame | None = None,
             digits: int = 2) -> pd.DataFrame:
    """'mean (std)' strings, as in the paper's tables, with the bootstrap interval after them when given:
    'mean (std) [low, high]'; blank where there is no value."""
    def cell(m, s, lo, hi):
        if pd.isna(m):
            return ""
        text = f"{m:.{digits}f}" if pd.isna(s) else f"{m:.{digits}f} ({s:.{digits}f})"
        return text if pd.isna(lo) else f"{text} [{lo:.{digits}f}, {hi:.{digits}f}]"
    low = low.reindex_like(mean) if low is not None else pd.DataFrame(float("nan"), mean.index, mean.columns)
    high = high.reindex_like(mean) if high is not None else low
    return pd.DataFrame([[cell(*values) for values in zip(*rows)]
                         for rows in zip(mean.values, std.values, low.values, high.values)],
                        index=mean.index, columns=mean.columns)
