"""What a network's first layer computes (the transfer-learning FCN study's Figs 8–10, the 3D-CNN study's Fig. 4): its
first convolution's filters and its first block's feature maps on one slice, so a fine-tuned model can be set beside
its source model (an arm that freezes the first layers must show the source's filters unchanged)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mrishift.evaluation.similarity import block_outputs

if TYPE_CHECKING:
    import torch
    from torch import nn


def first_convolution(model: nn.Module) -> nn.Module:
    """The first convolution the input meets: the first of the first block's modules (``model.blocks()``)."""
    from torch import nn

    _, first_block = model.blocks()[0]
    return next(m for m in first_block.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))


def first_filters(model: nn.Module, count: int) -> np.ndarray:
    """The first ``count`` filters of the first convolution, (count, k, k): each averaged over its input channels
    (one for the study's networks), a 3D kernel at its middle axial slice."""
    weight = first_convolution(model).weight.detach().float().cpu().numpy()[:count].mean(axis=1)
    return weight[..., weight.shape[-1] // 2] if weight.ndim == 4 else weight


def first_block_maps(model: nn.Module, image: torch.Tensor, count: int) -> np.ndarray:
    """The first block's first ``count`` output channels on one input (1, 1, H, W) — or a 3D window, at its middle
    axial slice — in eval mode: (count, H', W')."""
    (output,) = block_outputs(model, image, count=1).values()
    maps = output[0, :count].float().cpu().numpy()
    return maps[..., maps.shape[-1] // 2] if maps.ndim == 4 else maps


def relative_change(model: nn.Module, source: nn.Module) -> float:
    """‖w − w_source‖ / ‖w_source‖ of the first convolution's weights."""
    w, w0 = (first_convolution(m).weight.detach().float().cpu() for m in (model, source))
    return float((w - w0).norm() / w0.norm())


def bottleneck_name(model: nn.Module) -> str:
    """The block at the bottom of the U: the last of ``model.blocks()`` named ``bottleneck*`` (else the middle one)."""
    names = [name for name, _ in model.blocks()]
    deepest = [name for name in names if name.startswith("bottleneck")]
    return deepest[-1] if deepest else names[len(names) // 2]


def bottleneck_features(model: nn.Module, slices: torch.Tensor) -> np.ndarray:
    """Each slice's (or window's) bottleneck output averaged over its positions: (N, channels), one point per input
    for an embedding of what the network's deepest representation separates (the gradient-transfer study's Fig. 1)."""
    name = bottleneck_name(model)
    count = [n for n, _ in model.blocks()].index(name) + 1
    output = block_outputs(model, slices, count)[name].float()
    return output.flatten(2).mean(dim=2).cpu().numpy()
