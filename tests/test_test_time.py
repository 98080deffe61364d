"""Test-time adaptation: what each method changes, its own loss going down, known answers, and no labels."""

import inspect

import numpy as np
import pytest
import torch

from mrishift.adaptation import batchnorm, test_time
from mrishift.config import ConfigError, validate_config
from mrishift.data.histogram import intensity_quantiles, match_histogram
from mrishift.evaluation.scoring import ScanCache, predict_volume, score_scans
from mrishift.models import networks
from mrishift.models.inputs import volume_slices
from mrishift.training.runs import load_model, save_model

REFERENCE = test_time.SourceReference(np.linspace(0.05, 0.95, 1001))


def source_model(seed=0, arch="unet2d_residual"):
    """A small residual U-Net whose running statistics are those of bright, high-contrast slices (the 'source')."""
    torch.manual_seed(seed)
    model = networks.build(arch, width=0.25)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.rand(8, 1, 32, 32) * 0.8 + 0.2)
    return model.eval()


def shifted_volume(seed=0):
    """A dim, low-contrast volume with background 0: a different 'scanner'."""
    rng = np.random.default_rng(seed)
    image = (rng.random((32, 32, 12)) * 0.3 + 0.05).astype(np.float32)
    image[:6] = 0
    return image


def arch_for(name):
    """The source model a method adapts: the study's, or the one with a normalizer in front."""
    return "unet2d_residual" + ("" if test_time.build(name).source_model == "plain" else networks.NORMALIZED)


def model_for(name):
    return source_model(arch=arch_for(name))


def adapt(name, model=None, image=None, **hparams):
    model = model or model_for(name)
    return test_time.build(name, **hparams).per_volume(model, REFERENCE, torch.device("cpu"), seed=1)(
        shifted_volume() if image is None else image)


