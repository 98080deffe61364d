import numpy as np
import pytest
import SimpleITK as sitk

from mrishift.data.preprocess import resample_pair, scale_intensity
from mrishift.data.volumes import VolumeError


def anisotropic_pair():
    """An ellipsoid 'brain' on a 1.33 × 0.9 × 1.1 mm grid stored in a non-RAS orientation (SAR)."""
    spacing = (1.33, 0.9, 1.1)
    shape = (60, 90, 70)  # numpy (x, y, z) order
    grid = np.indices(shape).astype(float) * np.array(spacing)[:, None, None, None]
    centre = np.array(shape) * np.array(spacing) / 2
    inside = (((grid - centre[:, None, None, None]) / np.array([30, 35, 28])[:, None, None, None]) ** 2).sum(0) <= 1
    images = []
    for array in (inside * 100.0 + 5.0, inside.astype(np.uint8)):
        image = sitk.GetImageFromArray(array.transpose(2, 1, 0))
        image.SetSpacing(spacing)
        image.SetDirection((0, 0, -1, 0, -1, 0, 1, 0, 0))  # stored axes point to S, A, R
        images.append(image)
    return images[0], images[1], inside.sum() * np.prod(spacing)


def test_resampling_keeps_extent_and_brain_volume():
    image, mask, volume_mm3 = anisotropic_pair()
    out_image, out_mask = resample_pair(image, mask, (1.0, 1.0, 1.0))
    extent_in = sorted(np.array(image.GetSize()) * np.array(image.GetSpacing()))
    extent_out = sorted(np.array(out_image.GetSize()) * np.array(out_image.GetSpacing()))
    assert np.allclose(extent_in, extent_out, atol=1.0)  # within one output voxel
    assert out_mask.GetPixelID() == sitk.sitkUInt8 and out_image.GetPixelID() == sitk.sitkFloat32
    mask_array = sitk.GetArrayFromImage(out_mask)
    assert set(np.unique(mask_array)) == {0, 1}
    assert abs(mask_array.sum() * 1.0 - volume_mm3) / volume_mm3 < 0.01
    # The physical centre of the brain does not move.
    assert np.allclose(out_image.TransformContinuousIndexToPhysicalPoint((np.array(out_image.GetSize()) - 1) / 2),
                       image.TransformContinuousIndexToPhysicalPoint((np.array(image.GetSize()) - 1) / 2), atol=0.5)


def test_canonical_orientation_is_ras():
    image, mask, _ = anisotropic_pair()
    out_image, out_mask = resample_pair(image, mask, (2.0, 2.0, 2.0), "bspline")
    # ITK's LPS world: RAS = directions (-1, -1, +1) on the diagonal; axial slices along the last axis.
    assert out_image.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    assert out_mask.GetDirection() == out_image.GetDirection()


def test_scale_intensity_range_and_clipping():
    rng = np.random.default_rng(0)
    array = rng.normal(100, 20, size=(20, 20, 20))
    array[0, 0, 0] = 1e6  # an outlier is clipped, not allowed to squash the scale
    scaled = scale_intensity(array, (1, 99))
    assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0
    assert 0.4 < np.median(scaled) < 0.6
    with pytest.raises(VolumeError, match="constant"):
        scale_intensity(np.ones((4, 4, 4)))
    with pytest.raises(VolumeError, match="non-finite"):
        scale_intensity(np.array([[[np.nan, 1.0]]]))
