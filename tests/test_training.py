"""Models, strategies and the trainer: real parameter counts, frozen sets, schedule and exact resume."""

import numpy as np
import pytest
import torch

from mrishift.adaptation import strategies
from mrishift.models import networks
from mrishift.training.loop import Recipe, learning_rate, train
from mrishift.training.sampling import SliceSampler


def residual_block(c):  # two pre-activations: BN (weight + bias) then a bias-free 3×3 conv
    return 2 * (2 * c + c * c * 9)


def test_paper_unet_parameter_counts():
    model = networks.build("unet2d_residual")
    groups = model.layer_groups()
    # PUBLIC-CODE.md derives these from the public UNet2D (neuro-ml/domain_shift_anatomy, yishayahu/MMTL)
    assert sum(p.numel() for p in model.parameters()) == 1_561_491
    first = 16 * 9 + residual_block(16)  # bias-free 3×3 conv + first block
    last = residual_block(16) + (2 * 16 + 16 + 1)  # last block + pre-activated 1×1 conv (BN(16), weights, bias)
    assert (first, last) == (4816, 4721)
    assert networks.count(model, groups["first"]) == first and networks.count(model, groups["last"]) == last
    assert networks.count(model, groups["output"]) == 2 * 16 + 16 + 1 + 2  # head + final BN(1)
    assert networks.count(model, groups["last2"]) == (2 * 16 + 16 * 16 * 9) + (2 * 16 + 16 + 1)  # 2nd conv + head
    assert abs(first - last) / first < 0.05  # the paper's fairness condition
    every = [n for n, _ in model.named_parameters()]
    assert sorted(groups["encoder"] + groups["decoder"]) == sorted(every)
    assert set(groups) == set(networks.LAYER_GROUPS)
    assert model(torch.zeros(2, 1, 80, 80)).shape == (2, 1, 80, 80)


def test_vanilla_unet_and_width():
    vanilla = networks.build("unet_vanilla")
    groups = vanilla.layer_groups()
    # DART20's freeze lists: init_path (two bias-free conv + BN) and out_path (two conv + BN, 1×1, BN(1))
    assert networks.count(vanilla, groups["first"]) == (9 * 64 + 128) + (64 * 64 * 9 + 128) == 37_696
    assert networks.count(vanilla, groups["last"]) == (128 * 64 * 9 + 128) + (64 * 64 * 9 + 128) + 64 + 2 == 110_914
    assert networks.count(vanilla, groups["last2"]) == (64 * 64 * 9 + 128) + 64 + 2 == 37_058
    half = networks.build("unet2d_residual", width=0.5)
    assert networks.count(half, half.layer_groups()["first"]) == 8 * 9 + residual_block(8)
    with pytest.raises(ValueError, match="unknown model"):
        networks.build("resnet")