def parameters(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def buffers(model):
    return {name: b.detach().clone() for name, b in model.named_buffers()}


@pytest.mark.parametrize("name", test_time.names())
def test_a_method_leaves_the_source_model_untouched_and_repeats_itself(name, tmp_path):
    model = model_for(name)
    path = tmp_path / "model.pt"
    save_model(path, model, arch_for(name), 0.25)
    stored = path.read_bytes()
    before_parameters, before_buffers = parameters(model), buffers(model)
    first, second = adapt(name, model), adapt(name, model)
    assert path.read_bytes() == stored
    assert all(torch.equal(before_parameters[n], p) for n, p in parameters(model).items())
    assert all(torch.equal(before_buffers[n], b) for n, b in buffers(model).items())
    assert np.array_equal(first[1], second[1])
    assert all(torch.equal(a, b) for a, b in zip(first[0].state_dict().values(), second[0].state_dict().values()))
    loaded = load_model(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_adabn_stores_the_volumes_layer_input_statistics():
    model, image = source_model(), shifted_volume()
    adapted, _ = adapt("adabn", model, image)
    slices = volume_slices(image, adapted.stride, "cpu")
    first = adapted.encoder[0][0].body[0][0]  # the first BatchNorm: its input is the first conv's output
    assert isinstance(first, torch.nn.BatchNorm2d)
    with torch.no_grad():
        x = adapted.init(slices)
    assert torch.allclose(first.running_mean, x.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(first.running_var, x.var((0, 2, 3), unbiased=False), atol=1e-6)
    with torch.no_grad(), batchnorm.record_inputs(adapted) as inputs:  # every layer, in eval mode
        adapted(slices)
    for norm, layer_input in inputs.items():
        mean, var = batchnorm.input_statistics(layer_input)
        assert torch.allclose(norm.running_mean, mean, atol=1e-5) and torch.allclose(norm.running_var, var, atol=1e-5)
    assert not torch.allclose(first.running_mean, source_model().encoder[0][0].body[0][0].running_mean)


def test_bn_kl_is_zero_at_the_running_statistics_and_goes_down_on_a_shifted_volume():
    image = shifted_volume()
    at_own_statistics, _ = adapt("adabn", source_model(), image)  # running statistics := the volume's
    method = test_time.build("bn_kl_affine")
    assert method.loss(at_own_statistics, volume_slices(image, 8, "cpu")).item() == pytest.approx(0, abs=1e-4)

    model = source_model()
    method = test_time.build("bn_kl_affine", iterations=10, lr=1e-2)
    adapted, _ = method.per_volume(model, REFERENCE, torch.device("cpu"))(image)
    assert method.losses[0] > 1 and min(method.losses) < 0.8 * method.losses[0]
    assert method.loss(adapted, volume_slices(image, 8, "cpu")).item() == pytest.approx(min(method.losses), rel=1e-4)


def test_bn_kl_matches_the_gaussian_kl_formula():
    norm = torch.nn.BatchNorm2d(2).eval()
    norm.running_mean.copy_(torch.tensor([0.0, 1.0]))
    norm.running_var.copy_(torch.tensor([1.0, 4.0]) - norm.eps)
    x = torch.stack([torch.tensor([1.0, 3.0]).repeat(8), torch.tensor([-1.0, 1.0]).repeat(8)], 0).T[..., None, None]
    mean, var = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]) + norm.eps
    expected = sum(0.5 * np.log(r / v) + (v + (m - rm) ** 2) / (2 * r) - 0.5
                   for m, v, rm, r in zip(mean.tolist(), var.tolist(), [0.0, 1.0], [1.0, 4.0]))
    assert batchnorm.kl_to_running(norm, x).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name, group", [("bn_kl_affine", "encoder"), ("tent", None)])
def test_gradient_methods_move_only_batchnorm_affine_parameters(name, group):
    model = source_model()
    adapted, _ = adapt(name, model, iterations=3, lr=1e-2)
    norms = {id(p) for norm in batchnorm.layers(adapted) for p in (norm.weight, norm.bias)}
    allowed = {n for n, p in adapted.named_parameters() if id(p) in norms}
    if group:
        allowed &= set(adapted.layer_groups()[group])
    before, after = parameters(model), parameters(adapted)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and moved <= allowed
    if group:
        assert not any(n in moved for n in adapted.layer_groups()["decoder"])


def test_tent_lowers_the_entropy():
    image = shifted_volume()
    model = source_model()
    method = test_time.build("tent", iterations=5, lr=1e-2)
    adapted, _ = method.per_volume(model, REFERENCE, torch.device("cpu"))(image)
    slices = volume_slices(image, 8, "cpu")

    def entropy(network):
        with torch.no_grad():
            return test_time.binary_entropy(network.train()(slices)).mean().item()

    before = test_time.build("adabn").per_volume(model, REFERENCE, torch.device("cpu"))(image)[0]
    assert entropy(adapted) < entropy(before)  # both with the volume's batch statistics
    assert method.losses[-1] < method.losses[0]
    with torch.no_grad(), batchnorm.record_inputs(adapted.eval()) as inputs:  # it predicts with the volume's statistics
        adapted(slices)
    norm, layer_input = next(iter(inputs.items()))
    assert torch.allclose(norm.running_mean, batchnorm.input_statistics(layer_input)[0], atol=1e-5)


def test_binary_entropy_known_values():
    logits = torch.tensor([0.0, 50.0, -50.0, np.log(3.0)])
    p = 0.75
    assert test_time.binary_entropy(logits).tolist() == pytest.approx(
        [np.log(2), 0, 0, -(p * np.log(p) + (1 - p) * np.log(1 - p))], abs=1e-6)


def test_histogram_matching_maps_quantiles_onto_the_reference():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 0.1, size=(40, 40, 20)).astype(np.float32)  # noisy air
    image[10:30] = rng.uniform(0.2, 0.4, size=(20, 40, 20))  # the head: above the volume's mean (0.175)
    head = np.zeros(image.shape, bool)
    head[10:30] = True
    reference_images = [np.concatenate([rng.uniform(0, 0.05, 60000), rng.normal(0.6, 0.1, 20000).clip(0.3, 1)])]
    quantiles = intensity_quantiles(reference_images)  # its mean is ~0.17: the head's voxels only
    assert quantiles[0] == pytest.approx(0.3) and quantiles[500] == pytest.approx(0.6, abs=0.005)
    matched = match_histogram(image, quantiles)
    levels = np.linspace(0.01, 0.99, 99)
    assert np.quantile(matched[head], levels) == pytest.approx(np.quantile(quantiles, levels), abs=2e-3)
    assert matched[~head] == pytest.approx(image[~head] * quantiles[0] / image.mean(), rel=1e-5)  # air: scaled
    order = np.argsort(image, axis=None)
    assert np.all(np.diff(matched.ravel()[order]) >= 0)  # monotone: it reorders no voxel
    assert match_histogram(image, intensity_quantiles([image]))[head] == pytest.approx(image[head], abs=2e-4)
    with pytest.raises(ValueError, match="non-decreasing"):
        match_histogram(image, quantiles[::-1])


