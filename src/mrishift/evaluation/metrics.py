"""Segmentation metrics: surface Dice (DeepMind's surfel algorithm), volumetric Dice, HD95, ASSD.

Surfaces follow Nikolov et al. (the `surface-distance` package): every 2×2(×2) block of voxels is one cell of the
voxel-corner lattice, its neighbourhood code says which corners are inside, and a cell whose corners are not all equal
is a surface element ("surfel") whose area (3D) or length (2D) is that of the marching-cubes/squares surface inside it,
scaled by the spacing. A surfel counts as overlapping when the other mask's nearest surfel is within the tolerance.

Speed: surface Dice only needs "is there a surfel of the other mask within τ", so instead of a distance transform of the
whole bounding box it tests the few lattice offsets whose length is <= τ (7 at τ = 1 spacing) at the surfel positions.
Large tolerances (many offsets) fall back to the exact Euclidean distance transform. Both give identical answers.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy import ndimage

MAX_OFFSETS = 343  # beyond a 7×7×7 neighbourhood the distance transform is cheaper than offset probing


def _check(mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for name, mask in (("mask_gt", mask_gt), ("mask_pred", mask_pred)):
        if not isinstance(mask, np.ndarray) or mask.dtype != bool:
            raise ValueError(f"{name} must be a boolean numpy array, got {getattr(mask, 'dtype', type(mask).__name__)}")
        if mask.ndim not in (2, 3):
            raise ValueError(f"{name} must be 2D or 3D, got {mask.ndim} dimensions")
    if mask_gt.shape != mask_pred.shape:
        raise ValueError(f"mask_gt {mask_gt.shape} and mask_pred {mask_pred.shape} have different shapes")
    spacing = np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (mask_gt.ndim,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must be {mask_gt.ndim} positive numbers, got {spacing_mm!r}")
    return mask_gt, mask_pred, spacing


# --- surfel areas -------------------------------------------------------------------------------------------------

@functools.cache
def _cell_area_vectors_3d() -> tuple[np.ndarray, ...]:
    """Per neighbourhood code (0..255), the area vectors (half cross products) of its marching-cubes triangles in a
    unit cell. Cells with more than four inside corners are triangulated as their complement, which resolves the
    ambiguous configurations the way DeepMind's table does (the surface of a cell is the same set either way)."""
    from skimage.measure import marching_cubes

    vectors = []
    for code in range(256):
        corners = np.array([(code >> (7 - bit)) & 1 for bit in range(8)], dtype=float).reshape(2, 2, 2)
        if code in (0, 255):
            vectors.append(np.zeros((0, 3)))
            continue
        if corners.sum() > 4:
            corners = 1.0 - corners
        verts, faces, _, _ = marching_cubes(corners, 0.5, method="lorensen", allow_degenerate=True)
        tri = verts[faces]
        vectors.append(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) / 2)
    return tuple(vectors)


def _cell_segments_2d(code: int) -> list[np.ndarray]:
    """Marching-squares segments of a 2×2 cell as (d0, d1) vectors in a unit cell (both saddle readings agree)."""
    c = [[(code >> 3) & 1, (code >> 2) & 1], [(code >> 1) & 1, code & 1]]
    crossings = {"top": c[0][0] != c[0][1], "bottom": c[1][0] != c[1][1],
                 "left": c[0][0] != c[1][0], "right": c[0][1] != c[1][1]}
    n = sum(crossings.values())
    if n == 0:
        return []
    if n == 4:
        return [np.array([0.5, 0.5])] * 2
    if crossings["top"] and crossings["bottom"]:
        return [np.array([1.0, 0.0])]
    if crossings["left"] and crossings["right"]:
        return [np.array([0.0, 1.0])]
    return [np.array([0.5, 0.5])]


@functools.lru_cache(maxsize=64)
def surfel_area_table(spacing_mm: tuple[float, ...]) -> np.ndarray:
    """Area (3D, mm²) or length (2D, mm) of the surface inside a cell, for every neighbourhood code."""
    s = np.asarray(spacing_mm, dtype=float)
    if len(s) == 3:
        scale = np.array([s[1] * s[2], s[0] * s[2], s[0] * s[1]])  # how an area vector stretches under diag(s)
        return np.array([np.linalg.norm(v * scale, axis=1).sum() for v in _cell_area_vectors_3d()])
    return np.array([sum(np.linalg.norm(v * s) for v in _cell_segments_2d(code)) for code in range(16)])


# --- surfels ------------------------------------------------------------------------------------------------------

def _crop_to_union(mask_gt, mask_pred):
    """Both masks cropped to their joint bounding box with one empty voxel of padding on every side, and the box's
    first voxel."""
    nonzero = np.argwhere(mask_gt | mask_pred)
    lo, hi = nonzero.min(axis=0), nonzero.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return np.pad(mask_gt[box], 1), np.pad(mask_pred[box], 1), lo


