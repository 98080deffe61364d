"""Visual QC mosaics: contours on the mask's boundary, slices inside the mask, RAS display orientation."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrishift.data.volumes import VolumeError
from mrishift.evaluation import metrics, qc


def test_the_contour_of_a_square_is_exactly_its_boundary():
    mask = np.zeros((12, 12), bool)
    mask[3:9, 2:8] = True  # rows 3..8, columns 2..7
    boundary = np.zeros_like(mask)
    boundary[3:9, 2:8] = True
    boundary[4:8, 3:7] = False
    assert np.array_equal(qc.contour(mask), boundary)
    assert qc.contour(mask).sum() == 2 * 6 + 2 * 4
    edge = np.ones((4, 4), bool)  # a mask touching the image edge is closed there
    assert qc.contour(edge).sum() == 12 and not qc.contour(edge)[1:3, 1:3].any()


def test_slices_are_spread_strictly_inside_the_masks_extent():
    mask = np.zeros((20, 30, 40), bool)
    mask[5:15, 10:21, 8:33] = True  # axis 2: slices 8..32
    assert qc.slice_positions(mask, axis=2, count=3) == [14, 20, 26]
    assert qc.slice_positions(mask, axis=0, count=1) == [10]
    with pytest.raises(ValueError, match="empty"):
        qc.slice_positions(np.zeros((4, 4, 4), bool), 0, 2)


def test_planes_put_superior_and_anterior_up():
    volume = np.zeros((4, 5, 6))
    volume[1, 2, 5] = 1  # the most superior axial slice
    coronal = qc.plane(volume, axis=1, index=2)  # rows: S → I, columns: R increasing
    assert coronal.shape == (6, 4) and coronal[0, 1] == 1
    volume[:] = 0
    volume[3, 4, 0] = 1  # most anterior, at x = 3
    axial = qc.plane(volume, axis=2, index=0)
    assert axial.shape == (5, 4) and axial[0, 3] == 1
    assert qc.plane_aspect((1.0, 2.0, 3.0), axis=2) == 2.0 and qc.plane_aspect((1.0, 2.0, 3.0), axis=0) == 1.5


def test_a_raw_scan_in_another_orientation_is_shown_in_ras(tmp_path):
    image = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    mask = np.zeros((6, 7, 8), np.uint8)
    mask[1:4, 2:5, 3:6] = 1
    las = np.diag([-2.0, 1.0, 1.5, 1.0])  # x flipped, anisotropic
    nib.save(nib.Nifti1Image(image, las), str(tmp_path / "image.nii.gz"))
    nib.save(nib.Nifti1Image(mask, las), str(tmp_path / "mask.nii.gz"))
    scan = qc.Scan.read("raw", tmp_path / "image.nii.gz", tmp_path / "mask.nii.gz")
    assert np.array_equal(scan.image, image[::-1]) and scan.spacing == (2.0, 1.0, 1.5)
    figure = qc.mosaic_figure([scan, scan], per_plane=2, title="t")
    assert len(figure.axes) == 2 * 2 * 3
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 8), np.uint8), las), str(tmp_path / "empty.nii.gz"))
    with pytest.raises(VolumeError, match="empty.nii.gz: the mask is empty"):
        qc.Scan.read("raw", tmp_path / "image.nii.gz", tmp_path / "empty.nii.gz")


def score_rows(role, strategy, budget, scores):
    """Score rows of one arm: (source, case, sdice) each, target siemens_3, seed 0."""
    return [{"variant": "unet2d_residual", "role": role, "strategy": strategy, "source": source,
             "target": "siemens_3", "budget": budget, "seed": "0", "fold": np.nan, "case": case, "sdice": sdice}
            for source, case, sdice in scores]


def test_best_median_and_worst_of_each_arm_and_budget():
    rows = score_rows("finetune", "ft_first", "3scans", [("ge_3", "a", 0.9), ("ge_3", "b", 0.5), ("ge_3", "c", 0.7),
                                                         ("ge_3", "d", 0.2), ("ge_3", "e", 0.8)])
    rows += score_rows("finetune", "ft_first", "every12", [("ge_3", "a", 0.6), ("ge_3", "b", 0.4), ("ge_15", "c", 0.6),
                                                           ("ge_3", "d", 0.8)])
    rows += score_rows("baseline", "none", np.nan, [("ge_3", "a", 0.3), ("ge_15", "b", 0.1)])
    scores = pd.DataFrame(rows)
    chosen = qc.examples(scores)
    picked = {(r.strategy, r.budget if isinstance(r.budget, str) else "-", r.example): (r.case, r.sdice, r.of)
              for r in chosen.itertuples()}
    assert picked == {
        ("ft_first", "3scans", "best"): ("a", 0.9, 5), ("ft_first", "3scans", "median"): ("c", 0.7, 5),
        ("ft_first", "3scans", "worst"): ("d", 0.2, 5),
        # an even count: the worse middle scan; the tie at 0.6 goes to the source first in sorted order (ge_15)
        ("ft_first", "every12", "best"): ("d", 0.8, 4), ("ft_first", "every12", "median"): ("c", 0.6, 4),
        ("ft_first", "every12", "worst"): ("b", 0.4, 4),
        # two scans: the median is the worse one
        ("none", "-", "best"): ("a", 0.3, 2), ("none", "-", "median"): ("b", 0.1, 2),
        ("none", "-", "worst"): ("b", 0.1, 2)}
    shuffled = qc.examples(scores.sample(frac=1.0, random_state=3))
    key = ["strategy", "budget", "example"]
    assert shuffled.sort_values(key).case.tolist() == chosen.sort_values(key).case.tolist()


def test_prediction_figure_draws_both_contours_and_the_error_map():
    reference = np.zeros((12, 14, 10), bool)
    reference[3:9, 4:10, 2:8] = True
    predicted = np.roll(reference, 3, axis=0)
    missed, spurious = metrics.surface_misses(reference, predicted, (1.0, 1.0, 1.0), 1.0)
    image = reference.astype(np.float32)
    shown = qc.Prediction("worst", image, reference, predicted, missed, spurious, (1.0, 1.0, 1.0))
    # lost surface per x slice: 0 0 64 64 48 16 16 0 16 16 48 64; the brain spans x = 3..8, so 2 and 11 are not shown
    assert shown.worst_slice(axis=0) == 3
    outside = qc.Prediction("worst", image, reference, np.zeros_like(reference), reference.copy(),
                            np.ones_like(reference), (1.0, 1.0, 1.0))  # everything lost: a slice through the brain
    assert outside.worst_slice(axis=2) == 2
    perfect = qc.Prediction("best", image, reference, reference, *metrics.surface_misses(
        reference, reference, (1.0, 1.0, 1.0), 1.0), (1.0, 1.0, 1.0))
    assert perfect.worst_slice(axis=2) == 4  # nothing lost: the middle of the mask's extent (2..7)
    figure = qc.prediction_figure([shown, perfect], "t")
    assert len(figure.axes) == 2 * 6
    error_panel = figure.axes[1].get_images()[1].get_array()  # the axial error map of the first row
    assert error_panel[..., 3].any()  # something drawn
