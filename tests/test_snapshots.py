"""Snapshots through training (training.snapshots): taken at exactly the configured steps, the same after a killed run
resumes; held-out target scans out of the test set (splits.n_finetune_validation); the plan's checks; and the rule
snapshots on a two-domain study."""

import json

import pandas as pd
import pytest
import torch
import yaml
from test_jobs import write_cases
from workflow_runs import ROOT, snakemake

from mrishift.config import validate_config
from mrishift.data.splits import scan_roles
from mrishift.plan import Plan
from mrishift.training import jobs
from mrishift.training.jobs import Job, Run, snapshot_path, train_runs
from mrishift.training.loop import Recipe
from mrishift.training.runs import load_saved

STEPS = (0, 1, 3, 4)


def job_and_run(tmp_path, files, folder):
    recipe = Recipe(epochs=2, iters_per_epoch=2, batch_size=4, patch_size=16, lr=0.05, lr_drop_epoch=0)
    job = Job(role="finetune", arch="unet2d_residual", width=0.25, arm="ft_all", hparams={}, recipe=recipe,
              scans=files)
    out = tmp_path / folder
    run = Run({"role": "finetune", "source": "a", "target": "b", "budget": "1scan", "seed": 0, "snapshots": STEPS},
              ["CC0000"], str(out / "run/model.pt"), str(out / "run/record.json"), str(out / "checkpoints/run.pt"),
              slices=[[0, 2, 4]], snapshots=STEPS)
    return job, run


def snapshots_of(run):
    folder = snapshot_path(run.model_path, 0).parent
    return {path.name: load_saved(path)["model"] for path in sorted(folder.iterdir())}


def test_snapshots_are_taken_at_exactly_the_configured_steps_and_a_killed_run_resumes_with_the_same(tmp_path,
                                                                                                      monkeypatch):
    files = write_cases(tmp_path / "data", n=1)
    job, whole = job_and_run(tmp_path, files, "whole")
    train_runs(job, [whole])
    expected = snapshots_of(whole)
    assert sorted(expected) == sorted(f"step{step}.pt" for step in STEPS)
    final = load_saved(whole.model_path)["model"]
    assert all(torch.equal(expected["step4.pt"][k], final[k]) for k in final)  # the last step is the final model
    assert not all(torch.equal(expected["step0.pt"][k], expected["step1.pt"][k]) for k in final)

    job, killed = job_and_run(tmp_path, files, "killed")
    original = jobs.save_model

    def kill_after_step_three(path, *args, **kwargs):  # the second epoch dies after its step-3 snapshot
        original(path, *args, **kwargs)
        if str(path).endswith("step3.pt"):
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(jobs, "save_model", kill_after_step_three)
    with pytest.raises(KeyboardInterrupt):
        train_runs(job, [killed])
    monkeypatch.undo()
    assert sorted(p.name for p in killed.snapshot_folder.iterdir()) == ["step0.pt", "step1.pt", "step3.pt"]
    assert torch.load(killed.checkpoint, weights_only=True)["epoch"] == 1  # resumes after the first epoch
    train_runs(job, [killed])
    resumed = snapshots_of(killed)
    assert sorted(resumed) == sorted(expected)
    assert all(torch.equal(resumed[name][k], expected[name][k]) for name in expected for k in expected[name])


def test_held_out_finetuning_scans_leave_the_test_set_and_nothing_changes_without_them():
    cases = [f"CC{i:04d}" for i in range(10)]
    plain = scan_roles("d", cases, seed=7, n_validation=1, n_folds=3, budgets=["2scans"])
    held = scan_roles("d", cases, seed=7, n_validation=1, n_folds=3, budgets=["2scans"], n_finetune_validation=2)
    assert "finetune_validation" not in plain and len(held["finetune_validation"]) == 2
    assert held["finetune_order"] == plain["finetune_order"]
    assert set(held["finetune_validation"]).isdisjoint(held["finetune_order"] + held["test"])
    assert sorted(held["test"] + held["finetune_validation"]) == plain["test"]
    with pytest.raises(ValueError, match="held out for fine-tunes' validation"):
        scan_roles("d", cases[:4], seed=7, n_validation=1, n_folds=3, budgets=["2scans"], n_finetune_validation=2)