def test_resolution_levels_change_depth_and_stride_not_the_first_and_last_layers():
    for levels, channels in ((2, [16, 32]), (3, [16, 32, 64]), (5, [16, 32, 64, 128, 256])):
        model = networks.build("unet2d_residual", levels=levels)
        assert model.stride == networks.stride("unet2d_residual", levels) == 2 ** (levels - 1)
        assert [stage[0].body[0][0].num_features for stage in model.encoder] == channels[:-1]
        assert model.bottleneck[0].body[0][0].num_features == channels[-1]
        groups = model.layer_groups()  # the paper's first/last layers do not depend on depth
        assert (networks.count(model, groups["first"]), networks.count(model, groups["last"])) == (4816, 4721)
        assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    assert networks.stride("unet2d_residual") == 8 and networks.stride("unet_vanilla") == 16
    shallow = networks.build("unet_vanilla", width=0.25, levels=3)
    assert shallow.stride == 4 and len(shallow.encoder) == 2 and shallow(torch.zeros(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="at least 2 resolution levels"):
        networks.build("unet2d_residual", levels=1)


def test_step_schedule_at_epoch_boundaries():
    recipe = Recipe(epochs=100, lr=1e-2, lr_drop_epoch=80, lr_factor=0.1)
    # dpipe's Schedule({80: 0.1}) multiplies at the end of epoch 80: 81 epochs at 1e-2, 19 at 1e-3
    assert [learning_rate(recipe, e) for e in (0, 79, 80, 81, 99)] == [1e-2, 1e-2, 1e-2, pytest.approx(1e-3),
                                                                      pytest.approx(1e-3)]
    finetune = Recipe(epochs=20, lr=1e-3, lr_drop_epoch=15)
    assert sum(learning_rate(finetune, e) == 1e-3 for e in range(20)) == 16


def sampler(seed=0, batch=4):
    rng = np.random.default_rng(0)
    volumes = []
    for _ in range(2):
        mask = np.zeros((20, 24, 6), np.float32)
        mask[5:15, 6:18] = 1
        volumes.append((mask * 0.7 + rng.random(mask.shape).astype(np.float32) * 0.3, mask))
    return SliceSampler(volumes, [[0, 2, 4], [1, 3]], batch, 16, 0.3, np.random.default_rng(seed))


TINY = dict(epochs=3, iters_per_epoch=2, batch_size=4, patch_size=16, lr=1e-2, lr_drop_epoch=2, device="cpu")


def source_run(optimizer="sgd", epochs=1):
    """A source model of the tests' network trained for ``epochs`` and its final optimizer state (what octl
    continues)."""
    torch.manual_seed(0)
    model = networks.build("unet2d_residual", width=0.25)
    record = train(model, strategies.build("ft_all"), sampler(seed=7), Recipe(**{**TINY, "epochs": epochs,
                   "optimizer": optimizer}), seed=2, keep_optimizer=True)
    return model, record["optimizer_state"]


@pytest.mark.parametrize("name", strategies.names())
def test_each_strategy_changes_exactly_its_parameters(name):
    torch.manual_seed(0)
    strategy = strategies.build(name)
    model, _ = strategy.network(networks.build("unet2d_residual", width=0.25), "unet2d_residual", 0.25)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    base = {n for n, _ in networks.build("unet2d_residual", width=0.25).named_parameters()}
    policy = {f"policy.{n}" for n, _ in networks.PolicyNetwork(33).named_parameters()}  # 33 blocks at 4 levels
    intended = set(strategy.trainable(model))
    train(model, strategy, sampler(), Recipe(**TINY), seed=1, source=sampler(seed=9),  # mmtl mixes source slices in
          source_optimizer=source_run()[1])  # octl continues a source run's optimizer
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    first = {"init.weight", *(f"encoder.0.0.body.{i}.{j}.{k}" for i in (0, 1) for j, k in
                                [(0, "weight"), (0, "bias"), (2, "weight")])}
    last = {"head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias",
            *(f"decoder.2.2.body.{i}.{j}.{k}" for i in (0, 1) for j, k in [(0, "weight"), (0, "bias"), (2, "weight")])}
    last2 = {"head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias",
             *(f"decoder.2.2.body.1.{j}.{k}" for j, k in [(0, "weight"), (0, "bias"), (2, "weight")])}
    encoder = {n for n in base if n.split(".")[0] in ("init", "encoder", "down", "bottleneck")}
    expected = {"none": set(), "bn_stats": set(), "ft_all": base, "ft_first": first, "ft_last": last,
                "ft_last2": last2, "ft_encoder": encoder, "ft_decoder": base - encoder, "l2sp": base,
                "mmtl": base, "octl": base, "spottune": base | policy,  # spottune: never its frozen.* copy
                "scratch_target": base, "scratch_joint": base}[name]
    assert intended == expected
    assert changed <= expected  # every frozen parameter is bit-identical
    # Every intended weight moved. (Conv biases right before a train-mode BatchNorm get only float-noise
    # gradients, ~1e-8, because BN cancels them; whether they move is rounding, so they are not asserted.)
    assert {n for n in expected if not n.endswith(".bias")} <= changed


def test_frozen_batchnorm_modes():
    model = networks.build("unet2d_residual", width=0.25)
    stats = model.bottleneck[0].body[0][0].running_mean.clone()
    train(model, strategies.build("ft_first", frozen_bn="eval"), sampler(), Recipe(**TINY), seed=1)
    assert torch.equal(model.bottleneck[0].body[0][0].running_mean, stats)
    drifting = networks.build("unet2d_residual", width=0.25)  # the default, as the public code: statistics follow
    train(drifting, strategies.build("ft_first"), sampler(), Recipe(**TINY), seed=1)
    assert not torch.equal(drifting.bottleneck[0].body[0][0].running_mean, stats)


def test_bn_stats_reestimates_statistics_and_moves_no_weight():
    torch.manual_seed(0)
    model = networks.build("unet2d_residual", width=0.25)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers() if "running" in n}
    target = sampler()
    record = train(model, strategies.build("bn_stats"), target, Recipe(**TINY), seed=1)
    assert record["epochs"] == 0 and record["trainable_parameters"] == 0
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    assert all(not torch.equal(b, buffers[n]) for n, b in model.named_buffers() if "running" in n)
    # Direct computation: in eval mode with the new statistics, each BatchNorm's input over the budget's 5 slices
    # has exactly the stored mean and variance.
    seen = {}
    norms = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    hooks = [m.register_forward_pre_hook(lambda m, x, name=name: seen.__setitem__(name, x[0].detach().clone()))
             for name, m in norms.items()]
    model.eval()
    with torch.no_grad():
        model(target.all_slices())
    for hook in hooks:
        hook.remove()
    assert target.all_slices().shape == (5, 1, 16, 16)
    for name, norm in norms.items():
        x = seen[name].transpose(0, 1).flatten(1)
        assert torch.allclose(norm.running_mean, x.mean(1), rtol=1e-4, atol=1e-6), name
        assert torch.allclose(norm.running_var, x.var(1, unbiased=False), rtol=1e-4, atol=1e-6), name


