"""A domain's first scan, raw and after resampling and scaling, each with its reference mask's contour (rule data_qc)."""

import pandas as pd

from mrishift.data.cc359 import DOMAINS
from mrishift.evaluation import qc
from mrishift.logs import log_to
from mrishift.reporting import plots

log = log_to(snakemake)
params, inputs, domain = snakemake.params, snakemake.input, snakemake.wildcards.domain
raw = pd.read_csv(inputs.report, sep="\t", dtype=str).set_index("case").loc[params.case]
spacing = "×".join(f"{s:g}" for s in params.spacing_mm)
scans = [qc.Scan.read(f"raw\n{raw['orientation']}, {raw['spacing_mm']} mm", raw["image"], raw["mask"]),
         qc.Scan.read(f"preprocessed\nRAS, {spacing} mm, [0, 1]", inputs.image, inputs.mask)]
log.info("%s: %s raw %s at %s mm, preprocessed %s", domain, params.case, scans[0].image.shape, scans[0].spacing,
         scans[1].image.shape)
plots.save(qc.mosaic_figure(scans, params.slices_per_plane,
                                f"{DOMAINS[domain].short} ({domain}): {params.case}, reference mask contour in orange"),
               snakemake.output.figure)
