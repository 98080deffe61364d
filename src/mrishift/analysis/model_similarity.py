"""Similarity between trained models, as the transfer-learning FCN study reads it (rule model_similarity).

Two inputs, both per block (``mrishift.evaluation.similarity``), on the pair's test slices:

* ``pairs``: one row per two models of one pair and budget — two seeds of one arm, or any two models of two arms —
  with arm_a, seed_a, arm_b, seed_b. The study's Table VII is the mean ± std of these per kind of comparison
  ("scratch_target vs scratch_target" is its RSIM(R.I., R.I.), "ft_all vs ft_all" its RSIM(T.L., T.L.),
  "scratch_target vs ft_all" its RSIM(R.I., T.L.)), with Welch's t-test between two kinds (its "statistical t-tests").
* ``initial``: one row per model — its similarity to the network it started from (a from-source arm: its source
  model; a from-scratch arm: its seeded random initialisation). Its Table VIII, feature reuse per layer, is the
  mean of a transfer arm's minus the mean of a scratch arm's ("the difference between the average of these
  similarities for the models trained from scratch and models trained with transfer learning", after Raghu et al.
  2019): positive where transfer keeps more of where it started.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

PAIR_KEYS = ["budget", "comparison"]


def comparison(arm_a: str, arm_b: str) -> str:
    return f"{arm_a} vs {arm_b}"


def _blocks(frame: pd.DataFrame) -> list[str]:
    return list(frame.drop_duplicates("block").sort_values("depth").block)


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def stage_blocks(blocks: list[str]) -> list[str]:
    """The last block of each stage (``encoder0.2``, ``bottleneck.2``, ``decoder2.2``: the last of each name before its
    dot), in order — the study's six layers are the ends of its encoder and decoder stages; the tables' text shows
    these, their numbers every block."""
    stages = {}
    for block in blocks:
        if "." in block:
            stages[block.rsplit(".", 1)[0]] = block
    return list(stages.values()) or blocks


def with_comparison(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs.assign(comparison=[comparison(a, b) for a, b in zip(pairs.arm_a, pairs.arm_b)])


def similarity_table(pairs: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table VII of ``measure``: (text: mean ± std over model pairs per budget and comparison, a column per stage's
    last block (``stage_blocks``) in depth order; numbers: mean, std and n per budget, comparison and block)."""
    pairs = with_comparison(pairs)
    numbers = (pairs.groupby(PAIR_KEYS + ["block"], sort=False)[measure].agg(["mean", "std", "count"])
               .rename(columns={"count": "n"}).reset_index())
    text = (pairs.groupby(PAIR_KEYS + ["block"], sort=False)[measure].agg(_mean_std).unstack("block")
            [stage_blocks(_blocks(pairs))])
    n = pairs.groupby(PAIR_KEYS, sort=False).apply(lambda g: len(g) // g.block.nunique(), include_groups=False)
    text.insert(0, "model pairs", n)
    return text, numbers


def comparison_tests(pairs: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Welch's t-test of ``measure`` between every two kinds of comparison, per budget and block (the study's tests
    of RSIM(R.I., R.I.) against RSIM(T.L., T.L.) and so on). The model pairs of one kind share models, so they are not
    independent: the p-values are the study's reading, not exact."""
    pairs, rows = with_comparison(pairs), []
    for (budget, block), group in pairs.groupby(["budget", "block"], sort=False):
        values = {name: g[measure].dropna().to_numpy() for name, g in group.groupby("comparison", sort=False)}
        for first, second in combinations(values, 2):
            a, b = values[first], values[second]
            t, p = stats.ttest_ind(a, b, equal_var=False) if min(len(a), len(b)) > 1 else (np.nan, np.nan)
            rows.append({"budget": budget, "block": block, "depth": int(group.depth.iloc[0]), "first": first,
                         "second": second, "mean_first": a.mean(), "mean_second": b.mean(), "n_first": len(a),
                         "n_second": len(b), "t": float(t), "p": float(p)})
    return pd.DataFrame(rows, columns=["budget", "block", "depth", "first", "second", "mean_first", "mean_second",
                                       "n_first", "n_second", "t", "p"])


def feature_reuse(initial: pd.DataFrame, measure: str, scratch_arms: list[str]) -> pd.DataFrame:
    """Table VIII of ``measure``: per pair, budget and (transfer arm, scratch arm) of that pair and budget, each
    block's mean similarity to the start over the transfer arm's seeds minus the scratch arm's; and a row per budget
    and arms with the mean over pairs. Empty when no scratch arm and transfer arm share a pair and budget."""
    means = (initial.groupby(["source", "target", "budget", "strategy", "block"], sort=False)[measure].mean()
             .unstack("block"))
    rows = []
    for (source, target, budget), group in means.groupby(level=["source", "target", "budget"], sort=False):
        arms = group.index.get_level_values("strategy")
        for scratch in [arm for arm in arms if arm in scratch_arms]:
            for transfer in [arm for arm in arms if arm not in scratch_arms]:
                reuse = group.xs(transfer, level="strategy").iloc[0] - group.xs(scratch, level="strategy").iloc[0]
                rows.append({"pair": f"{source} → {target}", "budget": budget, "transfer": transfer,
                             "scratch": scratch, **reuse.to_dict()})
    if not rows:
        return pd.DataFrame(columns=["pair", "budget", "transfer", "scratch"])
    table = pd.DataFrame(rows)[["pair", "budget", "transfer", "scratch", *_blocks(initial)]]
    pooled = (table.groupby(["budget", "transfer", "scratch"], sort=False)[_blocks(initial)].mean().reset_index()
              .assign(pair="mean over pairs"))
    return pd.concat([table, pooled[table.columns]], ignore_index=True)