def test_arms_run_a_class_under_other_settings():
    arm = strategies.build_arm("ft_first_bn_eval", {"strategy": "ft_first", "frozen_bn": "eval"})
    assert (arm.name, arm.arm, arm.frozen_bn) == ("ft_first", "ft_first_bn_eval", "eval")
    assert strategies.build_arm("ft_last", {}).hparams["layers"] == "last"
    assert strategies.describe_arm("x", {"strategy": "ft_last", "layers": "output"})["hparams"]["layers"] == "output"
    with pytest.raises(ValueError, match="'strategy: ft_middle' is not a registered strategy"):
        strategies.build_arm("ft_middle", {})
    with pytest.raises(ValueError, match="layers must be one of"):
        strategies.build_arm("ft_last", {"layers": "middle"})


def test_arm_budgets_are_a_subset_in_the_study_order():
    study = ["1scan", "every12", "3scans"]
    assert strategies.arm_budgets({}, study) == study
    assert strategies.arm_budgets({"budgets": ["3scans", "1scan"]}, study) == ["1scan", "3scans"]
    arm = strategies.build_arm("ft_first_bn_eval", {"strategy": "ft_first", "frozen_bn": "eval", "budgets": ["1scan"]})
    assert "budgets" not in arm.hparams  # an arm's setting, not a hyper-parameter of its class
    assert strategies.run_settings({"strategy": "ft_first", "budgets": ["1scan"], "frozen_bn": "eval"}) == {
        "strategy": "ft_first", "frozen_bn": "eval"}
    for bad in (["5scans"], [], "1scan"):
        with pytest.raises(ValueError, match="must be a non-empty list of the study's budgets"):
            strategies.arm_budgets({"budgets": bad}, study)


