"""Gather one scan set's preprocessed images and reference masks into its folder (rule scan_set)."""

from mrishift.io import write_linked_folder
from mrishift.logs import log_to

log = log_to(snakemake)
write_linked_folder([*snakemake.input.images, *snakemake.input.masks], snakemake.output[0])
log.info("%s: %d scans", snakemake.output[0], len(snakemake.input.images))
