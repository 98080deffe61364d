"""Surface Dice and friends: hand-derived geometry, edge cases, and agreement with DeepMind's surface-distance."""

import math

import numpy as np
import pytest
from needs import missing
from scipy import ndimage

from mrishift.data.synthetic import load_reference_head
from mrishift.evaluation import metrics
from mrishift.evaluation.metrics import assd, dice, hd95, surface_dice

try:
    import surface_distance
except ImportError:
    missing("DeepMind's surface-distance (requirements.txt) is not installed", module_level=True)


def voxel(shape, *index):
    mask = np.zeros(shape, dtype=bool)
    mask[index] = True
    return mask


# --- known answers -------------------------------------------------------------------------------------------------

def test_single_pixel_perimeter_is_four_corner_cuts():
    # a lone pixel touches 4 cells, each cut by a segment between two edge midpoints: 0.5·sqrt(s0² + s1²) long
    table = metrics.surfel_area_table((1.0, 2.0))
    assert table[0b1000] == pytest.approx(0.5 * math.sqrt(1 + 4))
    assert table[0b1100] == pytest.approx(2.0)  # two top corners inside: a straight cut along axis 1
    assert table[0b1010] == pytest.approx(1.0)  # two left corners inside: a straight cut along axis 0
    assert table[0b1001] == pytest.approx(2 * 0.5 * math.sqrt(5))  # saddle: two cuts


def test_single_voxel_surface_area_is_sqrt3():
    # 8 cells, each one corner-cut triangle with area vector (1/8, 1/8, 1/8)
    table = metrics.surfel_area_table((1.0, 1.0, 1.0))
    assert 8 * table[0b10000000] == pytest.approx(math.sqrt(3))
    assert table[0] == table[255] == 0


def test_square_perimeter():
    # n×n square: 2(n-1) straight cells along each axis plus 4 corner cuts
    n, s = 6, (1.5, 0.5)
    mask = np.zeros((12, 12), dtype=bool)
    mask[3:3 + n, 2:2 + n] = True
    gt, _ = metrics._surfaces(mask, mask, np.array(s))
    expected = 2 * (n - 1) * s[0] + 2 * (n - 1) * s[1] + 4 * 0.5 * math.hypot(*s)
    assert gt.areas.sum() == pytest.approx(expected)


@pytest.mark.parametrize("spacing, tolerance, expected", [
    ((1, 1, 1), 0.0, 0.25), ((1, 1, 1), 1.0, 0.75), ((1, 1, 1), 1.4, 0.75), ((1, 1, 1), 1.5, 1.0),
    # anisotropic: the 8 surfels of each voxel lie at 0, 1 mm (axis 0), 2 mm (axis 1) and sqrt(5) mm from the other's
    ((1, 2, 1), 0.99, 0.25), ((1, 2, 1), 1.0, 0.5), ((1, 2, 1), 2.0, 0.75), ((1, 2, 1), 2.2, 0.75),
    ((1, 2, 1), 2.24, 1.0),
])
def test_diagonal_voxels(spacing, tolerance, expected):
    gt, pred = voxel((6, 6, 6), 2, 2, 2), voxel((6, 6, 6), 3, 3, 2)
    assert surface_dice(gt, pred, spacing, tolerance) == pytest.approx(expected)
    assert surface_dice(pred, gt, spacing, tolerance) == pytest.approx(expected)


@pytest.mark.parametrize("tolerance, expected", [(0.0, 0.5), (1.0, 0.5), (1.99, 0.5), (2.0, 1.0)])
def test_pixels_one_voxel_apart_along_a_2mm_axis(tolerance, expected):
    gt, pred = voxel((5, 5), 2, 2), voxel((5, 5), 2, 3)
    assert surface_dice(gt, pred, (1.0, 2.0), tolerance) == pytest.approx(expected)


def test_far_apart_cubes_score_zero_and_identical_ones_one():
    gt = np.zeros((20, 20, 20), dtype=bool)
    gt[2:6, 2:6, 2:6] = True
    far = np.roll(gt, 10, axis=0)
    assert surface_dice(gt, far, (1, 1, 1), 3.0) == 0.0
    assert surface_dice(gt, gt, (0.7, 1, 3), 0.0) == 1.0
    assert dice(gt, far) == 0.0 and dice(gt, gt) == 1.0
    assert hd95(gt, gt, (1, 1, 1)) == 0.0 and assd(gt, gt, (1, 1, 1)) == 0.0
    assert hd95(gt, far, (2, 1, 1)) == pytest.approx(20.0)  # every surfel moved by 10 voxels of 2 mm


