"""The GPU-hour estimate of bench/plan_paper.py on a small study whose arithmetic is done by hand."""

import sys
from pathlib import Path

import pytest
import yaml

from mrishift.config import validate_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import plan_paper  # noqa: E402  (a script in bench/, not a package)


def test_gpu_hours_count_every_step_and_predicted_slice():
    config = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    config["data"]["domains"] = ["siemens_15", "ge_15"]
    config["splits"].update(n_validation=1, n_folds=2, budgets=["1scan"])
    config["training"].update(source={"epochs": 2, "iters_per_epoch": 5, "batch_size": 4},
                              finetune={"epochs": 1, "iters_per_epoch": 10, "batch_size": 4}, validate_every=1)
    config["strategies"] = {"ft_all": {}, "bn_stats": {}}
    config["test_time"] = {"adabn": {}, "tent": {"sources": ["ge_15"]}, "bn_kl_affine": {"iterations": 3}}
    config = validate_config(config)
    throughput = {"training": {"source": {"defaults": 10.0}, "ft_first": {"defaults": 20.0},
                               "ft_last": {"defaults": 40.0}},
                  "inference": {"fp32+channels_last": 100.0, "bf16+channels_last": 200.0}}
    seconds = {what: hours * 3600 for what, _, _, hours in plan_paper.gpu_hours(config, throughput, "defaults")}
    # a source run: 2 × 5 × 4 = 40 slices at 10/s, validation 1 scan × 270 slices × 2 epochs at 100/s
    assert seconds["train_source"] == pytest.approx(2 * (40 / 10 + 540 / 100))  # 2 domains
    assert seconds["train_oracle"] == pytest.approx(4 * (40 / 10 + 540 / 100))  # 2 domains × 2 folds
    assert seconds["finetune ft_all"] == pytest.approx(2 * 40 / 10)  # 2 pairs × 1 budget, 40 slices each
    assert seconds["finetune bn_stats"] == pytest.approx(2 * 270 / 100)  # one forward pass over the 1-scan budget
    test_scans = 60 - 1
    assert seconds["score_oracle"] == pytest.approx(4 * 30 * 270 / 100)  # each fold's model on its 30 scans
    assert seconds["score_baseline"] == pytest.approx(2 * test_scans * 270 / 100)
    assert seconds["score_finetune"] == pytest.approx(2 * 2 * test_scans * 270 / 100)  # 2 arms × 2 runs
    # test-time, per volume of the 59 test scans of each pair: adabn 2 forward passes; tent (from ge_15 only) one
    # training step, the statistics pass and the prediction; bn_kl_affine 3 steps, the last iterate's loss, prediction
    assert seconds["adapt_score adabn"] == pytest.approx(2 * test_scans * 270 * 2 / 100)
    assert seconds["adapt_score tent"] == pytest.approx(test_scans * 270 * (1 / 10 + 2 / 100))
    assert seconds["adapt_score bn_kl_affine"] == pytest.approx(2 * test_scans * 270 * (3 / 10 + 2 / 100))
