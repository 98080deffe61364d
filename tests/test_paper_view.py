"""The paper's own statistics (mrishift.analysis.paper_view, stats.winners' tested quantity and direction) and the
published numbers as data (mrishift.analysis.published): hand-made scores with known answers, and the transcribed
tables' shapes."""

import numpy as np
import pandas as pd
import pytest
from test_stats import scores_table

from mrishift.analysis import paper_view, published, stats

BOOTSTRAP = {"samples": 400, "seed": 0, "level": 0.95}


def test_the_paper_sign_test_is_on_per_scan_gap_closed_not_on_the_score():
    # 8 scans, A above B by 0.05 on each; the oracle sits below the baseline on 2 of them, so there A's per-scan gap
    # closed is *lower* than B's: the score test sees 8 of 8 for A, the gap-closed test 6 for A and 2 for B
    oracle = [0.9] * 6 + [0.45] * 2
    scores = scores_table({"ft_all": [0.75] * 8, "ft_first": [0.70] * 8}, baseline=[0.5] * 8, oracle=oracle)
    per_scan = stats.per_scan_gap_closed(scores)
    by_score = stats.winners(per_scan, ["ft_all", "ft_first"], 0.1, min_gap=None).iloc[0]
    by_gap = stats.winners(per_scan, ["ft_all", "ft_first"], 0.1, min_gap=None, tested="gap_closed").iloc[0]
    assert by_score.winner == by_gap.winner == "ft_all"
    assert by_score.p_value == pytest.approx(2 / 256) and by_score.significant
    assert (by_gap.scans_for_winner, by_gap.scans_for_runner_up) == (6, 2)
    assert by_gap.p_value == pytest.approx(2 * (1 + 8 + 28) / 256) and not by_gap.significant


def test_a_winner_whose_scans_mostly_favour_the_runner_up_is_never_significant():
    # A ahead by its mean (one scan by 0.4) while B is ahead on the other 9 scans: p = 22/1024 < 0.1, but against A
    a = [0.9] + [0.60] * 9
    b = [0.5] + [0.61] * 9
    scores = scores_table({"ft_all": a, "ft_first": b}, baseline=[0.4] * 10, oracle=[0.95] * 10)
    for tested in ("score", "gap_closed"):
        row = stats.winners(stats.per_scan_gap_closed(scores), ["ft_all", "ft_first"], 0.1, tested=tested).iloc[0]
        assert row.winner == "ft_all" and row.p_value == pytest.approx(22 / 1024)
        assert (row.scans_for_winner, row.scans_for_runner_up) == (1, 9) and not row.significant
    compared = stats.compare_arms(stats.per_scan_gap_closed(scores), "ft_all", "ft_first", 0.1).iloc[0]
    assert compared.better == "ft_all" and not compared.significant


def test_a_small_gap_pair_stays_in_the_paper_means_and_is_flagged():
    big = scores_table({"ft_all": [0.7] * 5}, baseline=[0.5] * 5, oracle=[0.9] * 5, source="s")
    small = scores_table({"ft_all": [0.81] * 5}, baseline=[0.80] * 5, oracle=[0.82] * 5, source="u")
    small["target"] = "v"
    small.loc[small.role == "oracle", "source"] = "v"
    small["case"] = small.case.str.replace("CC03", "CC04")
    per_scan = stats.per_scan_gap_closed(pd.concat([big, small]))
    ours = stats.per_pair_gap_closed(per_scan, min_gap=0.05)
    assert ours.gap_closed.notna().sum() == 1  # our view: the 0.02 gap has nothing to close
    pairs = paper_view.per_pair(per_scan, ["ft_all"], "sdice", 0.05)
    assert sorted(pairs.gap_closed) == pytest.approx([0.5, 0.5])  # (0.81 − 0.80) / 0.02 and (0.7 − 0.5) / 0.4
    assert pairs.set_index("source").small_gap.to_dict() == {"s": False, "u": True}
    numbers, table, _, words = paper_view.gap_closed_table(pairs, ["ft_all"], BOOTSTRAP)
    assert numbers.loc["ft_all", "1scan"] == pytest.approx(0.5) and "std over pairs (one seed)" in words


def test_a_negative_gap_keeps_the_papers_ratio():
    assert stats.gap_closed(0.85, 0.80, 0.75, min_gap=None) == pytest.approx(-1.0)
    assert np.isnan(stats.gap_closed(0.85, 0.80, 0.80, min_gap=None))  # no gap at all: still undefined