def test_dice_known_value():
    gt, pred = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    gt[:2], pred[1:3] = True, True  # 8 and 8 pixels, 4 shared
    assert dice(gt, pred) == 0.5


# --- edge cases ----------------------------------------------------------------------------------------------------

def test_empty_masks():
    empty, full = np.zeros((5, 5, 5), bool), voxel((5, 5, 5), 2, 2, 2)
    assert math.isnan(surface_dice(empty, empty, (1, 1, 1), 1.0))
    assert surface_dice(empty, full, (1, 1, 1), 1.0) == 0.0
    assert surface_dice(full, empty, (1, 1, 1), 1.0) == 0.0
    assert math.isnan(dice(empty, empty)) and dice(full, empty) == 0.0
    assert math.isnan(hd95(empty, empty, (1, 1, 1))) and hd95(empty, full, (1, 1, 1)) == math.inf
    assert math.isnan(assd(empty, empty, (1, 1, 1))) and assd(full, empty, (1, 1, 1)) == math.inf


@pytest.mark.parametrize("gt, pred, spacing, message", [
    (np.zeros((4, 4), bool), np.zeros((4, 5), bool), (1, 1), "different shapes"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), (1, 1), "mask_gt must be a boolean"),
    (np.zeros((4, 4), bool), np.zeros((4, 4), float), (1, 1), "mask_pred must be a boolean"),
    (np.zeros(4, bool), np.zeros(4, bool), (1,), "2D or 3D"),
    (np.zeros((2, 2, 2, 2), bool), np.zeros((2, 2, 2, 2), bool), (1, 1, 1, 1), "2D or 3D"),
    (np.zeros((4, 4), bool), np.zeros((4, 4), bool), (1, 1, 1), "spacing_mm must be 2 positive"),
    (np.zeros((4, 4), bool), np.zeros((4, 4), bool), (1, 0), "spacing_mm must be 2 positive"),
])
def test_bad_inputs_raise(gt, pred, spacing, message):
    with pytest.raises(ValueError, match=message):
        surface_dice(gt, pred, spacing, 1.0)


def test_negative_tolerance_raises():
    with pytest.raises(ValueError, match="tolerance_mm"):
        surface_dice(voxel((3, 3), 1, 1), voxel((3, 3), 1, 1), (1, 1), -1.0)


# --- agreement with DeepMind's implementation -------------------------------------------------------------------

def reference(gt, pred, spacing, tolerance):
    distances = surface_distance.compute_surface_distances(gt, pred, spacing)
    return (surface_distance.compute_surface_dice_at_tolerance(distances, tolerance),
            surface_distance.compute_robust_hausdorff(distances, 95),
            float(np.mean(surface_distance.compute_average_surface_distance(distances))))


def random_pair(rng, shape, smooth):
    def blob():
        return ndimage.gaussian_filter(rng.random(shape), smooth) > 0.5
    return blob(), blob()