def test_arm_pairs_are_a_subset_of_the_studys_in_its_order():
    study = [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c")]
    assert strategies.arm_pairs({}, study) == study
    assert strategies.arm_pairs({"sources": None, "targets": None}, study) == study
    assert strategies.arm_pairs({"sources": ["b"]}, study) == [("b", "a"), ("b", "c")]
    assert strategies.arm_pairs({"targets": ["c", "b"]}, study) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert strategies.arm_pairs({"sources": ["b"], "targets": ["c"]}, study) == [("b", "c")]
    arm = strategies.build_arm("l2sp_few", {"strategy": "l2sp", "sources": ["b"], "targets": ["c"]})
    assert "sources" not in arm.hparams and "targets" not in arm.hparams  # the arm's settings, not its class's
    assert strategies.run_settings({"strategy": "l2sp", "sources": ["b"], "targets": ["c"], "alpha": 0.1}) == {
        "strategy": "l2sp", "alpha": 0.1}
    with pytest.raises(ValueError, match="must be a non-empty list of the study's fine-tuning sources"):
        strategies.arm_pairs({"sources": ["c"]}, study)  # c is only ever a target here
    with pytest.raises(ValueError, match="leave none of splits.finetune_pairs"):
        strategies.arm_pairs({"sources": ["a"], "targets": ["a"]}, study)


def test_crop_follows_the_public_code():
    """A slice that holds the patch is cropped at a random position; one that does not is centred, zero-padded."""
    image = np.arange(12 * 20, dtype=np.float32).reshape(12, 20, 1)
    volumes = [(image, (image > 0).astype(np.float32))]
    small = SliceSampler(volumes, [[0]], 3, 16, 0.0, np.random.default_rng(0)).batch()[0][:, 0]
    assert all(torch.equal(p, small[0]) for p in small)  # deterministic
    assert torch.equal(small[0][2:14], torch.from_numpy(image[:, 2:18, 0]))  # rows padded by 2, columns cropped by 2
    assert small[0][:2].abs().sum() == 0 and small[0][14:].abs().sum() == 0
    big = SliceSampler(volumes, [[0]], 64, 8, 0.0, np.random.default_rng(0)).batch()[0][:, 0]
    corners = {float(p[0, 0]) for p in big}
    assert len(corners) > 5 and all(c in image[:5, :13, 0] for c in corners)  # random offsets, inside the slice


def test_strategy_registry_validates_hparams():
    assert {"none", "ft_all", "ft_first", "ft_last"} <= set(strategies.names())
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        strategies.build("ft_first", momentum=3)
    with pytest.raises(ValueError, match="frozen_bn"):
        strategies.build("ft_all", frozen_bn="sometimes")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        strategies.build("ft_last", lr=-1)


def test_strategy_learning_rate_overrides_the_recipe():
    recipe = Recipe(epochs=4, lr=1e-3, lr_drop_epoch=2)
    assert strategies.build("ft_first").recipe(recipe) == recipe
    tuned = strategies.build("ft_first", lr=0.03).recipe(recipe)
    assert tuned.lr == 0.03 and learning_rate(tuned, 3) == pytest.approx(0.003) and tuned.epochs == 4


def test_l2sp_penalty_gradient_pulls_each_weight_back_to_its_start():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    strategy = strategies.build("l2sp", alpha=0.3)
    assert float(strategy.penalty()) == 0.0  # nothing kept yet
    start = [p.detach().clone() for p in model.parameters()]
    strategy.begin(model, Recipe(**TINY))
    assert float(strategy.penalty().detach()) == 0.0  # at the start the distance is 0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    strategy.penalty().backward()
    for p, w0 in zip(model.parameters(), start):
        assert torch.allclose(p.grad, 0.3 * (p.detach() - w0))  # d/dw α/2‖w − w0‖² = α(w − w0)
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        strategies.build("l2sp", alpha=-1)


@pytest.mark.parametrize("strategy", ["ft_all", "l2sp", "mmtl", "octl", "spottune"])  # mmtl: the source sampler
def test_resume_after_interruption_gives_the_same_weights(tmp_path, strategy):  # resumes too; spottune: its policy
    def fresh():
        torch.manual_seed(0)
        return strategies.build(strategy).network(networks.build("unet2d_residual", width=0.25), "unet2d_residual",
                                                  0.25)[0]

    straight = fresh()
    continued = source_run()[1]  # octl's start: the checkpoint's optimizer state replaces it on resume
    record = train(straight, strategies.build(strategy), sampler(), Recipe(**TINY), seed=3, source=sampler(seed=5),
                   source_optimizer=continued)
    # Interrupted: killed during epoch 3 of 3, after epoch 2's checkpoint (as a killed job would), then resumed in a
    # new process-like state. (The same recipe: mmtl's schedule depends on the number of epochs.)
    checkpoint = tmp_path / "ckpt.pt"
    epochs_seen = []

    def killed_in_epoch_3(model):
        epochs_seen.append(len(epochs_seen) + 1)
        if len(epochs_seen) == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(fresh(), strategies.build(strategy), sampler(), Recipe(**TINY), seed=3, checkpoint=checkpoint,
              source=sampler(seed=5), validate=killed_in_epoch_3, validate_every=1, source_optimizer=continued)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2
    resumed = fresh()
    torch.manual_seed(12345)  # whatever the global state, the checkpoint restores it
    record_resumed = train(resumed, strategies.build(strategy), sampler(seed=0), Recipe(**TINY), seed=3,
                           checkpoint=checkpoint, source=sampler(seed=5), source_optimizer=continued)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert record_resumed["losses"] == record["losses"]
    assert record_resumed.get("loss_terms") == record.get("loss_terms")  # named terms resume too
    named = {"l2sp": {"bce", "l2sp"}, "spottune": {"bce", "policy"}}.get(strategy)  # a single term is not repeated
    assert set(record.get("loss_terms", {})) == (named or set())
    if named:
        assert [sum(epoch) for epoch in zip(*record["loss_terms"].values())] == pytest.approx(record["losses"])
        assert all(value > 0 for values in record["loss_terms"].values() for value in values)
    assert record["final_model"] == "last epoch"
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3
    # A checkpoint of another configuration is never resumed: this run starts from scratch and matches none.
    other = fresh()
    train(other, strategies.build(strategy), sampler(), Recipe(**TINY), seed=3, checkpoint=checkpoint, identity="lr=2",
          source=sampler(seed=5), source_optimizer=continued)
    assert torch.load(checkpoint, weights_only=True)["identity"] == "lr=2"
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), straight.state_dict().values()))


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_octl_continues_the_source_optimizer_as_if_never_interrupted(kind):
    """Two epochs straight vs one epoch, then octl — set to the source's own momentum or betas and step count, at
    the same lr — for one more: the same weights. Its defaults (μ 0.99; β1 0.99, step 100) then differ from that."""
    torch.manual_seed(0)
    straight = networks.build("unet2d_residual", width=0.25)
    recipe = Recipe(**{**TINY, "epochs": 2, "lr_drop_epoch": 5, "optimizer": kind})
    train(straight, strategies.build("ft_all"), sampler(seed=7), recipe, seed=2)
    model, state = source_run(kind, epochs=1)
    steps = TINY["iters_per_epoch"]
    assert {key for parameter in state["state"].values() for key in parameter} == (
        {"momentum_buffer"} if kind == "sgd" else {"step", "exp_avg", "exp_avg_sq"})
    # the second epoch's batches: the sampler as it stands after the first epoch's
    batches = sampler(seed=7)
    for _ in range(steps):
        batches.batch()
    same = {"momentum": 0.9} if kind == "sgd" else {"betas": [0.9, 0.999], "from_step": steps}
    continued = strategies.build("octl", **same)
    one_more = Recipe(**{**TINY, "epochs": 1, "lr_drop_epoch": 5, "optimizer": kind})
    torch.manual_seed(0)  # octl's run seeds torch itself; the sampler holds the batch stream
    train(model, continued, batches, one_more, seed=2, source_optimizer=state)
    for (name, a), (_, b) in zip(straight.state_dict().items(), model.state_dict().items()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), name
    defaults = strategies.build("octl")
    optimizer = defaults.optimizer(dict(model.named_parameters()), one_more, state)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.99, True) if kind == "sgd" else group["betas"] == (0.99, 0.999)
    if kind == "adam":
        assert all(float(optimizer.state[p]["step"]) == 100 for p in model.parameters())


