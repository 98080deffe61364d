"""The study's tables, each written as CSV (numbers), Markdown (README/report) and LaTeX (papers)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mrishift.data.cc359 import DOMAINS
from mrishift.data.splits import ZERO_BUDGET, parse_budget
from mrishift.io import write_text


def budget_order(budgets) -> list[str]:
    """Budgets from the least to the most target data (scans ÷ slice step); ``0`` (test-time: no label) first."""
    return sorted(set(budgets), key=lambda b: 0 if b == ZERO_BUDGET else parse_budget(b).scans / parse_budget(b).every)


def mean_std(mean: pd.DataFrame, std: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """'mean (std)' strings, as in the paper's tables; blank where there is no value."""
    def cell(m, s):
        if pd.isna(m):
            return ""
        return f"{m:.{digits}f}" if pd.isna(s) else f"{m:.{digits}f} ({s:.{digits}f})"
    return pd.DataFrame([[cell(m, s) for m, s in zip(mr, sr)] for mr, sr in zip(mean.values, std.values)],
                        index=mean.index, columns=mean.columns)


def sdice_matrix_table(mean: pd.DataFrame, std: pd.DataFrame) -> pd.DataFrame:
    table = mean_std(mean, std)
    table.index = [f"{DOMAINS[d].short}" for d in table.index]
    table.columns = [f"{DOMAINS[d].short}" for d in table.columns]
    table.index.name, table.columns.name = "target \\ source", None
    return table


def gap_closed_table(per_pair: pd.DataFrame, strategies: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Strategy rows × budget columns of the per-pair gap closed (numbers, formatted): mean (std) over pairs with one
    seed; with several, the mean over pairs per seed, then its mean (std) over seeds."""
    if "seed" in per_pair and per_pair.seed.nunique() > 1:
        per_seed = per_pair.groupby(["strategy", "budget", "seed"]).gap_closed.mean()
        stats = per_seed.groupby(["strategy", "budget"]).agg(["mean", "std"])
    else:
        stats = per_pair.groupby(["strategy", "budget"]).gap_closed.agg(["mean", "std"])
    columns = budget_order(per_pair.budget)
    mean = stats["mean"].unstack("budget").reindex(index=strategies, columns=columns)
    std = stats["std"].unstack("budget").reindex(index=strategies, columns=columns)
    return mean, mean_std(mean, std)


def write_table(table: pd.DataFrame, stem: str | Path, caption: str, numbers: pd.DataFrame | None = None) -> None:
    """stem.csv (``numbers`` when given, else the table), stem.md and stem.tex; all written atomically."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), (numbers if numbers is not None else table).to_csv())
    write_text(stem.with_suffix(".md"), f"{caption}\n\n{table.to_markdown()}\n")
    write_text(stem.with_suffix(".tex"), table.to_latex(caption=caption, label=f"tab:{stem.name}"))
