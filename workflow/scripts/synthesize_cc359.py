"""Generate the embedded synthetic CC359-shaped dataset (rule synthesize_cc359)."""

from pathlib import Path

from mrishift import usage
from mrishift.data.synthetic import generate
from mrishift.logs import log_to, progress

log = log_to(snakemake)
params = snakemake.params
out = Path(snakemake.output[0])
# a killed job leaves no folder that looks complete, and its rerun keeps the subjects it finished (generate)
staging = out.with_name(out.name + ".partial")
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
    geometry=params.geometry,
)
staging.rename(out)
usage.count("scans", len(records))
usage.note(concurrent_children=min(snakemake.threads, len(records)))  # the subjects are made in worker processes
log.info("wrote %d synthetic subjects to %s", len(records), out)
