"""Concatenate every model's per-scan table into the study's one results table (rule collect_scores), one table at a
time: what the job holds is one job's table, whatever the study's size."""

from mrishift import usage
from mrishift.evaluation.scoring import IDENTITY_COLUMNS, SCORE_COLUMNS, read_scores
from mrishift.io import atomic_path
from mrishift.logs import log_to

log = log_to(snakemake)
rows = 0
with atomic_path(snakemake.output.scores) as staging, open(staging, "w") as out:
    for number, path in enumerate(snakemake.input.tables):
        table = read_scores(path)[IDENTITY_COLUMNS + SCORE_COLUMNS]
        bad = table[table.sdice.isna() | ~table.sdice.between(0, 1)]
        if len(bad):
            raise ValueError(f"{path}: {len(bad)} scores outside [0, 1] or missing, e.g. {bad.iloc[0].to_dict()}")
        table.to_csv(out, sep="\t", index=False, header=number == 0)
        rows += len(table)
usage.count("tables", len(snakemake.input.tables))
log.info("%d per-scan scores from %d tables", rows, len(snakemake.input.tables))
