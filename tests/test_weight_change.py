"""Relative weight change per block: known answers, blocks that partition the parameters."""

import copy

import pytest
import torch

from mrishift.evaluation.weight_change import block_parameters, relative_change
from mrishift.models import networks


@pytest.mark.parametrize("name", ["unet2d_residual", "unet_vanilla", "unet2d_residual_normalized"])
def test_blocks_hold_every_parameter_exactly_once_in_depth_order(name):
    model = networks.build(name, width=0.25)
    in_blocks = [id(p) for _, block in model.blocks() for p in block.parameters()]
    assert sorted(in_blocks) == sorted(id(p) for p in model.parameters())
    names = [block for block, _ in model.blocks()]
    assert len(set(names)) == len(names)
    first_parameter = next(model.parameters())  # the layer the input meets first
    assert any(p is first_parameter for p in model.blocks()[0][1].parameters())
    assert names[-1] in ("output_norm", "output")


def test_a_block_scaled_by_ten_percent_moved_exactly_that_much():
    torch.manual_seed(0)
    source = networks.build("unet2d_residual", width=0.25)
    model = copy.deepcopy(source)
    blocks = dict(model.blocks())
    with torch.no_grad():
        for p in blocks["encoder1.2"].parameters():
            p.mul_(1.1)
        blocks["head"][2].bias.add_(3.0)  # a bias-only move: ‖Δ‖ = 3, relative to the head's whole norm
    table = relative_change(model.state_dict(), source.state_dict(), block_parameters(source)).set_index("block")
    assert table.loc["encoder1.2", "relative_change"] == pytest.approx(0.1, rel=1e-5)
    head_norm = torch.cat([p.detach().flatten() for p in dict(source.blocks())["head"].parameters()]).norm().item()
    assert table.loc["head", "relative_change"] == pytest.approx(3.0 / head_norm, rel=1e-5)
    untouched = table.drop(["encoder1.2", "head"])
    assert (untouched.relative_change == 0).all() and list(table.depth) == list(range(len(table)))
    assert table.parameters.sum() == sum(p.numel() for p in model.parameters())
