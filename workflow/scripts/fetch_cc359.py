"""Lay out and verify the user's local CC359 copy (rule fetch_cc359)."""

import sys

from mrishift.data.fetch import DatasetError, fetch_cc359
from mrishift.logs import log_to

log = log_to(snakemake)
if snakemake.params.plan_only:
    sys.exit("fetch_cc359: data.cc359.plan_only is set, which only plans the study (snakemake -n); to run it, set "
             "data.cc359.paths to your CC359 download and drop config/plan-only.yaml")
try:
    fetch_cc359(list(snakemake.params.paths), snakemake.output[0], list(snakemake.params.domains),
                snakemake.params.require_complete)
except DatasetError as error:
    log.error("%s", error)
    sys.exit(f"fetch_cc359: {error}")
log.info("CC359 laid out and verified under %s", snakemake.output[0])
