"""Concatenate every model's per-scan table into the study's one results table (rule collect_scores)."""

import pandas as pd

from mrishift.evaluation.scoring import IDENTITY_COLUMNS, SCORE_COLUMNS, read_scores
from mrishift.io import write_table
from mrishift.logs import log_to

log = log_to(snakemake.log[0])
tables = [read_scores(path) for path in snakemake.input.tables]
scores = pd.concat(tables, ignore_index=True)[IDENTITY_COLUMNS + SCORE_COLUMNS]
bad = scores[scores.sdice.isna() | ~scores.sdice.between(0, 1)]
if len(bad):
    raise ValueError(f"{len(bad)} scores outside [0, 1] or missing, e.g. {bad.iloc[0].to_dict()}")
write_table(snakemake.output.scores, scores)
log.info("%d per-scan scores from %d tables", len(scores), len(tables))
