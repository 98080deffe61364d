"""Integrity report of the raw dataset; fails listing every bad case (rule check_integrity)."""

import sys
from pathlib import Path

from mrishift.data.integrity import bad_case_lines, check_dataset
from mrishift.io import write_table
from mrishift.logs import log_to, progress

log = log_to(snakemake)
report = check_dataset(snakemake.input[0], expected_cases=list(snakemake.params.cases),
                       progress=lambda cases: progress(cases, "checking cases"))
bad = bad_case_lines(report)
if bad:
    # The declared output would be deleted on failure; keep the report beside it for the user.
    failed = Path(snakemake.output[0]).with_suffix(".failed.tsv")
    write_table(failed, report)
    message = f"{len(bad)} bad case(s) in {snakemake.input[0]} (full report: {failed}):\n  " + "\n  ".join(bad)
    log.error("%s", message)
    sys.exit(message)
write_table(snakemake.output[0], report)
log.info("all %d cases passed the integrity check", len(report))
