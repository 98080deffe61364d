"""Seeded per-domain splits, oracle folds and budgets, frozen to one JSON (rule make_splits)."""

from pathlib import Path

import nibabel as nib

from mrishift.data.cc359 import domain_of_case
from mrishift.data.splits import make_splits
from mrishift.io import write_json
from mrishift.logs import log_to

log = log_to(snakemake)
params = snakemake.params
n_slices = {Path(p).name.split("_")[0]: nib.load(p).shape[2] for p in snakemake.input.images}
cases_by_domain = {d: [c for c in params.cases if domain_of_case(c) == d] for d in params.domains}
splits = make_splits(cases_by_domain, n_slices, params.seed, params.n_validation, params.n_folds, list(params.budgets),
                     params.n_finetune_validation)
write_json(snakemake.output[0], splits)
log.info("splits for %d domains written to %s", len(cases_by_domain), snakemake.output[0])
