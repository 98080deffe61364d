"""BatchNorm statistics of a network's layers on given slices: re-estimating the running statistics (AdaBN) and
recording the statistics each layer's input has (the test-time KL loss)."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

BatchNorm = nn.modules.batchnorm._BatchNorm


def layers(model: nn.Module) -> list[BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BatchNorm)]


@torch.no_grad()
def reestimate_statistics(model: nn.Module, slices: torch.Tensor) -> None:
    """Every BatchNorm layer's running statistics := the exact mean and variance of its input over ``slices``.

    One forward pass in train mode with momentum 1, each layer's input normalised by the earlier layers' new
    statistics; the population variance is stored (torch stores the unbiased one), so that eval mode reproduces that
    pass exactly. Leaves the model in eval mode."""
    norms = layers(model)
    momenta = [m.momentum for m in norms]
    with record_inputs(model, lambda x: x.numel() // x.shape[1]) as counts:  # counts only: inputs may be large
        model.train()
        for norm in norms:
            norm.momentum = 1.0
        try:
            model(slices)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
    for norm in norms:
        n = counts[norm]
        norm.running_var.mul_((n - 1) / n)
    model.eval()


@contextmanager
def record_inputs(model: nn.Module, keep=lambda x: x):
    """Within the block, ``inputs[layer]`` is ``keep(input)`` of the input each BatchNorm layer of ``model`` last
    received."""
    inputs: dict[BatchNorm, object] = {}
    hooks = [m.register_forward_pre_hook(lambda m, x: inputs.__setitem__(m, keep(x[0]))) for m in layers(model)]
    try:
        yield inputs
    finally:
        for hook in hooks:
            hook.remove()


def input_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population variance of an (N, C, ...) tensor over every other axis."""
    dims = [0, *range(2, x.dim())]
    return x.mean(dims), x.var(dims, unbiased=False)


def kl_to_running(norm: BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Σ over channels of KL( N(μ, σ²) ‖ N(μ̄, σ̄²) ): the Gaussian of this input's batch statistics against the
    layer's running statistics (the layer's ``eps`` added to both variances, so that equal statistics give 0)."""
    mean, var = input_statistics(x)
    var = var + norm.eps
    running_var = norm.running_var + norm.eps
    return (0.5 * torch.log(running_var / var) + (var + (mean - norm.running_mean) ** 2) / (2 * running_var)
            - 0.5).sum()
