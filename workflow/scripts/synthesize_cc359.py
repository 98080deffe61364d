"""Generate the embedded synthetic CC359-shaped dataset (rule synthesize_cc359)."""

import shutil
from pathlib import Path

from mrishift.data.synthetic import generate
from mrishift.logs import log_to, progress

log = log_to(snakemake.log[0])
params = snakemake.params
out = Path(snakemake.output[0])
staging = out.with_name(out.name + ".partial")  # a killed job leaves no folder that looks complete
shutil.rmtree(staging, ignore_errors=True)
records = generate(
    staging,
    domains=list(snakemake.params.domains),
    n_subjects=params.subjects_per_domain,
    seed=params.seed,
    native_spacing_mm=params.native_spacing_mm,
    shift_strength=params.shift_strength,
    deformation_mm=params.deformation_mm,
    progress=lambda finished, total: progress(finished, "synthesizing subjects", total=total),
    workers=snakemake.threads,  # subjects in parallel: the same files whatever the number
)
staging.rename(out)
log.info("wrote %d synthetic subjects to %s", len(records), out)