def test_octl_needs_the_same_optimizers_saved_state():
    model, state = source_run("sgd")
    parameters = dict(model.named_parameters())
    octl = strategies.build("octl")
    with pytest.raises(ValueError, match="holds no optimizer state"):
        octl.optimizer(parameters, Recipe(**TINY), None)
    with pytest.raises(ValueError, match="the source run used sgd, this recipe adam"):
        octl.optimizer(parameters, Recipe(**{**TINY, "optimizer": "adam"}), state)
    with pytest.raises(ValueError, match="covers none of the 1 trainable"):
        octl.optimizer({"other": torch.nn.Parameter(torch.zeros(1))}, Recipe(**TINY), state)
    with pytest.raises(ValueError, match="momentum must be in"):
        strategies.build("octl", momentum=1.0)


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


def test_validation_is_logged_and_survives_a_resume(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return networks.build("unet2d_residual", width=0.25)

    calls = []

    def validate(model):
        assert not model.training
        calls.append(1)
        return {"sdice": float(len(calls)), "dice": 0.5}

    recipe = Recipe(**{**TINY, "epochs": 5})
    straight = train(fresh(), strategies.build("ft_all"), sampler(), recipe, seed=3, validate=validate, validate_every=2)
    assert [v["epoch"] for v in straight["validation"]] == [2, 4, 5]  # every 2nd epoch and the last
    checkpoint = tmp_path / "ckpt.pt"
    train(fresh(), strategies.build("ft_all"), sampler(), Recipe(**{**TINY, "epochs": 3}), seed=3, checkpoint=checkpoint,
          validate=validate, validate_every=2)
    resumed = train(fresh(), strategies.build("ft_all"), sampler(), recipe, seed=3, checkpoint=checkpoint,
                    validate=validate, validate_every=2)
    assert [v["epoch"] for v in resumed["validation"]] == [2, 3, 4, 5]  # the interrupted run validated at its end
    assert resumed["losses"] == straight["losses"]


def test_a_damaged_checkpoint_is_moved_aside_and_the_run_restarts(tmp_path, caplog):
    def fresh():
        torch.manual_seed(0)
        return networks.build("unet2d_residual", width=0.25)

    straight = fresh()
    train(straight, strategies.build("ft_all"), sampler(), Recipe(**TINY), seed=3)
    checkpoint = tmp_path / "run.pt"
    train(fresh(), strategies.build("ft_all"), sampler(), Recipe(**{**TINY, "epochs": 2}), seed=3, checkpoint=checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # a partial copy
    restarted = fresh()
    with caplog.at_level("WARNING", logger="mrishift"):
        record = train(restarted, strategies.build("ft_all"), sampler(), Recipe(**TINY), seed=3, checkpoint=checkpoint)
    assert f"checkpoint {checkpoint} is unreadable" in caplog.text and "restarts from scratch" in caplog.text
    assert (tmp_path / "run.pt.corrupt").stat().st_size == 1000
    assert len(record["losses"]) == 3 and torch.load(checkpoint, weights_only=True)["epoch"] == 3
    assert all(torch.equal(a, b) for a, b in zip(restarted.state_dict().values(), straight.state_dict().values()))


def test_an_unreadable_model_file_names_itself_and_its_rule(tmp_path):
    from mrishift.training.runs import ModelFileError, load_model, save_model

    path = tmp_path / "model.pt"
    save_model(path, networks.build("unet2d_residual", width=0.25), "unet2d_residual", 0.25)
    assert isinstance(load_model(path), torch.nn.Module)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelFileError, match=f"{path}: unreadable model file .*rerun rule finetune, which makes it"):
        load_model(path, made_by="rule finetune")


def test_mmtl_mixes_the_scheduled_share_of_target_slices_into_each_batch():
    linear, steps = strategies.build("mmtl"), strategies.build("mmtl", schedule="steps")
    for strategy in (linear, steps):
        strategy.begin(None, Recipe(epochs=20, batch_size=8, device="cpu"))
    assert [linear.target_slices(e) for e in (0, 3, 10, 19)] == [0, 1, 4, 7]  # int(epoch / 20 × 8)
    assert [steps.target_slices(e) for e in (0, 3, 4, 12, 40)] == [1, 1, 2, 4, 8]  # min(epoch // 4 + 1, 8)
    ones, zeros = (np.full((16, 16, 3), value, np.float32) for value in (1.0, 0.0))
    target = SliceSampler([(ones, ones)], [[0, 1, 2]], 8, 16, 0.0, np.random.default_rng(0))
    source = SliceSampler([(zeros, zeros)], [[0, 1, 2]], 8, 16, 0.0, np.random.default_rng(1))
    for epoch in (0, 10, 19):
        images, masks = linear.batch(epoch, target, source)
        assert images.shape == (8, 1, 16, 16) and masks.shape == images.shape
        assert int(images.amax(dim=(1, 2, 3)).sum()) == linear.target_slices(epoch)  # the target's slices are ones
    with pytest.raises(ValueError, match="no source sampler"):
        linear.batch(0, target)
    with pytest.raises(ValueError, match="schedule must be"):
        strategies.build("mmtl", schedule="cosine")


def spottune_pair(seed=0):
    """A source model of the tests' network and its SpotTune network, the fine-tuned copy then moved off the source."""
    torch.manual_seed(seed)
    source = networks.build("unet2d_residual", width=0.25).eval()
    model, arch = strategies.build("spottune").network(source, "unet2d_residual", 0.25)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith(("frozen.", "policy.")):
                p.add_(torch.randn_like(p) * 0.1)
    return source, model.eval(), arch


def force_policy(model, choice):
    """Make the policy pick ``choice`` (0 frozen, 1 fine-tuned) for every block of every slice."""
    with torch.no_grad():
        model.policy.logits.weight.zero_()
        model.policy.logits.bias.copy_(torch.tensor([10.0, -10.0] if choice == 0 else [-10.0, 10.0]).repeat(33))


def test_spottune_through_frozen_blocks_is_the_source_model_and_through_tuned_ones_its_own_network():
    source, model, arch = spottune_pair()
    assert arch == "unet2d_residual_spottune"
    slices = torch.rand(3, 1, 16, 16)
    force_policy(model, 0)
    assert torch.equal(model(slices), source(slices))  # bit-identical: every block is the frozen copy
    force_policy(model, 1)
    alone = networks.build("unet2d_residual", width=0.25).eval()
    alone.load_state_dict({n: v for n, v in model.state_dict().items() if not n.startswith(("frozen.", "policy."))})
    assert torch.equal(model(slices), alone(slices))
    assert not torch.allclose(alone(slices), source(slices))


def test_spottune_policy_is_hard_per_slice_and_block_and_trains_through_the_straight_through_estimator():
    _, model, _ = spottune_pair()
    slices = torch.rand(4, 1, 16, 16)
    model(slices)
    assert model.gates.shape == (4, 33) and set(model.gates.unique().tolist()) <= {0.0, 1.0}
    again = model.gates.clone()
    model(slices)
    assert torch.equal(model.gates, again)  # no noise at inference
    model.train()
    torch.manual_seed(1)
    strategy = strategies.build("spottune", k_reg=0.5)
    loss = strategy.loss(model, slices, (slices > 0.5).float())
    assert set(model.gates.unique().tolist()) <= {0.0, 1.0}
    loss.backward()
    assert model.policy.logits.weight.grad.abs().sum() > 0  # the hard choice passes gradient to the policy
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("frozen."))


