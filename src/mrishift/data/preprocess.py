"""Resampling to a common grid and intensity scaling to [0, 1].

Every scan is first brought to RAS orientation (nibabel's canonical: axis 0 → right, 1 → anterior,
2 → superior), so "axial slices along the last axis" means the same thing for every vendor; then it is
resampled onto a grid with the configured spacing that covers the same physical field of view.

Interpolation choices:
* image: linear by default. B-spline (cubic) is available; it is closer to the public code's spline zoom but
  overshoots at sharp edges (negative values next to the skull), which the percentile clipping then hides.
* mask: resampled as a float with linear interpolation and thresholded at 0.5. Nearest-neighbour would shift
  the boundary by up to half a voxel on anisotropic input; linear + 0.5 keeps the boundary where the partial
  volume crosses one half, which preserves the brain volume (tests check it within 1%).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mrishift.data.volumes import VolumeError

CANONICAL_ORIENTATION = "RAS"  # nibabel axis codes of every preprocessed scan
# SimpleITK names orientations by where each axis points *from* in LPS terms: its "LPS" is the identity
# direction, and its "RAS" code is nibabel's RAS (directions -x, -y, +z in ITK's LPS world).
_SITK_RAS = "RAS"

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}


def to_canonical(image: sitk.Image) -> sitk.Image:
    return sitk.DICOMOrient(image, _SITK_RAS)


def resample_to_spacing(
    image: sitk.Image, spacing_mm: tuple[float, float, float], interpolator: int
) -> sitk.Image:
    """Resample onto a grid of the given spacing that spans the same physical extent (voxel edges to voxel edges)."""
    old_spacing = np.array(image.GetSpacing())
    new_spacing = np.array(spacing_mm, dtype=float)
    old_size = np.array(image.GetSize())
    extent = old_size * old_spacing
    new_size = np.maximum(np.round(extent / new_spacing).astype(int), 1)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # Keep the outer corner of the field of view fixed: corner = origin - D·(s/2) for either grid.
    origin = np.array(image.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2.0)
    return sitk.Resample(
        image,
        [int(n) for n in new_size],
        sitk.Transform(),
        interpolator,
        origin.tolist(),
        new_spacing.tolist(),
        direction.flatten().tolist(),
        0.0,
        sitk.sitkFloat32,
    )


def resample_pair(
    image: sitk.Image,
    mask: sitk.Image,
    spacing_mm: tuple[float, float, float],
    image_interpolation: str = "linear",
) -> tuple[sitk.Image, sitk.Image]:
    """Reorient image and mask to RAS and resample both to ``spacing_mm``; returns (float32 image, uint8 mask)."""
    if image_interpolation not in INTERPOLATORS:
        raise ValueError(f"image_interpolation must be one of {sorted(INTERPOLATORS)}, got {image_interpolation!r}")
    image = to_canonical(sitk.Cast(image, sitk.sitkFloat32))
    mask = to_canonical(sitk.Cast(mask, sitk.sitkFloat32))
    resampled_image = resample_to_spacing(image, spacing_mm, INTERPOLATORS[image_interpolation])
    soft_mask = resample_to_spacing(mask, spacing_mm, sitk.sitkLinear)
    resampled_mask = sitk.Cast(sitk.BinaryThreshold(soft_mask, 0.5, 1e30, 1, 0), sitk.sitkUInt8)
    return resampled_image, resampled_mask


def scale_intensity(array: np.ndarray, clip_percentiles: tuple[float, float] = (1.0, 99.0), name: str = "image"):
    """Clip to the given percentiles of the whole volume, then min-max scale to [0, 1] (float32).

    Raises ``VolumeError`` if the volume holds non-finite values or is constant between the percentiles
    (there is no meaningful scaling then, and dividing by zero would give NaNs silently).
    """
    low_q, high_q = clip_percentiles
    if not 0.0 <= low_q < high_q <= 100.0:
        raise ValueError(f"clip_percentiles must satisfy 0 <= low < high <= 100, got {clip_percentiles}")
    if not np.isfinite(array).all():
        raise VolumeError(f"{name}: holds non-finite values (NaN or inf); cannot scale intensities")
    low, high = np.percentile(array, [low_q, high_q])
    if not high > low:
        raise VolumeError(
            f"{name}: intensities are constant between the {low_q}th and {high_q}th percentiles "
            f"({low:g}); cannot scale to [0, 1]"
        )
    scaled = (np.clip(array, low, high) - low) / (high - low)
    return scaled.astype(np.float32)
