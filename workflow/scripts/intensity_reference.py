"""The quantile function of a source domain's pooled training-scan intensities (rule intensity_reference): what
histogram matching maps a target volume onto."""

import json
from pathlib import Path

from mrishift.data import protocol
from mrishift.data.histogram import QUANTILE_LEVELS, intensity_quantiles
from mrishift.data.scans import load_cases, scan_files
from mrishift.io import write_json
from mrishift.logs import log_to

log = log_to(snakemake)
domain, inputs = snakemake.wildcards.domain, snakemake.input
splits = json.loads(Path(inputs.splits).read_text())["domains"]
cases = protocol.intensity_reference(splits, domain)
images = [image for image, _ in load_cases(cases, scan_files(inputs.images, inputs.masks, inputs.scan_sets))]
quantiles = intensity_quantiles(images)
write_json(snakemake.output.reference, {"domain": domain, "scans": cases, "levels": QUANTILE_LEVELS,
                                        "quantiles": quantiles.tolist()})
log.info("%s: intensity quantiles of %d training scans (median %.3f)", domain, len(cases), quantiles[len(quantiles) // 2])