def test_hist_match_predicts_the_matched_volume_with_the_unchanged_model():
    model = source_model()
    adapted, matched = adapt("hist_match", model)
    assert adapted is not model and all(torch.equal(a, b) for a, b in zip(adapted.state_dict().values(),
                                                                          model.state_dict().values()))
    assert np.array_equal(matched, match_histogram(shifted_volume(), REFERENCE.intensity_quantiles))


@pytest.mark.parametrize("name", test_time.names())
def test_only_the_methods_that_read_a_source_reference_need_one(name):
    """The workflow computes intensity references only for the arms whose method reads one; the others get None."""
    method = test_time.build(name, **({"iterations": 1} if "iterations" in test_time.build(name).hparams else {}))
    assert method.uses_reference == (name == "hist_match")
    run = method.per_volume(model_for(name), None, torch.device("cpu"), seed=1)
    if method.uses_reference:
        with pytest.raises(ValueError, match="intensity reference"):
            run(shifted_volume())
    else:
        adapted, image = run(shifted_volume())
        assert np.array_equal(image, shifted_volume())


def test_a_method_never_receives_a_mask():
    for name in test_time.names():
        cls = type(test_time.build(name))
        assert list(inspect.signature(cls.adapt).parameters) == ["self", "model", "image", "reference"]
    seen = []

    class Spy(test_time.TestTimeMethod):
        name = "spy"

        def adapt(self, model, image, reference):
            seen.append(image)
            return model, image

    image = shifted_volume()
    mask = np.zeros(image.shape, bool)
    mask[8:24, 8:24] = True
    scans = ScanCache({})
    scans._scans["case"] = (image, mask, (1.0, 1.0, 1.0))
    model = source_model()
    table = score_scans(model, ["case"], scans, 1.0, device="cpu",
                        adapt=Spy().per_volume(model, REFERENCE, torch.device("cpu")))
    assert len(seen) == 1 and seen[0] is image and len(table) == 1
    assert table.sdice.iloc[0] == score_scans(model, ["case"], scans, 1.0, device="cpu").sdice.iloc[0]
    assert np.array_equal(predict_volume(model, image, device="cpu"), predict_volume(source_model(), image, device="cpu"))


@pytest.mark.parametrize("arms, message", [
    ({"entropy": {}}, "'test_time.entropy': arm 'entropy': 'method: entropy' is not a registered test-time method"),
    ({"tent": {"steps": 3}}, r"'test_time.tent': test-time method 'tent': unknown hyper-parameter\(s\) \['steps'\]"),
    ({"tent": {"iterations": 0}}, "'test_time.tent': tent: iterations must be a positive integer"),
    ({"bn_kl_affine": {"layers": "middle"}}, "layers must be 'all' or one of"),
    ({"adabn": {"sources": ["toshiba_3"]}}, r"'test_time.adabn': 'sources: \['toshiba_3'\]' must be a non-empty list"),
    ({"ft_all": {"method": "adabn"}}, "the name is also a fine-tuning arm's"),
])
def test_bad_test_time_arms_name_the_key(arms, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"test_time": arms})


