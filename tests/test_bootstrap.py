"""Bootstrap intervals: degenerate cases are points, a normal sample gets the textbook width, the hierarchy widens."""

import numpy as np
import pandas as pd
import pytest

from mrishift.analysis import bootstrap, stats
from mrishift.analysis.stats import mean_std
from mrishift.reporting.tables import gap_closed_table


def test_the_interval_of_a_constant_is_a_point():
    assert bootstrap.mean_interval(np.full(12, 0.7), 500, seed=0) == pytest.approx((0.7, 0.7))
    pair = np.tile([0.8, 0.6, 1.0], (5, 1))  # score, baseline, oracle: gap closed 0.5 on every resample
    assert bootstrap.gap_closed_interval([pair, pair, pair], 500, seed=0) == pytest.approx((0.5, 0.5))


def test_a_normal_sample_gets_the_textbook_width_around_its_mean():
    values = np.random.default_rng(3).normal(10.0, 2.0, size=400)
    low, high = bootstrap.mean_interval(values, 4000, seed=1, level=0.95)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)  # ≈ 0.196
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert (values.mean() - low) == pytest.approx(high - values.mean(), rel=0.2)  # symmetric for a normal mean


def test_intervals_repeat_with_their_seed_and_depend_on_it():
    values = np.random.default_rng(0).random(30)
    assert bootstrap.mean_interval(values, 1000, seed=5, name="a") == bootstrap.mean_interval(values, 1000, seed=5,
                                                                                              name="a")
    assert bootstrap.mean_interval(values, 1000, seed=5, name="a") != bootstrap.mean_interval(values, 1000, seed=6,
                                                                                              name="a")


def test_noisy_scans_inside_pairs_widen_the_gap_closed_interval():
    """The same per-pair gap closed (0.2 … 0.8) in two studies; in the second each pair's 4 test scans scatter around
    it. Pair resampling alone gives the first its width; the hierarchy widens the second's by the scans' own
    resampling variance: half-width 1.96·√((between-pair variance + mean within-pair variance of a resampled mean)
    / pairs), plug-in variances."""
    rng = np.random.default_rng(0)
    centres = np.linspace(0.2, 0.8, 8)
    noises = [rng.normal(0, 0.5, 4) for _ in centres]
    noises = [noise - noise.mean() for noise in noises]  # each pair's mean gap closed stays exactly its centre

    def pairs(noisy):  # score, baseline, oracle per scan: gap closed = centre + noise
        return [np.column_stack([0.5 + 0.4 * (centre + noise * noisy), np.full(4, 0.5), np.full(4, 0.9)])
                for centre, noise in zip(centres, noises)]

    quiet, noisy = (bootstrap.gap_closed_interval(pairs(noisy), 4000, seed=0) for noisy in (False, True))
    assert quiet[0] < centres.mean() < quiet[1] and noisy[0] < centres.mean() < noisy[1]
    between = np.var(centres)
    within = np.mean([np.var(noise) / len(noise) for noise in noises])
    assert (quiet[1] - quiet[0]) / 2 == pytest.approx(1.96 * np.sqrt(between / len(centres)), rel=0.1)
    assert (noisy[1] - noisy[0]) / 2 == pytest.approx(1.96 * np.sqrt((between + within) / len(centres)), rel=0.1)
    assert noisy[1] - noisy[0] > 1.15 * (quiet[1] - quiet[0])


def test_gap_closed_intervals_use_the_defined_pairs_and_average_seeds():
    rows = []
    for (source, target), oracle in {("a", "b"): 0.9, ("a", "c"): 0.9, ("b", "c"): 0.51}.items():  # b→c: no gap
        for seed in ("0", "1"):
            for case, score in zip(("s1", "s2", "s3"), (0.6, 0.7, 0.8)):
                rows.append({"variant": "v", "strategy": "ft_all", "budget": "1scan", "source": source,
                             "target": target, "seed": seed, "case": f"{target}_{case}", "sdice": score,
                             "baseline": 0.5, "oracle": oracle})
    per_scan = pd.DataFrame(rows)
    per_pair = stats.per_pair_gap_closed(per_scan, min_gap=0.05)
    intervals = bootstrap.gap_closed_intervals(per_scan, per_pair, 1000, seed=0, level=0.95, min_gap=0.05)
    row = intervals.iloc[0]
    assert len(intervals) == 1 and row.n_pairs == 2  # b→c's 0.01 gap is undefined, left out
    # both pairs: scans at gap closed 0.25, 0.5, 0.75; the interval of their mean lies inside [0.25, 0.75]
    assert 0.25 <= row.low < 0.5 < row.high <= 0.75


def test_sdice_matrix_intervals_bracket_each_cell():
    scores = pd.DataFrame(
        [{"role": "oracle", "source": "a", "target": "a", "case": f"a{i}", "seed": "0", "sdice": 0.9 + 0.01 * i}
         for i in range(5)]
        + [{"role": "baseline", "source": "a", "target": "b", "case": f"b{i}", "seed": "0", "sdice": 0.5}
           for i in range(5)]
        + [{"role": "oracle", "source": "b", "target": "b", "case": f"b{i}", "seed": "0", "sdice": 0.95}
           for i in range(5)])
    low, high = bootstrap.sdice_matrix_intervals(scores, 1000, seed=0, level=0.95)
    assert low.loc["b", "a"] == high.loc["b", "a"] == pytest.approx(0.5)  # constant cell: a point
    assert 0.9 <= low.loc["a", "a"] < 0.92 < high.loc["a", "a"] <= 0.94
    assert np.isnan(low.loc["a", "b"])  # no b → a baseline in this table


def test_tables_print_the_interval_after_mean_and_std():
    cells = mean_std(pd.DataFrame([[0.4112, np.nan]]), pd.DataFrame([[0.12, np.nan]]),
                     pd.DataFrame([[0.301, np.nan]]), pd.DataFrame([[0.5249, np.nan]]))
    assert cells.iloc[0].tolist() == ["0.41 (0.12) [0.30, 0.52]", ""]
    per_pair = pd.DataFrame({"strategy": ["ft_all"] * 2, "budget": ["1scan"] * 2, "gap_closed": [0.3, 0.5]})
    intervals = pd.DataFrame({"strategy": ["ft_all"], "budget": ["1scan"], "low": [0.3], "high": [0.5],
                              "n_pairs": [2]})
    assert gap_closed_table(per_pair, ["ft_all"], intervals)[1].loc["ft_all", "1scan"] == "0.40 (0.14) [0.30, 0.50]"
