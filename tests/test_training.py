"""Models, strategies and the trainer: real parameter counts, frozen sets, schedule and exact resume."""

import numpy as np
import pytest
import torch

from mrishift import models, strategies
from mrishift.train import Recipe, SliceSampler, learning_rate, train


def test_paper_unet_parameter_counts():
    model = models.build("unet2d_residual")
    groups = model.layer_groups()
    assert sum(p.numel() for p in model.parameters()) == 1_563_699
    assert models.count(model, groups["first"]) == 4864  # 3×3 conv (160) + residual block (4704)
    assert models.count(model, groups["last"]) == 4723  # residual block (4704) + 1×1 conv (17) + BN(1) (2)
    assert abs(4864 - 4723) / 4864 < 0.05  # the paper's fairness condition
    every = [n for n, _ in model.named_parameters()]
    assert sorted(groups["encoder"] + groups["decoder"]) == sorted(every)
    assert model(torch.zeros(2, 1, 80, 80)).shape == (2, 1, 80, 80)


def test_vanilla_unet_and_width():
    vanilla = models.build("unet_vanilla")
    assert sum(p.numel() for p in vanilla.parameters()) == 31_042_369
    half = models.build("unet2d_residual", width=0.5)
    assert models.count(half, half.layer_groups()["first"]) == 8 * 9 + 8 + 2 * (16 + 8 * 8 * 9 + 8)
    with pytest.raises(ValueError, match="unknown model"):
        models.build("resnet")


def test_step_schedule_at_epoch_boundaries():
    recipe = Recipe(epochs=100, lr=1e-2, lr_drop_epoch=80, lr_factor=0.1)
    assert [learning_rate(recipe, e) for e in (0, 79, 80, 99)] == [1e-2, 1e-2, pytest.approx(1e-3), pytest.approx(1e-3)]


def sampler(seed=0, batch=4):
    rng = np.random.default_rng(0)
    volumes = []
    for _ in range(2):
        mask = np.zeros((20, 24, 6), np.float32)
        mask[5:15, 6:18] = 1
        volumes.append((mask * 0.7 + rng.random(mask.shape).astype(np.float32) * 0.3, mask))
    return SliceSampler(volumes, [[0, 2, 4], [1, 3]], batch, 16, 0.3, np.random.default_rng(seed))


TINY = dict(epochs=3, iters_per_epoch=2, batch_size=4, patch_size=16, lr=1e-2, lr_drop_epoch=2, device="cpu")


@pytest.mark.parametrize("name", strategies.names())
def test_each_strategy_changes_exactly_its_parameters(name):
    torch.manual_seed(0)
    model = models.build("unet2d_residual", width=0.25)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = strategies.build(name)
    intended = set(strategy.trainable(model))
    train(model, strategy, sampler(), Recipe(**TINY), seed=1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    expected = {"none": set(), "ft_all": set(before), "ft_first": set(model.layer_groups()["first"]),
                "ft_last": set(model.layer_groups()["last"])}[name]
    assert intended == expected
    assert changed <= expected  # every frozen parameter is bit-identical
    # Every intended weight moved. (Conv biases right before a train-mode BatchNorm get only float-noise
    # gradients, ~1e-8, because BN cancels them; whether they move is rounding, so they are not asserted.)
    assert {n for n in expected if not n.endswith(".bias")} <= changed


def test_frozen_batchnorm_keeps_source_statistics():
    model = models.build("unet2d_residual", width=0.25)
    stats = model.bottleneck[0].body[0].running_mean.clone()
    train(model, strategies.build("ft_first"), sampler(), Recipe(**TINY), seed=1)
    assert torch.equal(model.bottleneck[0].body[0].running_mean, stats)
    drifting = models.build("unet2d_residual", width=0.25)
    train(drifting, strategies.build("ft_first", frozen_bn="train"), sampler(), Recipe(**TINY), seed=1)
    assert not torch.equal(drifting.bottleneck[0].body[0].running_mean, stats)


def test_strategy_registry_validates_hparams():
    assert {"none", "ft_all", "ft_first", "ft_last"} <= set(strategies.names())
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        strategies.build("ft_first", momentum=3)
    with pytest.raises(ValueError, match="frozen_bn"):
        strategies.build("ft_all", frozen_bn="sometimes")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        strategies.build("ft_last", lr=-1)


def test_strategy_learning_rate_overrides_the_recipe():
    recipe = Recipe(epochs=4, lr=1e-3, lr_drop_epoch=3)
    assert strategies.build("ft_first").recipe(recipe) == recipe
    tuned = strategies.build("ft_first", lr=0.03).recipe(recipe)
    assert tuned.lr == 0.03 and learning_rate(tuned, 3) == pytest.approx(0.003) and tuned.epochs == 4


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return models.build("unet2d_residual", width=0.25)

    straight = fresh()
    record = train(straight, strategies.build("ft_all"), sampler(), Recipe(**TINY), seed=3)
    # Interrupted: stop after 2 of 3 epochs (as a killed job would), then resume in a new process-like state.
    checkpoint = tmp_path / "ckpt.pt"
    first_part = fresh()
    train(first_part, strategies.build("ft_all"), sampler(), Recipe(**{**TINY, "epochs": 2}), seed=3, checkpoint=checkpoint)
    resumed = fresh()
    torch.manual_seed(12345)  # whatever the global state, the checkpoint restores it
    record_resumed = train(resumed, strategies.build("ft_all"), sampler(seed=0), Recipe(**TINY), seed=3,
                           checkpoint=checkpoint)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert record_resumed["losses"] == record["losses"]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3
    # A checkpoint of another configuration is never resumed: this run starts from scratch and matches none.
    other = fresh()
    train(other, strategies.build("ft_all"), sampler(), Recipe(**TINY), seed=3, checkpoint=checkpoint, identity="lr=2")
    assert torch.load(checkpoint, weights_only=True)["identity"] == "lr=2"
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), straight.state_dict().values()))


def test_augmentation_moves_image_and_mask_together():
    # an L-shaped, asymmetric slice whose image equals its mask: any flip/rotation must keep them equal
    mask = np.zeros((16, 16, 1), np.float32)
    mask[2:12, 3:5, 0] = 1.0
    mask[10:12, 3:10, 0] = 1.0
    volumes = [(mask.copy(), mask.copy())]
    plain = SliceSampler(volumes, [range(1)], 64, 16, 0.0, np.random.default_rng(0)).batch()[0]
    images, masks = SliceSampler(volumes, [range(1)], 64, 16, 0.5, np.random.default_rng(0)).batch()
    assert torch.equal(images, masks)
    assert all(torch.equal(p, plain[0]) for p in plain)  # without augmentation every slice is the same
    distinct = {tuple(i.flatten().tolist()) for i in images}
    assert len(distinct) == 8  # flips and rotations reach all 8 orientations of the L
    assert all(i.sum() == plain[0].sum() for i in images)  # nothing cropped away or added
