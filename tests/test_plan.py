"""mrishift.plan: the runs and GPU jobs a config means (equal to Snakemake's plan), the run counts each paper's study
implies, and the GPU-hour arithmetic on a small study done by hand."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runs import ENV, planned_jobs

from mrishift import plan
from mrishift.config import validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_hours_count_every_step_and_predicted_slice():
    config = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    config["data"]["domains"] = ["siemens_15", "ge_15"]
    config["splits"].update(n_validation=1, n_folds=2, budgets=["1scan"])
    config["training"].update(source={"epochs": 2, "iters_per_epoch": 5, "batch_size": 4},
                              finetune={"epochs": 1, "iters_per_epoch": 5, "batch_size": 4}, validate_every=1)
    config["strategies"] = {"ft_all": {}, "bn_stats": {}, "scratch_target": {}}
    config["test_time"] = {"adabn": {}, "tent": {"sources": ["ge_15"]}, "bn_kl_affine": {"iterations": 3}}
    config = validate_config(config)
    throughput = {"training": {"source": {"defaults": 10.0}, "ft_first": {"defaults": 20.0},
                               "ft_last": {"defaults": 40.0}},
                  "inference": {"fp32+channels_last": 100.0, "bf16+channels_last": 200.0}}
    hours = plan.Plan(config).gpu_hours(throughput, "defaults")
    seconds = dict(zip(hours.part, hours.gpu_hours * 3600))
    # a source run: 2 × 5 × 4 = 40 slices at 10/s, validation 1 scan × 270 slices × 2 epochs at 100/s
    assert seconds["train_source"] == pytest.approx(2 * (40 / 10 + 540 / 100))  # 2 domains
    assert seconds["train_oracle"] == pytest.approx(4 * (40 / 10 + 540 / 100))  # 2 domains × 2 folds
    assert seconds["finetune ft_all"] == pytest.approx(2 * 20 / 10)  # 2 pairs × 1 budget, 20 slices each
    assert seconds["finetune bn_stats"] == pytest.approx(2 * 270 / 100)  # one forward pass over the 1-scan budget
    assert seconds["finetune scratch_target"] == pytest.approx(2 * 40 / 10)  # the source recipe's 40 slices, not 20
    test_scans = 60 - 1
    assert seconds["score_oracle"] == pytest.approx(4 * 30 * 270 / 100)  # each fold's model on its 30 scans
    assert seconds["score_baseline"] == pytest.approx(2 * test_scans * 270 / 100)
    assert seconds["score_finetune"] == pytest.approx(3 * 2 * test_scans * 270 / 100)  # 3 arms × 2 runs
    # test-time, per volume of the 59 test scans of each pair: adabn 2 forward passes; tent (from ge_15 only) one
    # training step, its loss after it (stored), the statistics pass and the prediction; bn_kl_affine 3 steps, the
    # last iterate's loss, prediction
    # a variant twice as wide costs 4×, a narrower one width 1's rate: mean factor (1 + 4 + 1) / 3 on every part
    config["models"]["sizes"] = [{}, {"width": 2.0}, {"width": 0.25}]
    wider = plan.Plan(validate_config(config)).gpu_hours(throughput, "defaults")
    assert dict(zip(wider.part, wider.gpu_hours)) == pytest.approx(
        {part: 3 * hours * (1 + 4 + 1) / 3 for part, hours in zip(hours.part, hours.gpu_hours)})
    assert seconds["adapt_score adabn"] == pytest.approx(2 * test_scans * 270 * 2 / 100)
    assert seconds["adapt_score tent"] == pytest.approx(test_scans * 270 * (1 / 10 + 3 / 100))
    assert seconds["adapt_score bn_kl_affine"] == pytest.approx(2 * test_scans * 270 * (3 / 10 + 2 / 100))


def test_the_plan_answers_which_runs_and_jobs_without_snakemake():
    """The tiny study's plan, by hand: its runs per role, the runs of one job under each job grouping, what each arm
    starts from and reads, and its recipes."""
    config = load("tiny.yaml")
    study = plan.Plan(config)
    assert study.domains == ["siemens_15", "siemens_3", "ge_15"] and study.seeds == ["0"]
    assert study.cases_by_domain["ge_15"] == ["CC0240", "CC0241", "CC0242", "CC0243"]  # GE 1.5T: CC0240…
    assert study.strategies == ["ft_all", "ft_first", "ft_first_bn_eval", "bn_stats", "scratch_target"]
    assert study.arm_pairs["scratch_target"] == [("siemens_15", "siemens_3"), ("siemens_15", "ge_15")]
    assert study.arm_budgets["ft_first_bn_eval"] == ["every4"] and study.arm_budgets["ft_all"] == ["2scans", "every4"]
    assert len(study.pairs) == 6 and study.method_pairs["bn_kl_affine"] == [("siemens_15", "siemens_3"),
                                                                             ("siemens_15", "ge_15")]
    assert study.normalized_domains == ["siemens_15"] and study.method_models["bn_kl_normalizer"] == "normalized"
    assert study.methods_reading_reference == {"hist_match"}
    assert study.runs().groupby("role").size().to_dict() == {"source": 3, "source_normalized": 1, "oracle": 9,
                                                             "finetune": 7 * 6 + 2, "test_time": 3 * 6 + 2 * 2}
    # one job per arm and target (tiny.yaml): the two sources into siemens_3, each at both budgets
    assert study.job_runs("ft_all", target="siemens_3") == [("siemens_15", "siemens_3", "2scans", "0"),
                                                            ("siemens_15", "siemens_3", "every4", "0"),
                                                            ("ge_15", "siemens_3", "2scans", "0"),
                                                            ("ge_15", "siemens_3", "every4", "0")]
    assert study.jobs()["finetune"] == 4 * 3 + 2 and study.jobs()["adapt_score"] == 3 * 3 + 2 * 2
    for grouping, jobs in (("pair", 4 * 6 + 2), ("strategy", 5)):  # the same runs, grouped otherwise
        regrouped = plan.Plan({**config, "training": {**config["training"], "finetune_job": grouping}})
        keys = regrouped.job_keys(regrouped.arm_pairs["ft_all"])
        assert sum(len(regrouped.job_runs("ft_all", *(key if grouping == "pair" else (None, None))))
                   for key in keys) == 12
        assert regrouped.jobs()["finetune"] == jobs
    assert len(study.finetune_runs()) == 44 and len(study.finetune_runs(from_source_only=True)) == 42
    assert study.similarity_pairs == [("siemens_15", "siemens_3"), ("siemens_15", "ge_15"), ("ge_15", "siemens_15"),
                                      ("ge_15", "siemens_3")]
    assert len(study.similarity_runs()) == 4 * 7
    # Tables VII-VIII: the three compared arms' runs on the similarity pairs (scratch_target's 2 among them)
    assert study.model_similarity_arms == ["scratch_target", "ft_all", "ft_first"]
    assert len(study.model_similarity_runs()) == 2 + 4 * 2 * 2 and study.jobs()["model_similarity"] == 1
    assert study.arm_recipe("unet2d_residual", "scratch_target") == study.recipe("unet2d_residual", "source")
    assert study.finetune_scans("siemens_3", "2scans") == study.scan_roles["siemens_3"]["finetune_order"][:2]
    assert study.recipe("unet2d_residual", "finetune")["lr"] == 0.001 and study.arm_recipe(
        "unet2d_residual", "ft_all") == study.recipe("unet2d_residual", "finetune")
    assert study.network("unet2d_residual") == {"width": 0.5}


def load(*names) -> dict:
    return plan.load_config([ROOT / "config" / name for name in names], ROOT / "config/config.yaml")


@pytest.mark.parametrize("configs", [["tiny.yaml"], [], ["paper.yaml"], ["studies/dart2020.yaml"],
                                     ["studies/dart2020.yaml", "studies/dart2020-scratch.yaml"],
                                     ["studies/gradient-transfer.yaml"]])
def test_the_plans_gpu_jobs_are_snakemakes(configs, tmp_path):
    """Each rule that trains or runs a network has as many jobs in the plan as in Snakemake's dry run."""
    shutil.copytree(ROOT / "config", tmp_path / "config")  # the Snakefile's configfile, relative to the workdir
    files = [str(tmp_path / "config" / name) for name in [*configs, "plan-only.yaml"]]
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
                             "--directory", str(tmp_path), "--cores", "1", "--configfile", *files],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_jobs(result.stdout)
    jobs = plan.Plan(load(*configs)).jobs()
    assert {rule: planned.get(rule, 0) for rule in jobs} == jobs


