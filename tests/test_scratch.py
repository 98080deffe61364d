"""Arms trained from scratch (mrishift.adaptation.scratch): DART 2020's preliminary reference points."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_jobs import write_cases

from mrishift.adaptation import strategies
from mrishift.models import networks
from mrishift.training import jobs
from mrishift.training.jobs import Job, Run, train_runs
from mrishift.training.loop import Recipe
from mrishift.training.runs import initial_network, load_saved
from mrishift.training.sampling import SliceSampler


@pytest.mark.parametrize("arm", ["scratch_target", "scratch_joint"])
def test_a_scratch_arm_starts_from_the_seeded_initialisation_and_never_reads_a_source_model(arm, tmp_path,
                                                                                          monkeypatch):
    def no_model(path):
        raise AssertionError(f"a scratch arm read a model: {path}")

    monkeypatch.setattr(jobs, "load_model", no_model)
    monkeypatch.setattr(jobs, "load_saved", no_model)
    built, original = [], networks.build

    def build(*args, **kwargs):  # the network the run trains, as it starts
        network = original(*args, **kwargs)
        built.append({k: v.clone() for k, v in network.state_dict().items()})
        return network

    monkeypatch.setattr(jobs.networks, "build", build)
    files = write_cases(tmp_path / "data", n=2)
    recipe = Recipe(epochs=1, iters_per_epoch=2, batch_size=4, patch_size=16, lr=0.05, lr_drop_epoch=0)
    job = Job(role="finetune", arch="unet2d_residual", width=0.25, arm=arm, hparams={}, recipe=recipe, scans=files)
    run = Run({"role": "finetune", "source": "a", "target": "b", "budget": "every2", "seed": 0}, ["CC0001"],
              str(tmp_path / "model.pt"), str(tmp_path / "record.json"), str(tmp_path / "run.pt"), slices=[[0, 2]],
              source_cases=["CC0000"] if arm == "scratch_joint" else [])
    train_runs(job, [run])
    monkeypatch.undo()
    torch.manual_seed(run.seed)
    seeded = networks.build("unet2d_residual", width=0.25).state_dict()
    assert len(built) == 1 and built[0].keys() == seeded.keys()
    assert all(torch.equal(built[0][k], seeded[k]) for k in seeded)
    saved = load_saved(run.model_path)
    assert not all(torch.equal(saved["model"][k], seeded[k]) for k in seeded)  # and it trained
    # what feature reuse compares a scratch model with: its start, rebuilt from the saved network and the record's seed
    rebuilt = initial_network(saved, json.loads(Path(run.record_path).read_text())["seed"]).state_dict()
    assert all(torch.equal(rebuilt[k], seeded[k]) for k in seeded)


def test_only_the_scratch_arms_start_from_scratch_and_only_the_joint_one_reads_source_slices():
    arms = ["scratch_target", "scratch_joint", "ft_all", "mmtl"]
    assert [strategies.build_arm(arm, {}).from_scratch for arm in arms] == [True, True, False, False]
    assert [strategies.build_arm(arm, {}).uses_source_data for arm in arms] == [False, True, False, True]


def test_joint_batches_draw_every_slice_of_the_union_equally_likely():
    """Known answer: 2 target slices (all ones) beside 6 source slices (all zeros): a quarter of the drawn slices are
    the target's, to within 3 standard errors over 100 batches of 64."""
    ones, zeros = np.ones((20, 20, 2), np.float32), np.zeros((20, 20, 6), np.float32)
    target = SliceSampler([(ones, ones)], [[0, 1]], 64, 16, 0.0, np.random.default_rng(0))
    source = SliceSampler([(zeros, zeros)], [range(6)], 64, 16, 0.0, np.random.default_rng(1))
    strategy = strategies.build_arm("scratch_joint", {})
    drawn = []
    for epoch in range(100):
        images, masks = strategy.batch(epoch, target, source)
        assert images.shape == masks.shape == (64, 1, 16, 16)
        drawn.append(images.flatten(1).amax(1))  # 1: a target slice, 0: a source slice
    share = torch.cat(drawn).mean().item()
    assert abs(share - 0.25) < 3 * (0.25 * 0.75 / 6400) ** 0.5
    with pytest.raises(ValueError, match="no source sampler"):
        strategy.batch(0, target)
