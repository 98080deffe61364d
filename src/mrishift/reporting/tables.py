"""The study's tables, each written as CSV (numbers), Markdown (README/report) and LaTeX (papers)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mrishift.analysis.stats import mean_std
from mrishift.data.cc359 import DOMAINS
from mrishift.data.splits import budget_order
from mrishift.io import write_text


def sdice_matrix_table(mean: pd.DataFrame, std: pd.DataFrame, low: pd.DataFrame | None = None,
                       high: pd.DataFrame | None = None) -> pd.DataFrame:
    table = mean_std(mean, std, low, high)
    table.index = [f"{DOMAINS[d].short}" for d in table.index]
    table.columns = [f"{DOMAINS[d].short}" for d in table.columns]
    table.index.name, table.columns.name = "target \\ source", None
    return table


def gap_closed_table(per_pair: pd.DataFrame, strategies: list[str],
                     intervals: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Strategy rows × budget columns of the per-pair gap closed (numbers, formatted): mean (std) over pairs with one
    seed; with several, the mean over pairs per seed, then its mean (std) over seeds; ``intervals``
    (bootstrap.gap_closed_intervals) adds each cell's interval."""
    if "seed" in per_pair and per_pair.seed.nunique() > 1:
        per_seed = per_pair.groupby(["strategy", "budget", "seed"]).gap_closed.mean()
        stats = per_seed.groupby(["strategy", "budget"]).agg(["mean", "std"])
    else:
        stats = per_pair.groupby(["strategy", "budget"]).gap_closed.agg(["mean", "std"])
    columns = budget_order(per_pair.budget)

    def grid(values: pd.Series) -> pd.DataFrame:
        return values.unstack("budget").reindex(index=strategies, columns=columns)

    mean, std = grid(stats["mean"]), grid(stats["std"])
    if intervals is None:
        return mean, mean_std(mean, std)
    ends = intervals.set_index(["strategy", "budget"])
    return mean, mean_std(mean, std, grid(ends["low"]), grid(ends["high"]))


SOURCE_MODEL_ROW = "source model (before)"


def forgetting_table(per_pair: pd.DataFrame, strategies: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows: the source models (before), then each arm × budget columns (numbers: the mean of ``after``; formatted:
    'before → after (std of the change)', means and std over the arm's fine-tuned models — pairs and seeds)."""
    columns = budget_order(per_pair.budget)
    stats = per_pair.groupby(["strategy", "budget"]).agg(before=("before", "mean"), after=("after", "mean"),
                                                         change_std=("change", "std"))
    models = per_pair.drop_duplicates(["variant", "source", "target", "budget", "seed"])
    source_stats = models.groupby("budget").before.agg(["mean", "std"])

    def grid(values: pd.Series) -> pd.DataFrame:
        return values.unstack("budget").reindex(index=strategies, columns=columns)

    before, after, spread = grid(stats.before), grid(stats.after), grid(stats.change_std)

    def cell(b, a, s):
        if pd.isna(a):
            return ""
        return f"{b:.2f} → {a:.2f}" + ("" if pd.isna(s) else f" ({s:.2f})")

    text = pd.DataFrame([[cell(*v) for v in zip(*rows)] for rows in zip(before.values, after.values, spread.values)],
                        index=strategies, columns=columns)
    source_mean, source_std = (source_stats[k].reindex(columns).to_frame(SOURCE_MODEL_ROW).T for k in ("mean", "std"))
    return pd.concat([source_mean, after]), pd.concat([mean_std(source_mean, source_std), text])


def write_table(table: pd.DataFrame, stem: str | Path, caption: str, numbers: pd.DataFrame | None = None) -> None:
    """stem.csv (``numbers`` when given, else the table), stem.md and stem.tex; all written atomically."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), (numbers if numbers is not None else table).to_csv())
    write_text(stem.with_suffix(".md"), f"{caption}\n\n{table.to_markdown()}\n")
    write_text(stem.with_suffix(".tex"), table.to_latex(caption=caption, label=f"tab:{stem.name}"))
