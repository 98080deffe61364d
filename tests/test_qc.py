"""Visual QC mosaics: contours on the mask's boundary, slices inside the mask, RAS display orientation."""

import nibabel as nib
import numpy as np
import pytest

from mrishift import qc
from mrishift.data.volumes import VolumeError


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
