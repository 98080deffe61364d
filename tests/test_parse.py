"""What parsing the workflow costs: Snakemake parses it at every start (twice in each cluster job), so the parse reads
the config, the arms and the networks' facts without importing torch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrishift.models import architectures, networks

ROOT = Path(__file__).resolve().parents[1]


def test_the_workflow_plans_with_torch_unimportable(tmp_path):
    """Every arm of every shipped study is built and checked at parse time; with a `torch` that raises on import first
    on the path, the paper's study and the tiny one still plan (a dry run in an empty folder: every job planned)."""
    blocker = tmp_path / "blocker/torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch imported while parsing the workflow')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for configs in (["config/tiny.yaml"], ["config/paper.yaml", "config/plan-only.yaml", "config/adam.yaml"]):
        if "config/paper.yaml" in configs:  # planning the paper's study is bench/plan_paper.py's; parse it only
            configs = [*configs, "--", "make_splits"]
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory",
                                 str(tmp_path / "work"), "--configfile", *configs], cwd=ROOT, capture_output=True,
                                text=True, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert "torch imported while parsing" not in result.stderr
        assert "make_splits" in result.stdout


@pytest.mark.parametrize("name, dims, levels, stride", [
    ("unet2d_residual", 2, 4, 8), ("unet3d_residual", 3, 4, 8), ("unet_vanilla", 2, 5, 16),
    ("unet2d_residual_spottune", 2, 4, 8), ("unet3d_residual_normalized", 3, 4, 8),
    ("unet_vanilla_normalized", 2, 5, 16),
])
def test_the_networks_facts_known_before_torch_are_the_built_networks(name, dims, levels, stride):
    assert (architectures.dims(name), architectures.default_levels(name), architectures.stride(name)) == (
        dims, levels, stride)
    network = networks.build(name, width=0.25)
    assert (network.dims, network.levels) == (dims, levels)
    side = 2 * stride if dims == 2 else stride
    import torch

    with torch.no_grad():  # a side that is a multiple of the stride goes through; its output keeps the input's shape
        shape = (1, 1, *([side] * dims))
        assert network.eval()(torch.zeros(shape)).shape == shape


def test_every_registered_network_and_no_other_is_known_to_the_workflow():
    assert networks.names() == architectures.names()
    assert len(architectures.names()) == 9  # 3 networks, each plain, normalized and SpotTune
    with pytest.raises(ValueError, match="unknown model 'unet4d'"):
        architectures.dims("unet4d")
    with pytest.raises(ValueError, match="unknown model 'unet2d_residual_spottune_normalized'"):
        architectures.dims("unet2d_residual_spottune_normalized")