@pytest.mark.parametrize("ndim", [2, 3])
def test_matches_surface_distance_on_random_masks(ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(12):
        gt, pred = random_pair(rng, (28,) * ndim, rng.uniform(1, 3))
        spacing = tuple(rng.uniform(0.5, 2.5, ndim))
        tolerance = float(rng.choice([0.0, 0.5, 1.0, 2.0, 4.0, 12.0]))
        ref_sdice, ref_hd95, ref_assd = reference(gt, pred, spacing, tolerance)
        assert surface_dice(gt, pred, spacing, tolerance) == pytest.approx(ref_sdice, abs=1e-6)
        assert hd95(gt, pred, spacing) == pytest.approx(ref_hd95, abs=1e-6)
        assert assd(gt, pred, spacing) == pytest.approx(ref_assd, abs=1e-6)


def test_matches_surface_distance_on_anatomical_masks():
    head = load_reference_head()
    gt = head.mask > 0.5
    pred = ndimage.binary_erosion(ndimage.shift(gt.astype(float), (1.3, -0.7, 0.4), order=1) > 0.5)
    assert gt.sum() > 100_000 and pred.sum() > 100_000
    for spacing, tolerance in [((1.5, 1.5, 1.5), 1.0), ((1.2, 0.9375, 0.9375), 1.0), ((1.0, 1.33, 1.0), 2.0)]:
        ref_sdice, ref_hd95, ref_assd = reference(gt, pred, spacing, tolerance)
        ours = surface_dice(gt, pred, spacing, tolerance)
        assert 0.05 < ours < 0.99
        assert ours == pytest.approx(ref_sdice, abs=1e-6)
        assert hd95(gt, pred, spacing) == pytest.approx(ref_hd95, abs=1e-6)
        assert assd(gt, pred, spacing) == pytest.approx(ref_assd, abs=1e-6)


def test_surface_scores_equal_the_single_metrics():
    rng = np.random.default_rng(11)
    empty = np.zeros((20, 20, 20), bool)
    pairs = [random_pair(rng, (20, 20, 20), 2) for _ in range(4)] + [(empty, empty), (empty, voxel((20,) * 3, 5, 5, 5))]
    for gt, pred in pairs:
        for tolerance in (0.0, 1.0, 2.5, 9.0):
            scores = metrics.surface_scores(gt, pred, (0.9, 1.3, 2.0), tolerance)
            expected = {"sdice": surface_dice(gt, pred, (0.9, 1.3, 2.0), tolerance),
                        "hd95_mm": hd95(gt, pred, (0.9, 1.3, 2.0)), "assd_mm": assd(gt, pred, (0.9, 1.3, 2.0))}
            assert scores.keys() == expected.keys()
            for key, value in expected.items():
                assert scores[key] == value or (math.isnan(scores[key]) and math.isnan(value)), (key, tolerance)
    with pytest.raises(ValueError, match="tolerance_mm"):
        metrics.surface_scores(empty, empty, (1, 1, 1), -1.0)


def test_offset_probing_equals_distance_transform(monkeypatch):
    rng = np.random.default_rng(7)
    gt, pred = random_pair(rng, (30, 30, 30), 2)
    spacing = (0.8, 1.1, 2.0)
    probed = [surface_dice(gt, pred, spacing, t) for t in (0.5, 1.0, 2.2, 3.0)]
    monkeypatch.setattr(metrics, "MAX_OFFSETS", 0)  # always take the distance-transform path
    assert [surface_dice(gt, pred, spacing, t) for t in (0.5, 1.0, 2.2, 3.0)] == probed


def test_surface_misses_mark_exactly_the_surface_beyond_the_tolerance():
    reference = np.zeros((30, 30), bool)
    reference[10:20, 10:20] = True
    predicted = np.zeros_like(reference)
    predicted[10:20, 10:26] = True  # six voxels more to the right
    missed, spurious = metrics.surface_misses(reference, predicted, (1.0, 1.0), 1.0)
    # the reference's right edge (between columns 19 and 20) is farther than 1 from the prediction's surface except
    # within 1 of its top and bottom edges: cells at rows 12..18, each marking voxels rows r-1..r, columns 19..20
    expected_missed = np.zeros_like(reference)
    expected_missed[11:19, 19:21] = True
    assert np.array_equal(missed, expected_missed)
    # the prediction's right edge and its top and bottom edges beyond column 21 are off the reference
    expected_spurious = np.zeros_like(reference)
    expected_spurious[9:11, 21:27] = expected_spurious[19:21, 21:27] = expected_spurious[9:21, 25:27] = True
    assert np.array_equal(spurious, expected_spurious)
    assert not (missed | spurious)[:, :19].any()  # the shared left part loses nothing
    nothing = metrics.surface_misses(reference, reference, (1.0, 1.0), 0.0)
    assert not nothing[0].any() and not nothing[1].any()
    far_tolerance = metrics.surface_misses(reference, predicted, (1.0, 1.0), 6.0)
    assert surface_dice(reference, predicted, (1.0, 1.0), 6.0) == 1.0
    assert not far_tolerance[0].any() and not far_tolerance[1].any()


def test_surface_misses_of_an_empty_prediction_is_the_whole_reference_surface():
    reference = np.zeros((8, 8, 8), bool)
    reference[2:6, 2:6, 2:6] = True
    missed, spurious = metrics.surface_misses(reference, np.zeros_like(reference), (1.0, 1.0, 1.0), 2.0)
    assert missed.sum() == 4**3 - 2**3 and not spurious.any()
