"""A job's scans: the preprocessed image and reference-mask files Snakemake hands it, paired by case, and read as
volumes on the study grid with errors that name the case and file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrishift.data.volumes import Volume, load_volume

ScanFiles = dict[str, tuple[str, str]]  # case id -> (scaled image, reference mask): the files a job was given


def scan_files(images: list[str], masks: list[str], scan_sets: list[str] = ()) -> ScanFiles:
    """Pair a job's input files by case (``…/<case>_image.nii.gz`` with ``…/<case>_mask.nii.gz``), wherever they
    are, with those of the scan-set folders it was given: the library reads the files Snakemake hands a job, never a
    results-folder layout of its own."""
    in_sets = [path for folder in scan_sets for path in sorted(map(str, Path(folder).glob("*.nii.gz")))]
    images = [*images, *(path for path in in_sets if path.endswith("_image.nii.gz"))]
    masks = [*masks, *(path for path in in_sets if path.endswith("_mask.nii.gz"))]
    image_of = {Path(path).name.removesuffix("_image.nii.gz"): str(path) for path in images}
    mask_of = {Path(path).name.removesuffix("_mask.nii.gz"): str(path) for path in masks}
    if set(image_of) != set(mask_of):
        raise ValueError(f"images and masks given for different cases: images only {sorted(set(image_of) - set(mask_of))}"
                         f", masks only {sorted(set(mask_of) - set(image_of))}")
    return {case: (image_of[case], mask_of[case]) for case in image_of}


def load_case(case: str, files: ScanFiles) -> tuple[Volume, Volume]:
    """The scaled image and the reference mask of a case on the resampled grid."""
    if case not in files:
        raise ValueError(f"{case}: not among the {len(files)} scans this job was given (an undeclared input)")
    image_path, mask_path = files[case]
    image, mask = load_volume(image_path), load_volume(mask_path)
    if image.array.shape != mask.array.shape:
        raise ValueError(f"{case}: preprocessed image {image.array.shape} ({image_path}) and mask {mask.array.shape} "
                         f"({mask_path}) differ")
    return image, mask


def load_cases(cases: list[str], files: ScanFiles) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scaled image, binary mask) arrays indexed (x, y, z) for each case id."""
    return [tuple(volume.array for volume in load_case(case, files)) for case in cases]