def test_spottune_loss_adds_k_reg_times_the_share_of_fine_tuned_blocks():
    _, model, _ = spottune_pair()
    slices, masks = torch.rand(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    force_policy(model, 1)  # every block fine-tuned: the penalty is k_reg × 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(model(slices), masks)
    assert float(strategies.build("spottune", k_reg=0.25).loss(model, slices, masks)) == pytest.approx(float(bce) + 0.25)
    force_policy(model, 0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(model(slices), masks)
    assert float(strategies.build("spottune", k_reg=0.25).loss(model, slices, masks)) == pytest.approx(float(bce))


def test_spottune_policy_trains_at_its_own_rate_on_the_recipe_schedule(tmp_path):
    _, model, _ = spottune_pair()
    recipe = Recipe(**{**TINY, "epochs": 4})  # lr 1e-2 up to epoch 2, then 1e-3
    train(model, strategies.build("spottune", policy_lr=0.05), sampler(), recipe, seed=1, checkpoint=tmp_path / "c.pt")
    network, policy = torch.load(tmp_path / "c.pt", weights_only=True)["optimizer"]["param_groups"]
    assert len(policy["params"]) == len(list(model.policy.parameters()))
    assert (network["lr"], network["weight_decay"]) == (pytest.approx(1e-3), 0)
    assert (policy["lr"], policy["weight_decay"]) == (pytest.approx(5e-3), 1e-3)  # 0.05, ×0.1 like the network


def test_spottune_model_file_rebuilds_the_same_network(tmp_path):
    from mrishift.training.runs import load_model, save_model
    _, model, arch = spottune_pair()
    save_model(tmp_path / "model.pt", model, arch, 0.25)
    slices = torch.rand(3, 1, 16, 16)
    assert torch.equal(load_model(tmp_path / "model.pt").eval()(slices), model(slices))