def runs_per_role(*configs) -> dict:
    runs = plan.Plan(load(*configs)).runs()
    return runs.groupby("role").size().to_dict()


def test_each_study_config_plans_the_runs_its_paper_implies():
    # DART 2020: 6 sources, 6 × 3 oracle folds, 30 pairs × 3 arms × 9 budgets, one seed (PROTOCOL: 834 a variant)
    assert runs_per_role("studies/dart2020.yaml") == {"source": 6, "oracle": 18, "finetune": 30 * 3 * 9}
    # its supplement: the vanilla U-Net beside the residual one, each without and with augmentation
    assert runs_per_role("studies/dart2020.yaml", "studies/dart2020-supplement.yaml") == {
        "source": 4 * 6, "oracle": 4 * 18, "finetune": 4 * 810}
    # its preliminary experiments: two scratch arms on the 30 pairs at 4 budgets
    assert runs_per_role("studies/dart2020.yaml", "studies/dart2020-scratch.yaml") == {
        "source": 6, "oracle": 18, "finetune": 30 * 3 * 9 + 2 * 30 * 4}
    # the gradient-transfer study: SGD and Adam, 3 seeds, 30 pairs × 6 arms × 4 budgets
    assert runs_per_role("studies/gradient-transfer.yaml") == {"source": 2 * 3 * 6, "oracle": 2 * 3 * 18,
                                                                "finetune": 2 * 3 * 30 * 6 * 4}
    # the FCN study's analogue: plain and frozen-random-encoder sources, 4 partial fine-tunes and random initialisation
    # × 3 budgets, 3 seeds (Table VII's seed pairs); snapshots of the 5 pairs from Siemens 1.5T
    assert runs_per_role("studies/fcn-transfer.yaml") == {"source": 2 * 3 * 6, "oracle": 2 * 3 * 18,
                                                           "finetune": 2 * 3 * 30 * 5 * 3}
    fcn = plan.Plan(load("studies/fcn-transfer.yaml"))
    assert len(fcn.snapshot_runs()) == 3 * 5 * 5 * 3 and fcn.model_similarity_arms == ["scratch_target", "ft_all"]
    assert fcn.snapshot_steps == [0, 100, 250, 500, 1000, 2000] and fcn.scan_roles["ge_3"].get("finetune_validation")
    # the gradient-transfer study's Fig. 1: snapshots of one pair, every arm and budget, its test set as published
    transfer = plan.Plan(load("studies/gradient-transfer.yaml"))
    assert len(transfer.snapshot_runs()) == 6 * 4 * 3 and "finetune_validation" not in transfer.scan_roles["ge_3"]
    # test-time: every source model adapted to every other domain by 5 methods; the normalizer's own source models
    assert runs_per_role("studies/test-time-bn.yaml") == {"source": 6, "source_normalized": 6, "oracle": 18,
                                                           "finetune": 30, "test_time": 30 * 5}
    # its sensitivity overlay: both KL methods under 2 optimizers x 2 learning rates x 2 iteration counts, every pair
    assert runs_per_role("studies/test-time-bn.yaml", "test-time-sensitivity.yaml") == {
        "source": 6, "source_normalized": 6, "oracle": 18, "finetune": 30, "test_time": 30 * (5 + 2 * 8)}
    sweep = plan.Plan(load("studies/test-time-bn.yaml", "test-time-sensitivity.yaml")).test_time_methods
    settings = [(m.name, m.hparams["optimizer"], m.hparams["lr"], m.hparams["iterations"]) for arm, m in sweep.items()
                if arm.startswith("kl_")]
    assert len(settings) == 16 and set(settings) == {
        (name, optimizer, lr, iterations) for name in ("bn_kl_affine", "bn_kl_normalizer")
        for optimizer in ("adam", "sgd") for lr in (1e-3, 5e-3) for iterations in (20, 50)}
    # depth and width: seven sizes (widths 0.5, 1, 2, 4, 5; 3 and 5 levels), each the whole study
    assert runs_per_role("studies/cnn3d-depth-width.yaml") == {"source": 7 * 6, "oracle": 7 * 18,
                                                                "finetune": 7 * 30 * 3 * 3}


