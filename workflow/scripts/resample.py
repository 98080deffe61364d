"""Reorient one case to RAS and resample image and mask to the configured spacing (rule resample)."""

import pandas as pd

from mrishift import usage
from mrishift.data.preprocess import resample_pair
from mrishift.data.volumes import read_sitk, write_sitk
from mrishift.logs import log_to

log = log_to(snakemake)
case = snakemake.wildcards.case
row = pd.read_csv(snakemake.input.report, sep="\t", dtype=str).set_index("case").loc[case]
image, mask = resample_pair(read_sitk(row["image"]), read_sitk(row["mask"]), tuple(snakemake.params.spacing_mm),
                            snakemake.params.image_interpolation)
write_sitk(snakemake.output.image, image)
write_sitk(snakemake.output.mask, mask)
usage.count("scans")
log.info("%s: %s -> size %s at %s mm", case, row["image"], image.GetSize(), image.GetSpacing())