def test_a_source_reference_is_read_and_checked(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"domain": "ge_15", "quantiles": [0.1, 0.2, 0.5]}')
    bad.write_text('{"domain": "ge_15", "quantiles": [0.5, 0.2, NaN]}')
    assert test_time.SourceReference.read(good).intensity_quantiles.tolist() == [0.1, 0.2, 0.5]
    with pytest.raises(ValueError, match="bad.json: intensity quantiles must be finite"):
        test_time.SourceReference.read(bad)


def test_a_normalizer_starts_as_the_identity_and_bn_kl_normalizer_moves_only_it():
    model = source_model(arch="unet2d_residual" + networks.NORMALIZED)
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(model.normalizer(x), x)  # the last convolution starts at zero
    assert networks.count(model, model.layer_groups()["normalizer"]) == (9 * 16 + 16) + (16 * 16 * 9 + 16) + (16 * 9 + 1)
    groups = model.layer_groups()
    assert sorted(groups["encoder"] + groups["decoder"]) == sorted(n for n, _ in model.named_parameters())
    model.normalizer.body[-1].weight.data.normal_(0, 0.01)  # as after source training: not the identity
    method = test_time.build("bn_kl_normalizer", iterations=5, lr=1e-2)
    adapted, image = method.per_volume(model, REFERENCE, torch.device("cpu"))(shifted_volume())
    before, after = parameters(model), parameters(adapted)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and moved <= set(groups["normalizer"])
    assert all(torch.equal(a, b) for a, b in zip(buffers(model).values(), buffers(adapted).values()))  # BN frozen
    assert min(method.losses) < method.losses[0] and np.array_equal(image, shifted_volume())
    with pytest.raises(ValueError, match="bn_kl_normalizer adapts a normalizer, and this ResidualUNet2D has none"):
        test_time.build("bn_kl_normalizer").per_volume(source_model(), REFERENCE, torch.device("cpu"))(shifted_volume())


@pytest.mark.parametrize("name", ["bn_kl_affine", "bn_kl_normalizer", "tent"])
def test_the_stored_loss_before_and_after_adapting_equal_a_recomputation(name):
    """volume_loss: the loss at the source model (an untouched copy, in the method's mode) and at the network that
    predicts (before finish); tent keeps no best iterate, so its loss after is one more forward pass that must leave
    every buffer as it was."""
    image, model = shifted_volume(), model_for(name)
    method = test_time.build(name, iterations=3, lr=1e-2)
    adapted, _ = method.per_volume(model, REFERENCE, torch.device("cpu"))(image)
    before, after = method.volume_loss()
    fresh = model_for(name)
    method.prepare(fresh)
    with torch.no_grad():
        assert before == pytest.approx(method.loss(fresh, volume_slices(image, 8, "cpu")).item(), rel=1e-5)
    assert after < before
    if name == "tent":  # the loss at the network that finish() gets, and a forward pass that leaves no trace
        recorded = []
        method.finish = lambda network, slices: recorded.append(method.loss(network, slices).item())
        method.per_volume(model_for(name), REFERENCE, torch.device("cpu"))(image)
        assert recorded == [pytest.approx(after, rel=1e-5)]
        network = model_for(name).train()  # BN momentum 0.1: a plain forward pass would move the running statistics
        kept = buffers(network)
        method._loss_now(network, volume_slices(image, 8, "cpu"))
        assert all(torch.equal(kept[k], v) for k, v in buffers(network).items())
    else:
        assert after == pytest.approx(min(method.losses), rel=1e-6)


def test_a_method_without_a_loss_stores_none():
    method = test_time.build("adabn")
    method.per_volume(model_for("adabn"), REFERENCE, torch.device("cpu"))(shifted_volume())
    assert all(np.isnan(value) for value in method.volume_loss())
