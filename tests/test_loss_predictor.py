"""The test-time loss as a predictor (mrishift.analysis.loss_predictor): the join to the unadapted score, Spearman's
rho with its interval, per arm and per target, on hand-made tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from mrishift.analysis import loss_predictor


def tables(n=6):
    """Two pairs into two targets; the loss rises as the unadapted score falls (a perfect rank correlation of -1)."""
    rows, baseline = [], []
    for i in range(n):
        source, target = ("siemens_15", "ge_3") if i % 2 else ("siemens_15", "philips_3")
        case = f"CC{i:04d}"
        rows.append({"variant": "v", "role": "test_time", "strategy": "tent", "source": source, "target": target,
                     "budget": "0", "seed": "0", "fold": "", "case": case, "dice": 0.9,
                     "loss_before": 0.1 * (i + 1), "loss_after": 0.05 * (i + 1)})
        baseline.append({"variant": "v", "role": "baseline", "strategy": "none", "source": source, "target": target,
                         "budget": "", "seed": "0", "fold": "", "case": case, "dice": 0.9 - 0.1 * i})
    adabn = [{**row, "strategy": "adabn", "loss_before": np.nan, "loss_after": np.nan} for row in rows]
    return pd.DataFrame(rows + adabn), pd.DataFrame(baseline)


def test_each_adapted_scan_gets_its_unadapted_score_and_arms_without_a_loss_are_left_out():
    adapted, scores = tables()
    rows = loss_predictor.loss_and_unadapted_score(adapted, scores, "dice")
    assert list(rows.strategy.unique()) == ["tent"] and len(rows) == 6
    assert rows.set_index("case").unadapted.to_dict() == pytest.approx({f"CC{i:04d}": 0.9 - 0.1 * i for i in range(6)})


def test_a_scan_without_its_baseline_row_is_an_error_naming_it():
    adapted, scores = tables()
    with pytest.raises(ValueError, match="CC0003"):
        loss_predictor.loss_and_unadapted_score(adapted, scores[scores.case != "CC0003"], "dice")


def test_a_perfectly_decreasing_relation_has_rho_minus_one_per_arm_and_per_target():
    adapted, scores = tables()
    rows = loss_predictor.loss_and_unadapted_score(adapted, scores, "dice")
    found = loss_predictor.correlations(rows, samples=200, seed=0, level=0.95).set_index("target")
    assert list(found.index) == ["all", "ge_3", "philips_3"]
    assert found.n.tolist() == [6, 3, 3] and found.pairs.tolist() == [2, 1, 1]
    assert found.rho.tolist() == pytest.approx([-1.0, -1.0, -1.0])
    assert (found.low.iloc[0], found.high.iloc[0]) == pytest.approx((-1.0, -1.0))
    assert found.mean_loss_before.iloc[0] == pytest.approx(0.35) and found.mean_loss_after.iloc[0] == pytest.approx(0.175)


def test_spearman_interval_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(3)
    loss = rng.random(40)
    score = -loss + 0.5 * rng.random(40)
    first = loss_predictor.spearman_interval(loss, score, 500, seed=1, level=0.9, name="a")
    assert first == loss_predictor.spearman_interval(loss, score, 500, seed=1, level=0.9, name="a")
    assert first["low"] < first["rho"] < first["high"] < 0
    assert loss_predictor.spearman_interval(loss[:2], score[:2], 500, 1, 0.9)["n"] == 2
