"""Representation similarity: linear CKA and projection-weighted CCA on known cases, and block activations."""

import numpy as np
import pytest
import torch

from mrishift.evaluation import features
from mrishift.evaluation.similarity import (
    block_activations,
    block_similarity,
    canonical_correlations,
    linear_cka,
    pwcca,
)
from mrishift.models import networks


def random_orthogonal(n, rng):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def test_cka_is_one_for_itself_and_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ random_orthogonal(8, rng) + 5.0) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(500, 8))) < 0.1  # independent: near 0 (≈ C/N in expectation)
    stretched = x * np.array([10.0, 1, 1, 1, 1, 1, 1, 1])  # not invariant to a non-isotropic scaling
    assert linear_cka(x, stretched) < 0.99


def test_cka_of_one_channel_is_the_squared_correlation():
    x, y = np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([[1.0], [3.0], [2.0], [4.0]])
    assert linear_cka(x, y) == pytest.approx(0.8**2)  # r = 4 / 5
    assert np.isnan(linear_cka(x, np.ones((4, 1))))


def test_pwcca_weights_each_canonical_direction_by_the_reference_it_explains():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(200, 3)) - rng.normal(size=(200, 3)).mean(0))[0]
    basis -= basis.mean(axis=0)
    basis = np.linalg.qr(basis)[0]  # three orthonormal centred directions
    x1, x2, z = basis.T
    x = np.stack([3.0 * x1, 1.0 * x2], axis=1)  # the reference: channel norms 3 and 1, orthogonal
    y = np.stack([x1, z], axis=1)  # keeps x1 exactly, replaces x2 by something unrelated
    rho, _ = canonical_correlations(x, y)
    assert rho == pytest.approx([1.0, 0.0], abs=1e-9)
    assert pwcca(x, y) == pytest.approx(3.0 / 4.0)  # ρ = (1, 0) weighted (3, 1)
    assert pwcca(x, x) == pytest.approx(1.0)
    assert pwcca(x, x @ np.array([[2.0, 1.0], [0.5, -3.0]])) == pytest.approx(1.0)  # any invertible map


def test_pwcca_matches_the_whitened_covariance_computation():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    y = x[:, :3] @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(300, 4))
    xc, yc = x - x.mean(0), y - y.mean(0)

    def inverse_sqrt(c):
        w, v = np.linalg.eigh(c)
        return v @ np.diag(w**-0.5) @ v.T

    wx, wy = inverse_sqrt(xc.T @ xc), inverse_sqrt(yc.T @ yc)
    u, rho, _ = np.linalg.svd(wx @ xc.T @ yc @ wy)
    variates = xc @ wx @ u[:, :4]  # unit-norm canonical variates of x
    weights = np.abs(variates.T @ xc).sum(axis=1)
    assert pwcca(x, y) == pytest.approx((weights * rho[:4]).sum() / weights.sum(), rel=1e-9)
    assert canonical_correlations(x, y)[0] == pytest.approx(rho[:4], rel=1e-9)


def test_block_activations_take_the_same_positions_of_each_block_for_two_models():
    torch.manual_seed(0)
    a, b = (networks.build("unet2d_residual", width=0.25) for _ in range(2))
    slices = torch.rand(2, 1, 32, 32)
    first, second = block_activations(a, slices, positions=100, seed=7), block_activations(b, slices, 100, 7)
    names = [name for name, _ in a.blocks()]
    assert list(first) == names and first["init"].shape == (100, 4) and first["output_norm"].shape == (100, 1)
    assert first["bottleneck.0"].shape == (2 * 4 * 4, 32)  # 32 / stride 8 = 4: fewer positions than asked, all kept
    again = block_activations(a, slices, positions=100, seed=7)
    assert all(np.array_equal(first[n], again[n]) for n in names)  # same seed, same positions
    rows = block_similarity(first, first)
    assert [r["block"] for r in rows] == names and all(r["cka"] == pytest.approx(1.0) for r in rows)
    assert all(r["pwcca"] == pytest.approx(1.0) for r in rows)
    assert block_similarity(first, second)[0]["cka"] < 0.99  # another initialisation computes something else


def test_first_layer_filters_and_feature_maps_of_a_model_and_its_change():
    torch.manual_seed(0)
    source = networks.build("unet2d_residual", width=0.25)
    conv = features.first_convolution(source)
    assert conv is next(m for m in source.modules() if isinstance(m, torch.nn.Conv2d))
    filters = features.first_filters(source, 4)
    assert filters.shape == (4, *conv.kernel_size)
    assert np.allclose(filters, conv.weight.detach().numpy()[:4, 0])
    maps = features.first_block_maps(source, torch.rand(1, 1, 32, 32), 3)
    assert maps.shape == (3, 32, 32)
    moved = networks.build("unet2d_residual", width=0.25)
    moved.load_state_dict(source.state_dict())
    assert features.relative_change(moved, source) == 0
    with torch.no_grad():
        features.first_convolution(moved).weight.mul_(1.5)
    assert features.relative_change(moved, source) == pytest.approx(0.5)
