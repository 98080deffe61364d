"""Data stages: CC359 naming, the synthetic default, integrity checks, resampling, scaling and splits."""

from mrishift.data.splits import budget_slices, parse_budget

__all__ = ["budget_slices", "parse_budget"]
