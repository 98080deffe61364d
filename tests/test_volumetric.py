"""The 3D U-Net: shapes and layer groups, patch sampling around labelled slices, the loss over labelled voxels, exact
sliding-window reconstruction, and training, resuming and adapting through the same paths as the 2D networks."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

from mrishift.adaptation import strategies
from mrishift.adaptation.losses import IGNORE, segmentation_loss
from mrishift.config import ConfigError, validate_config
from mrishift.evaluation.scoring import predict_volume, sliding_window_logits
from mrishift.models import networks
from mrishift.models.inputs import volume_windows, window_starts
from mrishift.training.loop import Recipe, train
from mrishift.training.runs import load_model, save_model
from mrishift.training.sampling import PatchSampler, sampler

ROOT = Path(__file__).resolve().parents[1]


def residual_block_3d(c):  # two pre-activations: BN (weight + bias) then a bias-free 3×3×3 conv
    return 2 * (2 * c + c * c * 27)


def test_3d_unet_shapes_strides_and_equal_first_and_last_groups():
    model = networks.build("unet3d_residual")
    assert (model.dims, networks.dims("unet3d_residual"), networks.dims("unet2d_residual")) == (3, 3, 2)
    assert model.stride == networks.stride("unet3d_residual") == 8
    groups = model.layer_groups()
    first = 16 * 27 + residual_block_3d(16)  # bias-free 3×3×3 conv + first block
    last = residual_block_3d(16) + (2 * 16 + 16 + 1)  # last block + pre-activated 1×1×1 conv (BN(16), weights, bias)
    assert (first, last) == (14_320, 13_937)
    assert networks.count(model, groups["first"]) == first and networks.count(model, groups["last"]) == last
    assert abs(first - last) / first < 0.05  # the paper's fairness condition holds in 3D too
    assert sorted(groups["encoder"] + groups["decoder"]) == sorted(n for n, _ in model.named_parameters())
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) for m in model.modules())
    small = networks.build("unet3d_residual", width=0.25)
    assert small(torch.zeros(2, 1, 16, 24, 8)).shape == (2, 1, 16, 24, 8)
    with pytest.raises(RuntimeError):
        small(torch.zeros(1, 1, 12, 16, 16))  # 12 is no multiple of the stride: the skips do not line up
    for variant in ("unet3d_residual_spottune", "unet3d_residual_normalized"):
        assert networks.build(variant, width=0.25)(torch.zeros(2, 1, 8, 8, 8)).shape == (2, 1, 8, 8, 8)


def test_window_starts_cover_every_voxel_with_the_last_window_flush():
    assert window_starts(64, 32) == [0, 16, 32]
    assert window_starts(40, 32) == [0, 8]
    assert window_starts(32, 32) == [0]
    assert window_starts(5, 2, overlap=0.5) == [0, 1, 2, 3]


@pytest.mark.parametrize("window", [(16, 16, 8), (8, 24, 16), None, (64, 64, 64)])
def test_sliding_windows_reconstruct_an_identity_network_exactly(window):
    volume = torch.arange(37 * 29 * 23, dtype=torch.float32).reshape(37, 29, 23)  # integers: means of equal values
    calls = []

    def identity(batch):
        calls.append(batch.shape)
        return batch.clone()

    assert torch.equal(sliding_window_logits(identity, volume, window, 8, batch_size=5), volume)
    assert all(shape[2:] == tuple(window or (40, 32, 24)) and shape[0] <= 5 for shape in calls)
    windows = volume_windows(volume.numpy(), window, 8, "cpu")
    assert windows.shape[0] == sum(shape[0] for shape in calls)  # what test-time methods see: the same windows


def test_a_pointwise_network_predicts_the_same_mask_in_windows_or_whole():
    torch.manual_seed(0)
    model = networks.build("unet3d_residual", width=0.25).eval()
    image = np.random.default_rng(0).random((20, 18, 13)).astype(np.float32)
    model.window = (8, 8, 8)
    windowed = predict_volume(model, image, batch_size=3)
    assert windowed.shape == image.shape and windowed.dtype == bool
    with torch.no_grad():  # what predict_volume thresholds: the windows' mean logits
        expected = sliding_window_logits(lambda b: model(b), torch.from_numpy(image), (8, 8, 8), 8, 64) >= 0
    assert np.array_equal(windowed, expected.numpy())
    conv = torch.nn.Conv3d(1, 1, 1)  # a network without context: its windows agree with the whole volume
    conv.dims, conv.stride, conv.window = 3, 1, (8, 8, 8)
    whole = torch.nn.Conv3d(1, 1, 1)
    whole.load_state_dict(conv.state_dict())
    whole.dims, whole.stride, whole.window = 3, 1, None
    assert np.array_equal(predict_volume(conv, image), predict_volume(whole, image))


def volumes(n=2, shape=(20, 18, 16), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        image = rng.random(shape).astype(np.float32)
        out.append((image, (image > 0.5).astype(np.float32)))
    return out


def test_patches_hold_a_labelled_slice_and_ignore_the_others():
    data = volumes()
    labelled = [[3, 11], []]  # one scan with two labelled slices (an every-N budget), the other unlabelled
    patches = PatchSampler(data, labelled, batch_size=64, patch_size=(8, 8, 4), augment_p=0.0,
                           rng=np.random.default_rng(1))
    for volume, starts, _, _ in patches.draw():
        image, label = patches.patch_at(volume, starts)
        assert volume == 0
        z = range(starts[2], starts[2] + 4)  # no z-padding here: frame = volume
        assert {3, 11} & set(z)
        for i, k in enumerate(z):
            if k in (3, 11):
                assert np.array_equal(label[:, :, i], data[0][1][starts[0]:starts[0] + 8, starts[1]:starts[1] + 8, k])
            else:
                assert (label[:, :, i] == IGNORE).all()
        assert np.array_equal(image, data[0][0][starts[0]:starts[0] + 8, starts[1]:starts[1] + 8, z[0]:z[-1] + 1])
    images, labels = patches.batch()
    assert images.shape == labels.shape == (64, 1, 8, 8, 4)
    every = PatchSampler(data, [range(16)] * 2, 4, (8, 8, 4), 0.0, np.random.default_rng(1))
    assert not (every.batch()[1] == IGNORE).any()  # a scan budget labels every voxel
    again = PatchSampler(data, labelled, 64, (8, 8, 4), 0.0, np.random.default_rng(1))
    again.draw()
    assert torch.equal(again.batch()[1], labels)  # one seed, one stream


def test_volumes_smaller_than_the_patch_are_centred_and_z_padding_is_ignored():
    data = volumes(n=1, shape=(6, 10, 3))
    patches = PatchSampler(data, [[1]], 1, (8, 8, 8), 0.0, np.random.default_rng(0))
    image, label = patches.patch_at(*patches.draw()[0][:2])
    # x: 6 in 8 → 1 voxel either side; y: 10 ≥ 8, a random crop; z: 3 in 8 → slices 2, 3, 4 of the patch
    assert (image[0] == 0).all() and (image[7] == 0).all() and (image[:, :, :2] == 0).all()
    assert (label[:, :, [0, 1, 2, 4, 5, 6, 7]] == IGNORE).all()  # slice 1 of the scan is the patch's slice 3
    assert not (label[:, :, 3] == IGNORE).any() and (label[0, :, 3] == 0).all()


def test_bn_inputs_cover_every_labelled_slice_once():
    data = volumes(n=1, shape=(8, 8, 30))
    patches = PatchSampler(data, [[2, 3, 9, 28]], 1, (8, 8, 8), 0.0, np.random.default_rng(0))
    covers = patches.all_slices()
    # from slice 2: a patch over 2-9 holds 2, 3 and 9; slice 28: the last patch, flush with the end (22-29)
    assert covers.shape == (2, 1, 8, 8, 8)
    assert torch.equal(covers[0, 0], torch.from_numpy(data[0][0][:, :, 2:10]))
    assert torch.equal(covers[1, 0], torch.from_numpy(data[0][0][:, :, 22:30]))


def test_the_loss_leaves_out_ignored_voxels_and_is_unchanged_for_slices():
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    assert torch.equal(segmentation_loss(logits, masks), F.binary_cross_entropy_with_logits(logits, masks))
    logits3, masks3 = torch.randn(2, 1, 4, 4, 3), (torch.rand(2, 1, 4, 4, 3) > 0.5).float()
    masks3[..., 1:] = IGNORE
    expected = F.binary_cross_entropy_with_logits(logits3[..., :1], masks3[..., :1])
    assert torch.allclose(segmentation_loss(logits3, masks3), expected)
    assert segmentation_loss(logits3, torch.full_like(masks3, IGNORE)) == 0


TINY3D = dict(epochs=3, iters_per_epoch=2, batch_size=2, patch_size=(16, 16, 8), lr=0.01, lr_drop_epoch=1)


def patch_sampler(seed=0, slices=((2, 6), (1,))):
    data = volumes(n=2, shape=(16, 16, 10), seed=7)
    return sampler(3, data, [list(s) for s in slices], 2, (16, 16, 8), 0.3, np.random.default_rng(seed))


@pytest.mark.parametrize("name", ["ft_first", "ft_last", "ft_encoder"])
def test_3d_fine_tuning_moves_exactly_the_strategy_layers(name):
    torch.manual_seed(0)
    model = networks.build("unet3d_residual", width=0.25)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    group = {"ft_first": "first", "ft_last": "last", "ft_encoder": "encoder"}[name]
    expected = set(model.layer_groups()[group])
    train(model, strategies.build(name), patch_sampler(), Recipe(**TINY3D), seed=0)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved <= expected and {n for n in expected if n.endswith("weight") and "body.1.2" in n} <= moved


def test_a_killed_3d_run_resumes_to_the_same_weights(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return networks.build("unet3d_residual", width=0.25)

    straight = fresh()
    train(straight, strategies.build("ft_all"), patch_sampler(), Recipe(**TINY3D), seed=3)
    seen = []

    def killed_in_epoch_3(model):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(fresh(), strategies.build("ft_all"), patch_sampler(), Recipe(**TINY3D), seed=3,
              checkpoint=tmp_path / "ckpt.pt", validate=killed_in_epoch_3, validate_every=1)
    resumed = fresh()
    train(resumed, strategies.build("ft_all"), patch_sampler(seed=99), Recipe(**TINY3D), seed=3,
          checkpoint=tmp_path / "ckpt.pt")
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_bn_stats_on_a_3d_network_reads_the_covering_patches_and_saving_keeps_the_window(tmp_path):
    torch.manual_seed(0)
    model = networks.build("unet3d_residual", width=0.25)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, strategies.build("bn_stats"), patch_sampler(), Recipe(**TINY3D), seed=0)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    first_norm = model.encoder[0][0].body[0][0]
    assert not torch.equal(first_norm.running_var, torch.ones_like(first_norm.running_var))  # re-estimated
    model.window = (16, 16, 8)
    save_model(tmp_path / "model.pt", model, "unet3d_residual", 0.25)
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.window == (16, 16, 8) and loaded.dims == 3
    image = np.random.default_rng(1).random((16, 20, 10)).astype(np.float32)
    assert np.array_equal(predict_volume(loaded, image), predict_volume(model, image))


def test_a_3d_patch_must_be_a_multiple_of_the_stride_named_by_its_key():
    config = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    config["models"]["architectures"] = ["unet3d_residual"]
    config["training"]["volumetric"] = {"finetune": {"patch_size": [32, 32, 20]}}
    with pytest.raises(ConfigError, match=r"training\.volumetric\.finetune\.patch_size.*\[32, 32, 20\].*stride 8"):
        validate_config(config)
    config["training"]["volumetric"] = {"finetune": {"patch_size": [32, 32, 24]}}
    assert validate_config(config)["training"]["volumetric"]["source"] == {"patch_size": [64, 64, 64],
                                                                            "batch_size": 7}