def test_the_dart2020_bill_is_in_the_range_the_paper_implies():
    """~4 h per 100-epoch source run on a V100 (the paper); on the measured H100: 24 source-type runs plus 810
    fine-tunes of 20 epochs, and the scoring — about 15-25 GPU-hours."""
    throughput = json.loads((ROOT / "bench/measured/h100-2026-11-22.json").read_text())
    hours = plan.Plan(load("studies/dart2020.yaml")).gpu_hours(throughput)
    assert 15 < hours.gpu_hours.sum() < 25
    text = plan.bill(plan.Plan(load("studies/dart2020.yaml")), throughput, "defaults", "dart2020")
    assert "finetune           ft_first                    270" in text and "NVIDIA H100" in text


def test_the_disk_a_study_takes_counts_its_scans_models_and_snapshots(tmp_path):
    from mrishift.cost import PREPROCESSED_BYTES_AT_1MM, disk_gb
    from mrishift.models import networks
    from mrishift.training.runs import save_model

    dart = plan.Plan(plan.load_config([ROOT / "config/studies/dart2020.yaml"], ROOT / "config/config.yaml"))
    disk = disk_gb(dart).set_index("part")
    # 6 sources + 18 oracle folds + 3 arms x 30 pairs x 9 budgets; a source model also keeps its optimizer's momentum
    assert disk.files.tolist() == [359, 6 + 18 + 810, 0]
    save_model(tmp_path / "model.pt", networks.build("unet2d_residual", width=1.0), "unet2d_residual", 1.0)
    on_disk = (tmp_path / "model.pt").stat().st_size  # what a run's model file takes
    assert disk.loc["models", "gb"] == pytest.approx((834 + 6) * on_disk / 1e9, rel=0.01)
    assert disk.loc["preprocessed scans", "gb"] == pytest.approx(359 * PREPROCESSED_BYTES_AT_1MM / 1e9)
    fcn = plan.Plan(plan.load_config([ROOT / "config/studies/fcn-transfer.yaml"], ROOT / "config/config.yaml"))
    snapshots = disk_gb(fcn).set_index("part").loc["snapshots"]
    assert snapshots.files == 2 * 225 * 6  # 2 variants x the 225 runs of the 5 pairs from siemens_15 x 6 steps
