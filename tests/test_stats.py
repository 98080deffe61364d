"""Gap closed, sign test and winners: hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from mrishift.analysis import stats
from mrishift.analysis.stats import mean_std
from mrishift.data.splits import budget_order
from mrishift.reporting.tables import gap_closed_table


def test_gap_closed_arithmetic_and_zero_gap():
    result = stats.gap_closed([0.7, 0.9, 0.5, 0.6], [0.5, 0.5, 0.5, 0.6], [0.9, 0.9, 0.5, 0.6 + 1e-12])
    assert result[0] == pytest.approx(0.5) and result[1] == pytest.approx(1.0)
    assert math.isnan(result[2]) and math.isnan(result[3])  # no gap: undefined, not a division by ~zero
    assert stats.gap_closed(0.3, 0.5, 0.9) == pytest.approx(-0.5)  # worse than no adaptation is negative


def test_gap_closed_needs_a_minimum_gap():
    # a 0.002 gap would turn a 0.01 difference into 5.0; with min_gap 0.05 it is undefined instead
    assert stats.gap_closed(0.81, 0.80, 0.802) == pytest.approx(5.0)
    assert math.isnan(stats.gap_closed(0.81, 0.80, 0.802, min_gap=0.05))
    assert stats.gap_closed(0.85, 0.80, 0.90, min_gap=0.05) == pytest.approx(0.5)
    # an oracle below the baseline: dividing by the negative gap would rank the worst strategy first
    assert math.isnan(stats.gap_closed(0.85, 0.80, 0.75, min_gap=0.05))
    assert math.isnan(stats.gap_closed(0.85, 0.80, 0.75))


def test_sign_test_known_values():
    # 5 of 6 positive: P(X >= 5) = 7/64 under Binomial(6, 1/2), two-sided doubles it
    assert stats.sign_test([0.1, 0.2, 0.3, 0.1, 0.05, -0.2]) == pytest.approx(14 / 64)
    assert stats.sign_test([1, 1, 1, 1, 1]) == pytest.approx(2 / 32)
    assert stats.sign_test([1, 1, 1, 1, 1, 0, 0]) == pytest.approx(2 / 32)  # ties are dropped
    assert stats.sign_test([0, 0, 0]) == 1.0 and stats.sign_test([]) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        stats.sign_test([1.0, float("nan")])


def scores_table(finetuned: dict[str, list[float]], baseline=(0.5,) * 5, oracle=(0.9,) * 5, budget="1scan",
                 seed="0", source="s"):
    cases = [f"CC03{i:02d}" for i in range(len(baseline))]
    common = dict(variant="a", target="t", seed=seed)
    rows = [dict(common, role="oracle", strategy="none", source="t", budget=None, case=c, sdice=o)
            for c, o in zip(cases, oracle)]
    rows += [dict(common, role="baseline", strategy="none", source=source, budget=None, case=c, sdice=b)
             for c, b in zip(cases, baseline)]
    rows += [dict(common, role="finetune", strategy=k, source=source, budget=budget, case=c, sdice=v)
             for k, values in finetuned.items() for c, v in zip(cases, values)]
    return pd.DataFrame(rows)


def test_per_pair_gap_closed_uses_pair_means():
    scores = scores_table({"ft_all": [0.7, 0.7, 0.7, 0.7, 0.9]}, baseline=[0.5] * 5, oracle=[0.9] * 5)
    per_scan = stats.per_scan_gap_closed(scores)
    assert per_scan.gap_closed.tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5, 1.0])
    per_pair = stats.per_pair_gap_closed(per_scan)
    assert per_pair.gap_closed.iloc[0] == pytest.approx((0.74 - 0.5) / 0.4)


def test_winner_and_significance():
    scores = scores_table({"ft_all": [0.6] * 5, "ft_first": [0.8] * 5, "ft_last": [0.7] * 5})
    row = stats.winners(stats.per_scan_gap_closed(scores), ["ft_all", "ft_first", "ft_last"], 0.1).iloc[0]
    assert (row.winner, row.runner_up) == ("ft_first", "ft_last")
    assert row.winner_gap_closed == pytest.approx(0.75) and row.runner_up_gap_closed == pytest.approx(0.5)
    assert row.p_value == pytest.approx(2 / 32) and row.significant and not row.tied


def test_winner_tie_goes_to_the_first_listed_strategy_and_is_not_significant():
    scores = scores_table({"ft_last": [0.7] * 5, "ft_first": [0.7] * 5, "ft_all": [0.6] * 5})
    row = stats.winners(stats.per_scan_gap_closed(scores), ["ft_first", "ft_last", "ft_all"], 0.1).iloc[0]
    assert row.winner == "ft_first" and row.runner_up == "ft_last" and row.tied
    assert row.p_value == 1.0 and not row.significant


def test_winner_without_a_gap_ranks_by_score():
    scores = scores_table({"ft_all": [0.4] * 5, "ft_first": [0.6] * 5}, baseline=[0.5] * 5, oracle=[0.5] * 5)
    per_scan = stats.per_scan_gap_closed(scores)
    assert per_scan.gap_closed.isna().all()
    row = stats.winners(per_scan, ["ft_all", "ft_first"], 0.1).iloc[0]
    assert row.winner == "ft_first" and math.isnan(row.winner_gap_closed) and row.p_value == pytest.approx(2 / 32)


def test_not_significant_at_a_strict_level():
    scores = scores_table({"ft_all": [0.6] * 5, "ft_first": [0.8] * 5})
    row = stats.winners(stats.per_scan_gap_closed(scores), ["ft_all", "ft_first"], 0.05).iloc[0]
    assert row.p_value == pytest.approx(0.0625) and not row.significant


def test_missing_reference_scores_are_an_error():
    scores = scores_table({"ft_all": [0.6] * 5})
    scores = scores[~((scores.role == "baseline") & (scores.case == "CC0300"))]
    with pytest.raises(ValueError, match="no baseline/oracle score"):
        stats.per_scan_gap_closed(scores)


def test_sdice_matrix_layout():
    scores = scores_table({})
    mean, std = stats.sdice_matrix(scores)
    assert list(mean.index) == ["t", "s"] and list(mean.columns) == ["t", "s"]
    assert mean.loc["t", "t"] == pytest.approx(0.9) and mean.loc["t", "s"] == pytest.approx(0.5)
    assert np.isnan(mean.loc["s", "t"])  # no model of t was tested on s in this table


def test_budget_order_and_cells():
    assert budget_order(["3scans", "every12", "1scan", "every2", "2scans"]) == ["every12", "every2", "1scan", "2scans",
                                                                                "3scans"]
    assert budget_order(["1scan", "0", "every12"]) == ["0", "every12", "1scan"]  # test-time (no label) first
    cells = mean_std(pd.DataFrame([[0.8512, np.nan]]), pd.DataFrame([[0.031, np.nan]]))
    assert cells.iloc[0].tolist() == ["0.85 (0.03)", ""]


def test_oracle_below_baseline_ranks_by_score_not_by_a_flipped_ratio():
    # oracle 0.5 < baseline 0.6: as a ratio, ft_all (0.4 → +2.0) would beat ft_first (0.7 → −1.0)
    scores = scores_table({"ft_all": [0.4] * 5, "ft_first": [0.7] * 5}, baseline=[0.6] * 5, oracle=[0.5] * 5)
    per_scan = stats.per_scan_gap_closed(scores, min_gap=0.05)
    assert per_scan.gap_closed.isna().all()
    row = stats.winners(per_scan, ["ft_all", "ft_first"], 0.1, min_gap=0.05).iloc[0]
    assert row.winner == "ft_first" and row.runner_up == "ft_all"


def test_each_seed_is_compared_with_its_own_baseline_and_oracle():
    seed0 = scores_table({"ft_all": [0.7] * 5}, baseline=[0.5] * 5, oracle=[0.9] * 5, seed="0")
    seed1 = scores_table({"ft_all": [0.7] * 5}, baseline=[0.3] * 5, oracle=[0.7] * 5, seed="1")
    per_pair = stats.per_pair_gap_closed(stats.per_scan_gap_closed(pd.concat([seed0, seed1])))
    assert per_pair.set_index("seed").gap_closed.to_dict() == {"0": pytest.approx(0.5), "1": pytest.approx(1.0)}
    mean, table = gap_closed_table(per_pair, ["ft_all"])  # several seeds: mean (std) over seeds of the pair means
    assert mean.loc["ft_all", "1scan"] == pytest.approx(0.75)
    assert table.loc["ft_all", "1scan"] == f"0.75 ({np.std([0.5, 1.0], ddof=1):.2f})"


def test_batchnorm_arm_pairs_match_class_and_every_other_setting():
    arms = {
        "ft_first": {"class": "ft_first", "hparams": {"frozen_bn": "train", "lr": None, "layers": "first"}},
        "ft_first_bn_eval": {"class": "ft_first", "hparams": {"frozen_bn": "eval", "lr": None, "layers": "first"}},
        "ft_last_fast_eval": {"class": "ft_last", "hparams": {"frozen_bn": "eval", "lr": 0.1, "layers": "last"}},
        "ft_last": {"class": "ft_last", "hparams": {"frozen_bn": "train", "lr": None, "layers": "last"}},
        "bn_stats": {"class": "bn_stats", "hparams": {"frozen_bn": "train", "lr": None}},
    }
    assert stats.batchnorm_arm_pairs(arms) == [("ft_first", "ft_first_bn_eval")]  # ft_last's lr differs


def test_compare_arms_counts_and_sign_test():
    scores = scores_table({"ft_first": [0.8, 0.8, 0.8, 0.8, 0.6], "ft_first_bn_eval": [0.7] * 5})
    row = stats.compare_arms(stats.per_scan_gap_closed(scores), "ft_first", "ft_first_bn_eval", 0.5).iloc[0]
    assert row.better == "ft_first" and row.mean_sdice_difference == pytest.approx(0.06)
    assert row.p_value == pytest.approx(12 / 32)  # 4 of 5 positive: 2 · P(X ≥ 4 | n=5) = 2 · 6/32
    assert row.significant  # at 0.5
    assert row.gap_closed_a == pytest.approx((0.76 - 0.5) / 0.4) and row.gap_closed_b == pytest.approx(0.5)


def test_compare_arms_only_at_budgets_both_arms_ran():
    """An arm run on fewer budgets (strategies.<arm>.budgets) is compared where both ran; a pair missing one arm at
    such a budget is still an error, never a silently smaller comparison."""
    both = scores_table({"ft_first": [0.8] * 5, "ft_first_bn_eval": [0.7] * 5}, budget="every12")
    only_a = scores_table({"ft_first": [0.6] * 5}, budget="3scans")
    per_scan = stats.per_scan_gap_closed(pd.concat([both, only_a[only_a.role == "finetune"]], ignore_index=True))
    rows = stats.compare_arms(per_scan, "ft_first", "ft_first_bn_eval", 0.1)
    assert rows.budget.tolist() == ["every12"] and rows.gap_closed_a.tolist() == pytest.approx([0.75])
    other_pair = scores_table({"ft_first": [0.8] * 5}, budget="every12", source="u")
    with pytest.raises(ValueError, match="u→t every12: arms ft_first and ft_first_bn_eval are not both scored"):
        stats.compare_arms(stats.per_scan_gap_closed(pd.concat([both, other_pair[other_pair.role != "oracle"]],
                                                               ignore_index=True)),
                           "ft_first", "ft_first_bn_eval", 0.1)


def test_compare_arms_on_the_pairs_both_arms_ran():
    """An arm run on some pairs only (strategies.<arm>.sources/targets) is compared on the pairs both ran; a pair
    both were run on that misses one of them still raises."""
    both = scores_table({"ft_first": [0.8] * 5, "ft_first_bn_eval": [0.7] * 5}, budget="every12")
    other_pair = scores_table({"ft_first": [0.6] * 5}, budget="every12", source="u")
    per_scan = stats.per_scan_gap_closed(pd.concat([both, other_pair[other_pair.role != "oracle"]], ignore_index=True))
    rows = stats.compare_arms(per_scan, "ft_first", "ft_first_bn_eval", 0.1, pairs={("s", "t")})
    assert list(zip(rows.source, rows.target)) == [("s", "t")] and rows.gap_closed_a.tolist() == pytest.approx([0.75])
    with pytest.raises(ValueError, match="u→t every12: arms ft_first and ft_first_bn_eval are not both scored"):
        stats.compare_arms(per_scan, "ft_first", "ft_first_bn_eval", 0.1, pairs={("s", "t"), ("u", "t")})


def test_test_time_rows_get_a_gap_closed_and_a_winner_only_among_arms_that_ran():
    """Budget 0 (test-time) rows are adapted rows like fine-tuned ones; a (pair, budget) where one arm ran has no
    winner, instead of an error."""
    rows = [dict(role="baseline", strategy="none", source="s", target="t", budget="", seed="0", case=c, sdice=0.5)
            for c in "abc"]
    rows += [dict(role="oracle", strategy="none", source="t", target="t", budget="", seed="0", case=c, sdice=0.9)
             for c in "abc"]
    rows += [dict(role="test_time", strategy=arm, source="s", target="t", budget="0", seed="0", case=c, sdice=v)
             for arm, v in [("adabn", 0.7), ("tent", 0.6)] for c in "abc"]
    rows += [dict(role="finetune", strategy="ft_all", source="s", target="t", budget="1scan", seed="0", case=c,
                  sdice=0.8) for c in "abc"]
    per_scan = stats.per_scan_gap_closed(pd.DataFrame(rows).assign(variant="v"))
    per_pair = stats.per_pair_gap_closed(per_scan).set_index(["strategy", "budget"]).gap_closed
    assert per_pair[("adabn", "0")] == pytest.approx(0.5) and per_pair[("tent", "0")] == pytest.approx(0.25)
    winners = stats.winners(per_scan, ["ft_all", "adabn", "tent"], 0.1)
    assert winners[["budget", "winner", "runner_up"]].values.tolist() == [["0", "adabn", "tent"]]


def forgetting_scores():
    """Source models of siemens_15 (two held-out scans: 0.9, 0.8) and ge_3 (one: 0.7), seed 0; fine-tunes from them
    scored on the same scans."""
    rows = [("source", "none", "siemens_15", "siemens_15", "", "A", 0.9), ("source", "none", "siemens_15", "siemens_15",
            "", "B", 0.8), ("source", "none", "ge_3", "ge_3", "", "C", 0.7),
            ("forgetting", "ft_all", "siemens_15", "ge_3", "every12", "A", 0.6),
            ("forgetting", "ft_all", "siemens_15", "ge_3", "every12", "B", 0.5),
            ("forgetting", "ft_all", "ge_3", "siemens_15", "every12", "C", 0.6),
            ("forgetting", "ft_first", "siemens_15", "ge_3", "every12", "A", 0.9),
            ("forgetting", "ft_first", "siemens_15", "ge_3", "every12", "B", 0.7),
            ("forgetting", "ft_first", "ge_3", "siemens_15", "every12", "C", 0.7),
            ("finetune", "ft_all", "siemens_15", "ge_3", "every12", "C", 0.1)]  # a target-domain row: not forgetting
    return pd.DataFrame([{"variant": "v", "role": role, "strategy": arm, "source": source, "target": target,
                          "budget": budget, "seed": "0", "fold": "", "case": case, "sdice": value}
                         for role, arm, source, target, budget, case, value in rows])


def test_forgetting_compares_each_fine_tune_with_its_source_model_on_the_same_held_out_scans():
    per_pair = stats.forgetting_per_pair(forgetting_scores()).set_index(["strategy", "source"])
    assert per_pair.loc[("ft_all", "siemens_15"), ["before", "after", "n_scans"]].tolist() == pytest.approx(
        [0.85, 0.55, 2])
    assert per_pair.loc[("ft_all", "ge_3"), "change"] == pytest.approx(-0.1)
    assert per_pair.loc[("ft_first", "siemens_15"), "change"] == pytest.approx(-0.05)
    assert per_pair.loc[("ft_first", "ge_3"), "change"] == pytest.approx(0.0)
    assert len(per_pair) == 4


def test_forgetting_refuses_a_fine_tune_without_its_source_model_on_the_same_scans():
    scores = forgetting_scores()
    with pytest.raises(ValueError, match="without their source model on the same scans"):
        stats.forgetting_per_pair(scores[(scores.role != "source") | (scores.source != "ge_3")])
    with pytest.raises(ValueError, match="without their source model on the same scans"):
        stats.forgetting_per_pair(scores[(scores.role != "source") | (scores.case != "B")])


def test_forgetting_table_gives_before_arrow_after_and_the_spread_of_the_change():
    from mrishift.reporting.tables import SOURCE_MODEL_ROW, forgetting_table

    numbers, text = forgetting_table(stats.forgetting_per_pair(forgetting_scores()), ["ft_all", "ft_first"])
    # before: the two pairs' source models, 0.85 and 0.7; ft_all after 0.55 and 0.6, changes −0.3 and −0.1
    assert text.loc[SOURCE_MODEL_ROW, "every12"] == "0.78 (0.11)"
    assert text.loc["ft_all", "every12"] == "0.78 → 0.57 (0.14)"
    assert text.loc["ft_first", "every12"] == "0.78 → 0.75 (0.04)"
    assert numbers.loc["ft_all", "every12"] == pytest.approx(0.575)
    assert numbers.loc[SOURCE_MODEL_ROW, "every12"] == pytest.approx(0.775)


def test_gap_closed_by_size_averages_each_variants_pairs_and_keeps_its_size():
    per_pair = pd.DataFrame({"variant": ["v", "v", "v", "v_w2", "v_w2"], "strategy": ["ft_all"] * 5,
                             "budget": ["every12"] * 5, "gap_closed": [0.2, 0.4, float("nan"), 0.9, 0.7],
                             "source": ["a", "b", "c", "a", "b"], "target": ["x"] * 5})
    sizes = {"v": {"family": "v", "width": 1.0, "levels": 4, "on_width_axis": True, "on_levels_axis": True},
             "v_w2": {"family": "v", "width": 2.0, "levels": 4, "on_width_axis": True, "on_levels_axis": False}}
    table = stats.gap_closed_by_size(per_pair, sizes).set_index("variant")
    assert table.loc["v", "gap_closed"] == pytest.approx(0.3) and table.loc["v", "n_pairs"] == 2  # NaN: no gap
    assert table.loc["v_w2", "gap_closed"] == pytest.approx(0.8) and table.loc["v_w2", "width"] == 2.0
    assert not table.loc["v_w2", "on_levels_axis"]
    from mrishift.reporting import plots

    figure = plots.size_effects_figure(table.reset_index(), ["ft_all"], "sizes")
    width_axis, levels_axis = figure.axes[:2]
    assert list(width_axis.lines[0].get_xdata()) == [1.0, 2.0]  # both variants are at the architecture's levels
    assert list(levels_axis.lines[0].get_xdata()) == [4]  # only v is at the study's width
