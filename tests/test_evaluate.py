"""Whole-volume inference: exact geometry of padding, slicing and thresholding."""

import numpy as np
import torch

from mrishift.evaluation.scoring import predict_volume
from mrishift.models import networks


class Threshold(torch.nn.Module):
    """A network whose logit is image − 0.5, so its mask must equal image >= 0.5 voxel for voxel."""

    stride = 8

    def forward(self, x):
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        return x - 0.5


def test_prediction_is_aligned_with_the_volume():
    image = np.random.default_rng(0).random((37, 45, 11)).astype(np.float32)
    mask = predict_volume(Threshold(), image, batch_size=4, device="cpu")
    assert mask.dtype == bool and mask.shape == image.shape
    assert np.array_equal(mask, image >= 0.5)


def test_real_network_predicts_every_slice_in_eval_mode():
    model = networks.build("unet2d_residual", width=0.25)
    image = np.random.default_rng(1).random((40, 24, 6)).astype(np.float32)
    first = predict_volume(model, image, batch_size=2, device="cpu")
    assert not model.training and first.shape == image.shape
    assert np.array_equal(first, predict_volume(model, image, batch_size=6, device="cpu"))  # batching changes nothing


def test_prediction_leaves_the_network_trainable_in_its_memory_format():
    """A run validating between epochs trains on afterwards: predicting must neither turn the parameters into
    inference tensors (autograd refuses to save those for backward) nor change their memory format."""
    image = np.random.default_rng(2).random((16, 16, 4)).astype(np.float32)
    for channels_last in (False, True):
        model = networks.build("unet2d_residual", width=0.25)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        before = [p.stride() for p in model.parameters()]
        predict_volume(model, image, batch_size=4, device="cpu", channels_last=True)
        assert not any(p.is_inference() for p in model.parameters())
        assert [p.stride() for p in model.parameters()] == before
        model.train()
        model(torch.rand(2, 1, 16, 16)).sum().backward()  # what failed before: "Inference tensors cannot be saved"
        assert all(p.grad is not None for p in model.parameters())


def test_a_truncated_preprocessed_volume_is_caught_with_its_name(tmp_path):
    import pytest

    from mrishift.data.scans import load_case, scan_files
    from mrishift.data.volumes import VolumeError, save_volume

    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    image = tmp_path / "preprocessed" / "CC0120_image.nii.gz"
    save_volume(image, np.random.default_rng(0).random((16, 16, 8), dtype=np.float32), affine)
    save_volume(tmp_path / "resampled" / "CC0120_mask.nii.gz", np.ones((16, 16, 8), np.uint8), affine)
    files = scan_files([str(image)], [str(tmp_path / "resampled" / "CC0120_mask.nii.gz")])
    assert load_case("CC0120", files)[0].array.shape == (16, 16, 8)
    with pytest.raises(ValueError, match="CC0121: not among the 1 scans this job was given"):
        load_case("CC0121", files)
    image.write_bytes(image.read_bytes()[:-200])  # a job killed while copying, a full disk
    with pytest.raises(VolumeError, match=f"{image}: unreadable or corrupt NIfTI"):
        load_case("CC0120", files)
    with pytest.raises(ValueError, match=r"images only \['CC0120'\], masks only \[\]"):
        scan_files([str(image)], [])