def _neighbour_codes(padded: np.ndarray) -> np.ndarray:
    """Code of every cell between adjacent voxels: bit 2^(k-1) for the cell's first corner down to 2^0 for its last."""
    ndim = padded.ndim
    n_bits = 2**ndim
    cells = tuple(s - 1 for s in padded.shape)
    codes = np.zeros(cells, dtype=np.uint8)
    for bit, offset in enumerate(itertools.product((0, 1), repeat=ndim)):
        corner = padded[tuple(slice(o, o + n) for o, n in zip(offset, cells))]
        codes |= corner.astype(np.uint8) << np.uint8(n_bits - 1 - bit)
    return codes


class _Surface:
    """Surfel positions (on the cell lattice) and their areas for one mask."""

    def __init__(self, padded: np.ndarray, spacing: np.ndarray):
        codes = _neighbour_codes(padded)
        self.border = (codes != 0) & (codes != 2 ** (2**padded.ndim) - 1)
        self.index = np.flatnonzero(self.border)
        self.areas = surfel_area_table(tuple(spacing.tolist()))[codes.ravel()[self.index]]


def _offsets_within(tolerance_mm: float, spacing: np.ndarray) -> np.ndarray:
    radius = np.floor(tolerance_mm / spacing).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in radius], indexing="ij"), -1).reshape(-1, len(spacing))
    # the same arithmetic as the distance transform's, so boundary cases agree bit for bit
    lengths = np.sqrt(((grid * spacing) ** 2).sum(axis=1))
    return grid[lengths <= tolerance_mm]


def _within_tolerance(source: _Surface, target: _Surface, spacing: np.ndarray, tolerance_mm: float) -> np.ndarray:
    """For each surfel of `source`: is any surfel of `target` at most tolerance_mm away?"""
    offsets = _offsets_within(tolerance_mm, spacing)
    shape = source.border.shape
    if len(offsets) > MAX_OFFSETS:
        return _distances(source, target, spacing) <= tolerance_mm
    radius = np.abs(offsets).max(axis=0)
    padded = np.pad(target.border, [(r, r) for r in radius])
    position = np.unravel_index(source.index, shape)
    flat = np.ravel_multi_index(tuple(p + r for p, r in zip(position, radius)), padded.shape)
    steps = np.ravel_multi_index(tuple((offsets + radius).T), padded.shape) - np.ravel_multi_index(
        tuple(radius), padded.shape)
    hit = np.zeros(len(flat), dtype=bool)
    padded_flat = padded.ravel()
    for step in steps:
        hit |= padded_flat[flat + step]
    return hit


def _distances(source: _Surface, target: _Surface, spacing: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) from each surfel of `source` to the nearest surfel of `target`."""
    distance_map = ndimage.distance_transform_edt(~target.border, sampling=spacing)
    return distance_map.ravel()[source.index]


def _surfaces(mask_gt, mask_pred, spacing):
    padded_gt, padded_pred, _ = _crop_to_union(mask_gt, mask_pred)
    return _Surface(padded_gt, spacing), _Surface(padded_pred, spacing)


# --- public metrics -----------------------------------------------------------------------------------------------

def _check_tolerance(tolerance_mm: float) -> None:
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm!r}")


def surface_dice(mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm, tolerance_mm: float) -> float:
    """Normalised surface Dice at `tolerance_mm`: the share of both surfaces' area lying within the tolerance of the
    other surface. Both masks empty → NaN (undefined); exactly one empty → 0.0."""
    mask_gt, mask_pred, spacing = _check(mask_gt, mask_pred, spacing_mm)
    _check_tolerance(tolerance_mm)
    has_gt, has_pred = mask_gt.any(), mask_pred.any()
    if not (has_gt or has_pred):
        return float("nan")
    if not (has_gt and has_pred):
        return 0.0
    gt, pred = _surfaces(mask_gt, mask_pred, spacing)
    overlap = gt.areas[_within_tolerance(gt, pred, spacing, tolerance_mm)].sum() + \
        pred.areas[_within_tolerance(pred, gt, spacing, tolerance_mm)].sum()
    return float(overlap / (gt.areas.sum() + pred.areas.sum()))


def dice(mask_gt: np.ndarray, mask_pred: np.ndarray) -> float:
    """Volumetric Dice 2|A∩B| / (|A| + |B|); NaN when both masks are empty."""
    mask_gt, mask_pred, _ = _check(mask_gt, mask_pred, [1.0] * getattr(mask_gt, "ndim", 0))
    total = int(mask_gt.sum()) + int(mask_pred.sum())
    return float("nan") if total == 0 else 2.0 * int(np.logical_and(mask_gt, mask_pred).sum()) / total


def _directed_distances(mask_gt, mask_pred, spacing_mm):
    """((gt→pred distances, gt areas), (pred→gt distances, pred areas)), or None when a mask is empty; and whether
    both are."""
    mask_gt, mask_pred, spacing = _check(mask_gt, mask_pred, spacing_mm)
    has_gt, has_pred = mask_gt.any(), mask_pred.any()
    if not (has_gt and has_pred):
        return None, not (has_gt or has_pred)
    gt, pred = _surfaces(mask_gt, mask_pred, spacing)
    return ((_distances(gt, pred, spacing), gt.areas), (_distances(pred, gt, spacing), pred.areas)), False


def _hd95_of(directed) -> float:
    percentiles = []
    for distances, areas in directed:
        order = np.argsort(distances, kind="stable")
        cumulative = np.cumsum(areas[order]) / areas.sum()
        position = min(int(np.searchsorted(cumulative, 0.95)), len(order) - 1)
        percentiles.append(distances[order][position])
    return float(max(percentiles))


def _assd_of(directed) -> float:
    return float(np.mean([np.average(distances, weights=areas) for distances, areas in directed]))


def _distance_metric(of, mask_gt, mask_pred, spacing_mm) -> float:
    directed, both_empty = _directed_distances(mask_gt, mask_pred, spacing_mm)
    if directed is None:
        return float("nan") if both_empty else float("inf")
    return of(directed)


def hd95(mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm), each direction's percentile weighted by surfel area.
    Both masks empty → NaN; exactly one empty → inf."""
    return _distance_metric(_hd95_of, mask_gt, mask_pred, spacing_mm)


