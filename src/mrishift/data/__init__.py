"""The data layer: CC359's domains and file names, the synthetic default built from one real head, integrity checks,
resampling to the study grid, intensity scaling, the frozen splits and budgets, and the protocol that says which scans
each role trains, validates and is tested on. Nothing here knows a network."""

from mrishift.data.splits import budget_slices, parse_budget

__all__ = ["budget_slices", "parse_budget"]
