"""Visual quality control: slice mosaics of a scan with its reference mask's contour.

A mosaic shows a few axial, coronal and sagittal slices of each volume given, every one with the mask's contour drawn
on it, so an orientation flip, a shifted mask or a resampling artefact is seen at a glance. Volumes are shown in
RAS+ orientation (a raw scan through nibabel's closest-canonical reorientation, as a viewer shows it; preprocessed
scans are stored in RAS already): the patient's right on the right of axial and coronal images (neurological
convention), anterior on the right of sagittal ones, superior (anterior, axially) up, each axis at its physical
aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from mrishift.data.volumes import VolumeError  # noqa: E402

PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}  # the RAS axis each plane's slices are taken across
CONTOUR_RGBA = (1.0, 0.25, 0.1, 1.0)


@dataclass
class Scan:
    """A volume in RAS+ voxel order with its reference mask and voxel spacing (mm), for display."""

    label: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]

    @classmethod
    def read(cls, label: str, image_path, mask_path) -> "Scan":
        """Image and mask files, reoriented to the closest RAS+ voxel order; they must share shape and affine."""
        try:
            image, mask = (nib.as_closest_canonical(nib.load(str(p))) for p in (image_path, mask_path))
            image_array, mask_array = np.asarray(image.dataobj, np.float32), np.asarray(mask.dataobj) > 0.5
        except Exception as error:
            raise VolumeError(f"{image_path} / {mask_path}: unreadable NIfTI ({error})") from error
        if image_array.shape != mask_array.shape or not np.allclose(image.affine, mask.affine, atol=1e-3):
            raise VolumeError(f"{image_path} and {mask_path}: image and mask differ in shape or affine "
                              f"({image_array.shape} vs {mask_array.shape})")
        if not mask_array.any():
            raise VolumeError(f"{mask_path}: the mask is empty")
        return cls(label, image_array, mask_array, tuple(float(z) for z in image.header.get_zooms()[:3]))


def contour(mask: np.ndarray) -> np.ndarray:
    """The boundary of a 2D binary mask: its pixels with a 4-neighbour outside it (or at the image edge)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1), border_value=0)


def slice_positions(mask: np.ndarray, axis: int, count: int) -> list[int]:
    """``count`` slice indices across ``axis``, evenly spaced strictly inside the mask's extent along it."""
    occupied = np.flatnonzero(np.asarray(mask, dtype=bool).any(axis=tuple(a for a in range(3) if a != axis)))
    if occupied.size == 0:
        raise ValueError("slice_positions: the mask is empty")
    return [int(round(p)) for p in np.linspace(occupied[0], occupied[-1], count + 2)[1:-1]]


def plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """One slice across ``axis`` as an image: rows run superior→inferior (anterior→posterior for axial slices)."""
    section = np.take(volume, index, axis=axis)  # the two remaining RAS axes, in order
    return section.T[::-1]  # the later axis (A or S) vertical, its positive end up


def plane_aspect(spacing: tuple[float, float, float], axis: int) -> float:
    """Height/width of a pixel of a slice across ``axis`` (imshow's aspect)."""
    horizontal, vertical = (spacing[a] for a in range(3) if a != axis)
    return vertical / horizontal


def mosaic_figure(scans: list[Scan], per_plane: int, title: str):
    """One row per scan; per row ``per_plane`` slices of each plane (positions from that scan's mask), grey image,
    contour of the mask in colour."""
    columns = per_plane * len(PLANES)
    figure, axes = plt.subplots(len(scans), columns, figsize=(1.6 * columns, 1.9 * len(scans) + 0.6), squeeze=False)
    for row, scan in zip(axes, scans):
        low, high = np.percentile(scan.image, [1, 99])
        column = 0
        for name, axis in PLANES.items():
            for index in slice_positions(scan.mask, axis, per_plane):
                ax = row[column]
                mask = plane(scan.mask, axis, index)
                overlay = np.zeros((*mask.shape, 4))
                overlay[contour(mask)] = CONTOUR_RGBA
                aspect = plane_aspect(scan.spacing, axis)
                ax.imshow(plane(scan.image, axis, index), cmap="gray", vmin=low, vmax=high, aspect=aspect,
                          interpolation="nearest")
                ax.imshow(overlay, aspect=aspect, interpolation="nearest")
                ax.set_title(f"{name} {index}", fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
                column += 1
        row[0].set_ylabel(scan.label, fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
