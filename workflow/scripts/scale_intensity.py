"""Clip one resampled image to its percentiles and scale it to [0, 1] (rule scale_intensity)."""

from mrishift import usage
from mrishift.data.preprocess import scale_intensity
from mrishift.data.volumes import load_volume, save_volume
from mrishift.logs import log_to

log = log_to(snakemake)
volume = load_volume(snakemake.input[0])
scaled = scale_intensity(volume.array, tuple(snakemake.params.clip_percentiles), name=snakemake.input[0])
save_volume(snakemake.output[0], scaled, volume.affine)
usage.count("scans")
log.info("%s scaled with percentiles %s", snakemake.input[0], snakemake.params.clip_percentiles)
