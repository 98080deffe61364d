"""The speed switches (bf16, channels_last, torch.compile, device-held data): ignored where they cannot apply (a CPU),
result-neutral where they promise to be (device-held data), and working on CUDA where a GPU is present."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mrishift.adaptation import strategies
from mrishift.models import networks
from mrishift.training.loop import Recipe, train
from mrishift.training.sampling import SliceSampler

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
BASE = Recipe(epochs=2, iters_per_epoch=3, batch_size=4, patch_size=16, lr=0.05, lr_drop_epoch=0, bf16=False,
              channels_last=False, compile=False, data_on_device=False, deterministic=True)


def trained(recipe: Recipe, strategy="ft_all", augment_p=0.5) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    data = [(rng.random((20, 18, 6), dtype=np.float32), (rng.random((20, 18, 6)) > 0.5).astype(np.float32))]
    torch.manual_seed(0)
    model = networks.build("unet2d_residual", width=0.25)
    sampler = SliceSampler(data, [range(6)], recipe.batch_size, recipe.patch_size, augment_p, np.random.default_rng(1))
    record = train(model, strategies.build(strategy), sampler, recipe, seed=0)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, record


def test_gpu_switches_change_nothing_on_a_cpu():
    weights, record = trained(replace(BASE, device="cpu"))
    switched, switched_record = trained(replace(BASE, device="cpu", bf16=True, compile=True, data_on_device=True))
    assert all(torch.equal(weights[name], switched[name]) for name in weights)
    assert record["losses"] == switched_record["losses"]


@cuda
@pytest.mark.parametrize("strategy", ["ft_all", "ft_first", "ft_last"])
def test_device_held_batches_train_the_same_weights_on_cuda(strategy):
    weights, _ = trained(replace(BASE, device="cuda"), strategy)
    held, _ = trained(replace(BASE, device="cuda", data_on_device=True), strategy)
    assert all(torch.equal(weights[name], held[name]) for name in weights)


@cuda
@pytest.mark.parametrize("switch", [{"channels_last": True}, {"bf16": True}, {"compile": True},
                                    {"bf16": True, "channels_last": True, "compile": True, "data_on_device": True}])
def test_each_cuda_switch_trains_close_to_fp32(switch):
    """Each switch changes float rounding only: the loss curve stays within a few percent of plain fp32."""
    _, reference = trained(replace(BASE, device="cuda"))
    _, record = trained(replace(BASE, device="cuda", **switch))
    assert np.all(np.isfinite(record["losses"]))
    assert np.allclose(record["losses"], reference["losses"], rtol=0.05), (reference["losses"], record["losses"])