def test_the_crossed_bootstrap_resamples_domains_not_pairs():
    # every pair from source "a" scores 0, from "b" 1: resampling the two sources gives means 0, ½ or 1, so the 95 %
    # interval is [0, 1]; resampling the 10 pairs as if independent would give a narrow interval around ½
    values = pd.DataFrame([{"seed": "0", "source": s, "target": f"t{t}", "value": float(s == "b")}
                           for s in "ab" for t in range(5)])
    assert paper_view.crossed_interval(values, 2000, 0, 0.95, "x") == (0.0, 1.0)
    constant = values.assign(value=0.3)
    assert paper_view.crossed_interval(constant, 200, 0, 0.95, "x") == pytest.approx((0.3, 0.3))


def test_winner_counts_sum_to_the_pairs_at_every_budget():
    winners = pd.DataFrame({"budget": ["1scan"] * 3 + ["every12"] * 3, "winner": ["ft_all", "ft_first", "ft_first",
                                                                                 "ft_last", "ft_first", "ft_first"],
                            "significant": [True, False, True, False, False, True]})
    counts = paper_view.winner_counts(winners, ["ft_all", "ft_first", "ft_last"])
    assert counts.groupby("budget").wins.sum().to_dict() == {"1scan": 3, "every12": 3}
    assert counts.set_index(["budget", "winner"]).loc[("every12", "ft_all")].tolist() == [0, 0]
    assert counts.set_index(["budget", "winner"]).loc[("1scan", "ft_first")].tolist() == [2, 1]


def test_published_tables_match_their_sources_rows_and_columns():
    table1 = published.load("dart2020_table1")
    assert table1.shape[0] == 36 and table1.target.nunique() == table1.source.nunique() == 6
    assert table1.set_index(["target", "source"]).loc[("ge_15", "siemens_3"), "value"] == pytest.approx(0.09)
    assert (table1[table1.source == table1.target].value.tolist()
            == pytest.approx([0.85, 0.88, 0.87, 0.89, 0.89, 0.86]))  # the oracle diagonal, abstract: 0.85–0.89
    table2 = published.load("mmtl_table2")
    printed = table2[table2["where"] == "Table 2"]
    assert len(printed) == 8 * 6 and printed.groupby(["optimizer", "slices"]).size().eq(6).all()
    assert set(printed.arm) == set(published.PAPERS["gradient_transfer"].arms.values())
    cell = printed.set_index(["optimizer", "slices", "arm"])
    assert cell.loc[("sgd", "90", "MMTL")].tolist()[:2] == [78.46, 0.72]
    assert cell.loc[("adam", "1080", "OCTL")].tolist()[:2] == [90.76, 0.39]
    text = table2[table2["where"] != "Table 2"].set_index(["optimizer", "arm"]).value.to_dict()
    assert text == {("sgd", "no fine-tuning"): 54.63, ("sgd", "all target data"): 84.61,
                    ("adam", "no fine-tuning"): 51.94, ("adam", "all target data"): 94.22}
    table3 = published.load("mmtl_table3")
    assert len(table3) == 4 * 5 + 1 and table3.slices.nunique() == 4  # the source model printed once, on row 90
    for name, spec in published.TABLES.items():
        assert published.PAPERS[spec.paper].tables.count(name) == 1
    # the other data sets' tables: the printed rows × columns, each cell once, a std wherever the paper prints one
    for name, spec in published.TABLES.items():
        if spec.paper in ("fcn_transfer", "cnn3d_depth_width"):
            cells = published.load(name)
            rows, columns = spec.shape
            assert (cells.row.nunique(), cells.column.nunique()) == spec.shape and len(cells) == rows * columns
            assert not cells.duplicated(["row", "column"]).any() and cells.value.notna().all()
            assert cells["std"].notna().all() == (name not in ("fcn_table6", "fcn_table8"))
    table, _ = paper_view.paper_vs_ours("cnn3d_depth_width", pd.DataFrame(), {}, [], 0.1, {}, synthetic=True)
    assert table["where"].tolist() == ["", "Table 1", "Table 2"] and table.paper[1].startswith("60 cells as printed")
    rsim = published.load("fcn_table7").set_index(["row", "column"]).value
    assert rsim[("RSIM(R.I., T.L.)", "decoder-2")] == pytest.approx(0.636)
    assert published.load("fcn_table2").set_index(["row", "column"]).loc[("ntrain = 15 / T.L.", "HD95 (mm)")].tolist() \
        == pytest.approx([4.75, 1.81])


def test_each_papers_budgets_are_budgets_the_workflow_knows():
    from mrishift.data.splits import parse_budget

    for paper in published.PAPERS.values():
        for budget in paper.budgets.values():
            parse_budget(budget)  # raises on a budget the workflow cannot run
    assert published.PAPERS["gradient_transfer"].budgets == {"90": "every3", "270": "1scan", "540": "2scans",
                                                             "1080": "4scans"}