def assd(mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm) -> float:
    """Average symmetric surface distance (mm): the mean of the two area-weighted directed mean distances.
    Both masks empty → NaN; exactly one empty → inf."""
    return _distance_metric(_assd_of, mask_gt, mask_pred, spacing_mm)


def surface_scores(mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm, tolerance_mm: float) -> dict[str, float]:
    """surface_dice, hd95 and assd of one pair from a single set of surfels and distance transforms (the per-scan
    scores of the workflow); each value equals what its own function returns."""
    _check_tolerance(tolerance_mm)
    directed, both_empty = _directed_distances(mask_gt, mask_pred, spacing_mm)
    if directed is None:
        empty = float("nan") if both_empty else float("inf")
        return {"sdice": float("nan") if both_empty else 0.0, "hd95_mm": empty, "assd_mm": empty}
    overlap = sum(areas[distances <= tolerance_mm].sum() for distances, areas in directed)
    return {"sdice": float(overlap / sum(areas.sum() for _, areas in directed)),
            "hd95_mm": _hd95_of(directed), "assd_mm": _assd_of(directed)}


def surface_misses(mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm,
                   tolerance_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Where surface Dice loses, as voxel maps of the masks' shape: (missed, spurious) = the voxels touching a surfel
    of the reference (missed) or of the prediction (spurious) whose nearest surfel of the other mask is farther than
    ``tolerance_mm`` — the surfels surface Dice does not count, found exactly as surface_dice finds them. A surfel lies
    between voxels, so it marks the 2^d voxels of its cell (a band two voxels wide along the surface)."""
    mask_gt, mask_pred, spacing = _check(mask_gt, mask_pred, spacing_mm)
    _check_tolerance(tolerance_mm)
    missed, spurious = (np.zeros(mask_gt.shape, dtype=bool) for _ in range(2))
    if not (mask_gt.any() and mask_pred.any()):  # one mask empty: the whole of the other's surface is lost
        for lost, mask in ((missed, mask_gt), (spurious, mask_pred)):
            lost |= mask & ~ndimage.binary_erosion(mask, border_value=0)
        return missed, spurious
    padded_gt, padded_pred, origin = _crop_to_union(mask_gt, mask_pred)
    gt, pred = _Surface(padded_gt, spacing), _Surface(padded_pred, spacing)
    for lost, own, other in ((missed, gt, pred), (spurious, pred, gt)):
        far = np.zeros(own.border.shape, dtype=bool)
        far.ravel()[own.index[~_within_tolerance(own, other, spacing, tolerance_mm)]] = True
        # cell c of the cropped lattice lies between padded voxels c and c + 1, i.e. mask voxels origin + c - 1 and
        # origin + c; each of its corners that falls inside the volume is marked
        for corner in itertools.product((0, 1), repeat=far.ndim):
            voxels = np.argwhere(far) + origin - 1 + np.array(corner)
            inside = np.all((voxels >= 0) & (voxels < np.array(mask_gt.shape)), axis=1)
            lost[tuple(voxels[inside].T)] = True
    return missed, spurious
