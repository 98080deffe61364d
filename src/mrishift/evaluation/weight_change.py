"""How far fine-tuning moved each block of the network: ‖w − w_source‖ / ‖w_source‖ per block, input to output.

Blocks are the model's ``blocks()`` (named modules in depth order, every parameter in exactly one). Parameters are
weights and biases, BatchNorm affine ones included; BatchNorm running statistics are buffers, not weights, and are
left out (a frozen block whose statistics followed the target shows 0 here). A block whose source weights are all
zero has no relative change (NaN).
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn


def block_parameters(model: nn.Module) -> list[tuple[str, list[str]]]:
    """(block, the names of its parameters) of each of ``model.blocks()``, input to output."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [(block, [names[id(p)] for p in module.parameters()]) for block, module in model.blocks()]


@torch.no_grad()
def relative_change(weights: dict[str, torch.Tensor], source: dict[str, torch.Tensor],
                    blocks: list[tuple[str, list[str]]]) -> pd.DataFrame:
    """One row per block (``block_parameters`` of the architecture): block, depth (0 = input), parameters,
    relative_change of ``weights`` against ``source`` (state dicts of that architecture)."""
    rows = []
    for depth, (block, names) in enumerate(blocks):
        moved = math.sqrt(sum(float(((weights[n] - source[n]) ** 2).sum()) for n in names))
        size = math.sqrt(sum(float((source[n] ** 2).sum()) for n in names))
        rows.append({"block": block, "depth": depth, "parameters": sum(source[n].numel() for n in names),
                     "relative_change": moved / size if size > 0 else math.nan})
    return pd.DataFrame(rows)
