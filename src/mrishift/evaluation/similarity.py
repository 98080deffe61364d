"""Where fine-tuning changed what the network computes: similarity of each block's activations before and after.

Both models see the same slices; a block's activations are read with a forward hook as an (N, C) matrix — every
spatial position of every slice a data point, its C channels the neurons (Raghu et al. 2017 and Morcos et al. 2018
treat convolutional layers so) — on a seeded subset of positions, the same for both models.

Two measures:

* ``linear_cka`` (Kornblith et al. 2019), the default: invariant to orthogonal transforms and isotropic scaling of the
  channels, not to every invertible linear map. It tells blocks apart reliably and is one matrix product, so it is
  what the figures show first.
* ``pwcca``, projection-weighted CCA (Morcos et al. 2018), the measure of the seed paper's "RSIM": the mean canonical
  correlation, each canonical direction weighted by how much of the first representation it accounts for. CCA is
  invariant to any invertible linear map of either side, so it is blind to rescaled or mixed channels that change
  what the next layer computes; it is reported beside CKA.

Both are 1 for identical representations and lie in [0, 1]. Between two trained models, where neither is the
reference (the FCN study's Table VII), PWCCA is taken both ways and averaged (``model_similarity``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mrishift.adaptation.registry import chosen_pairs

if TYPE_CHECKING:  # torch is imported where activations are taken: the workflow reads analysed_pairs when it parses
    import torch
    from torch import nn

RANK_TOLERANCE = 1e-10  # singular values below this share of the largest span no direction (dead or copied channels)


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a representation is an (N, C) matrix, got shape {x.shape}")
    return x - x.mean(axis=0)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same N data points, (N, C1) and (N, C2):
    ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) on column-centred matrices; NaN when either is constant."""
    x, y = _centred(x), _centred(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"representations of {x.shape[0]} and {y.shape[0]} data points")
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(np.linalg.norm(y.T @ x) ** 2 / norm) if norm > 0 else float("nan")


def _orthonormal_basis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U, S, Vᵀ of the thin SVD of a centred matrix, without the directions of (near-)zero singular value."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > RANK_TOLERANCE * (s[0] if s.size else 0)
    return u[:, keep], s[keep], vt[keep]


def canonical_correlations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ρ, H): the canonical correlations of x and y, largest first, and x's canonical variates (N, k), unit norm."""
    x, y = _centred(x), _centred(y)
    ux, _, _ = _orthonormal_basis(x)
    uy, _, _ = _orthonormal_basis(y)
    a, rho, _ = np.linalg.svd(ux.T @ uy, full_matrices=False)
    k = min(ux.shape[1], uy.shape[1])
    return np.clip(rho[:k], 0.0, 1.0), ux @ a[:, :k]


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """Projection-weighted CCA of x against y: Σ αᵢ ρᵢ / Σ αᵢ with αᵢ = Σⱼ |⟨hᵢ, xⱼ⟩| (hᵢ x's i-th canonical variate,
    xⱼ its j-th centred channel). Weighted by x, so not symmetric: x is the reference (here, the source model).
    NaN when either representation is constant."""
    x_centred, y_centred = _centred(x), _centred(y)
    if not (np.abs(x_centred).max(initial=0) > 0 and np.abs(y_centred).max(initial=0) > 0):
        return float("nan")
    rho, variates = canonical_correlations(x_centred, y_centred)
    weights = np.abs(variates.T @ x_centred).sum(axis=1)
    return float((weights * rho).sum() / weights.sum())


MEASURES = {"cka": linear_cka, "pwcca": pwcca}


def analysed_pairs(settings: dict, domains: list[str]) -> list[tuple[str, str]]:
    """The source→target pairs of ``evaluation.similarity`` (its ``sources`` and ``targets``; null: every domain)."""
    return chosen_pairs(settings, domains)


def block_outputs(model: nn.Module, inputs: torch.Tensor, count: int | None = None) -> dict[str, torch.Tensor]:
    """The output of each of ``model.blocks()`` (the first ``count`` of them; None: all), by name, from one forward
    pass in eval mode without gradients."""
    import torch

    blocks = model.blocks()[:count]
    captured = {}
    hooks = [module.register_forward_hook(lambda _, __, output, name=name: captured.__setitem__(name, output))
             for name, module in blocks]
    try:
        with torch.no_grad():
            model.eval()(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: captured[name] for name, _ in blocks}


def block_activations(model: nn.Module, slices: torch.Tensor, positions: int, seed: int) -> dict[str, np.ndarray]:
    """Each of ``model.blocks()``'s output on ``slices`` (B, 1, H, W), or a 3D network's patches (B, 1, H, W, D), as
    an (N, C) matrix: ``positions`` data points drawn without replacement from its B × H' × W' (× D') positions (all
    when fewer), by a generator seeded with ``seed`` and the block's name — so two models of one architecture give
    the same positions."""
    import torch

    activations = {}
    for name, output in block_outputs(model, slices).items():
        output = output.float()
        points = output.movedim(1, -1).reshape(-1, output.shape[1])  # (B·H'·W'[·D'], C)
        if points.shape[0] > positions:
            generator = np.random.default_rng([seed, *name.encode()])
            chosen = torch.from_numpy(np.sort(generator.choice(points.shape[0], positions, replace=False)))
            points = points[chosen.to(points.device)]
        activations[name] = points.cpu().numpy()
    return activations


def block_similarity(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> list[dict]:
    """One row per block, in ``reference``'s order: block, depth, and each of ``MEASURES`` of other against it."""
    return [{"block": name, "depth": depth, **{measure: of(reference[name], other[name])
                                                for measure, of in MEASURES.items()}}
            for depth, name in enumerate(reference)]


def model_similarity(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> list[dict]:
    """``block_similarity`` of two models neither of which is the reference: CKA (symmetric) and PWCCA averaged over
    both directions, so the measure of a pair does not depend on which model is named first."""
    return [{**one, "pwcca": (one["pwcca"] + other["pwcca"]) / 2}
            for one, other in zip(block_similarity(first, second), block_similarity(second, first), strict=True)]


def evenly_spaced(inputs: list[torch.Tensor], count: int) -> torch.Tensor:
    """``count`` of the slices (or windows) of several volumes' network inputs, evenly spaced through them in order
    (all when fewer): what every model compared on one pair sees."""
    import torch

    every = torch.cat(inputs)
    return every[np.linspace(0, len(every) - 1, min(count, len(every))).round().astype(int)]
