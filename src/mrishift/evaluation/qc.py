"""Visual quality control: slice mosaics of a scan with its reference mask's contour (data QC), and of a model's
best, median and worst prediction per arm and budget with both contours and where surface Dice loses (prediction QC).

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
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
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


# --- prediction QC ------------------------------------------------------------------------------------------------

EXAMPLES = ("best", "median", "worst")
ARM_COLUMNS = ["variant", "role", "strategy", "budget"]  # one arm at one budget of one model variant
TIE_ORDER = ["source", "target", "seed", "fold", "case"]  # equal sDice: the first of these in sorted order ranks lower
REFERENCE_RGBA = (0.1, 0.9, 0.2, 1.0)
PREDICTED_RGBA = (1.0, 0.2, 1.0, 1.0)
MISSED_RGBA = (0.2, 0.6, 1.0, 0.85)  # the error map lets the anatomy show through a little
SPURIOUS_RGBA = (1.0, 0.15, 0.1, 0.85)


def examples(scores: pd.DataFrame) -> pd.DataFrame:
    """The best, median and worst scored scan (by sDice) of every arm at every budget (``ARM_COLUMNS``), pooled over
    its pairs, seeds and folds: one row each, the score row with ``example`` and ``of`` (how many were ranked) added.
    The median is the lower middle of the ranking (of an even count, the worse of the two middle scans); ties are
    broken by ``TIE_ORDER`` so the choice never depends on the table's row order."""
    rows = []
    for _, arm in scores.groupby(ARM_COLUMNS, sort=False, dropna=False):
        ranked = arm.sort_values(["sdice", *TIE_ORDER], kind="stable", na_position="first")  # worst first
        last = len(ranked) - 1
        for example, position in zip(EXAMPLES, (last, last // 2, 0)):
            rows.append({**ranked.iloc[position].to_dict(), "example": example, "of": len(ranked)})
    return pd.DataFrame(rows, columns=[*scores.columns, "example", "of"])


@dataclass
class Prediction:
    """A scan, its reference mask, a model's predicted mask and where surface Dice loses (metrics.surface_misses)."""

    label: str
    image: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    missed: np.ndarray
    spurious: np.ndarray
    spacing: tuple[float, float, float]

    def worst_slice(self, axis: int) -> int:
        """The slice across ``axis`` through the reference brain with the most voxels of lost surface (slices outside
        the brain show no reference to compare with); a perfect prediction: the middle of the brain's extent."""
        others = tuple(a for a in range(3) if a != axis)
        lost = np.where(self.reference.any(axis=others), (self.missed | self.spurious).sum(axis=others), 0)
        return int(lost.argmax()) if lost.any() else slice_positions(self.reference, axis, 1)[0]


def _overlay(layers: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    """An RGBA image with each (2D mask, colour) painted in order (later layers on top)."""
    overlay = np.zeros((*layers[0][0].shape, 4))
    for mask, rgba in layers:
        overlay[mask] = rgba
    return overlay


def prediction_figure(predictions: list[Prediction], title: str):
    """One row per prediction; per plane (axial, coronal, sagittal) its slice with the most lost surface, twice: the
    reference contour and the predicted contour, then the surface error map (reference surface the prediction missed,
    predicted surface off the reference, each by more than the tolerance)."""
    columns = 2 * len(PLANES)
    figure, axes = plt.subplots(len(predictions), columns, figsize=(1.7 * columns, 2.0 * len(predictions) + 0.9),
                                squeeze=False)
    for row, shown in zip(axes, predictions):
        low, high = np.percentile(shown.image, [1, 99])
        for column, (name, axis) in enumerate(PLANES.items()):
            index = shown.worst_slice(axis)
            aspect = plane_aspect(shown.spacing, axis)
            image = plane(shown.image, axis, index)
            reference, predicted = plane(shown.reference, axis, index), plane(shown.predicted, axis, index)
            missed, spurious = plane(shown.missed, axis, index), plane(shown.spurious, axis, index)
            for ax, overlay, dim in ((row[2 * column], _overlay([(contour(reference), REFERENCE_RGBA),
                                                                  (contour(predicted), PREDICTED_RGBA)]), 1.0),
                                     (row[2 * column + 1], _overlay([(missed, MISSED_RGBA),
                                                                      (spurious, SPURIOUS_RGBA)]), 0.5)):
                ax.imshow(image * dim, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
                ax.imshow(overlay, aspect=aspect, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            row[2 * column].set_title(f"{name} {index}", fontsize=7)
            row[2 * column + 1].set_title(f"{name} {index}: errors", fontsize=7)
        row[0].set_ylabel(shown.label, fontsize=7)
    legend = [matplotlib.patches.Patch(color=rgba, label=text) for rgba, text in (
        (REFERENCE_RGBA, "reference contour"), (PREDICTED_RGBA, "predicted contour"),
        (MISSED_RGBA, "reference surface missed (> tolerance)"), (SPURIOUS_RGBA, "predicted surface off (> tolerance)"))]
    figure.legend(handles=legend, loc="lower center", ncol=4, fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return figure