def tiny(**changes):
    config = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    for section, values in changes.items():
        config[section].update(values)
    return validate_config(config)


def test_the_plan_keeps_snapshots_of_the_chosen_pairs_training_arms_at_steps_they_take():
    study = Plan(tiny(training={**yaml.safe_load((ROOT / "config/tiny.yaml").read_text())["training"],
                                "snapshots": {"steps": [0, 4], "sources": ["siemens_15", "ge_15"]}}))
    runs = study.snapshot_runs()
    assert {arm for arm, *_ in runs} == {"ft_all", "ft_first", "ft_first_bn_eval", "scratch_target"}  # not bn_stats
    assert {(source, target) for _, source, target, _, _ in runs} == set(study.similarity_pairs)  # the same 4 pairs
    assert len(runs) == 4 * 2 + 4 * 2 + 4 + 2  # ft_all, ft_first: 4 pairs x 2 budgets; bn_eval: every4; scratch: 2
    assert Plan(tiny()).snapshot_runs() == []
    with pytest.raises(ValueError, match="step 5, but ft_all's runs of variant unet2d_residual take 4 steps"):
        Plan(tiny(training={**yaml.safe_load((ROOT / "config/tiny.yaml").read_text())["training"],
                            "snapshots": {"steps": [5]}}))


@pytest.mark.workflow
def test_the_snapshot_rule_reads_similarity_held_out_score_and_embedding_per_step(tmp_path):
    workdir = tmp_path / "study"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config/tiny.yaml").write_text((ROOT / "config/tiny.yaml").read_text())
    (workdir / "config/snapshots.yaml").write_text(yaml.safe_dump({
        "data": {"domains": ["siemens_15", "siemens_3"]}, "splits": {"n_finetune_validation": 1},
        "training": {"snapshots": {"steps": [0, 2, 4], "sources": ["siemens_15"]}},
        "evaluation": {"similarity": {"sources": ["siemens_15"], "targets": ["siemens_3"], "slices": 8,
                                      "positions": 512}, "model_similarity": {"arms": []}},
        "strategies": {"ft_all": {}, "scratch_target": {"budgets": ["every4"]}}, "test_time": {}}))
    result = snakemake(workdir, configfile=["tiny.yaml", "snapshots.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    models = workdir / "results/models/unet2d_residual/finetune"
    for arm, budget in (("ft_all", "2scans"), ("ft_all", "every4"), ("scratch_target", "every4")):
        folder = models / arm / "to_siemens_3/siemens_15_to_siemens_3" / budget / "seed0/snapshots"
        assert sorted(p.name for p in folder.iterdir()) == ["step0.pt", "step2.pt", "step4.pt"]
    assert not list((workdir / "results/checkpoints").rglob("*.snapshots"))  # gone once the job is done
    stats = workdir / "results/stats/unet2d_residual"
    scores = pd.read_csv(stats / "snapshot_scores.tsv", sep="\t")
    assert len(scores) == 3 * 3 and scores.sdice.between(0, 1).all()
    splits = json.loads((workdir / "results/data/splits.json").read_text())["domains"]["siemens_3"]
    assert len(splits["finetune_validation"]) == 1 and len(splits["test"]) == 4 - 2 - 1
    similarity = pd.read_csv(stats / "snapshot_similarity.tsv", sep="\t")
    assert similarity[similarity.step == 0].cka.to_numpy() == pytest.approx(1.0)  # step 0 is where it started
    assert (similarity[similarity.step == 4].cka < 0.999).any()
    figures = workdir / "results/figures/unet2d_residual"
    for name in ("snapshot_similarity", "snapshot_scores", "snapshot_tsne"):
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
