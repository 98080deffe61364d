"""The figures draw what the tables say: interval error bars at the bootstrap ends."""

import numpy as np
import pandas as pd
import pytest

from mrishift.reporting import plots


def per_pair_and_intervals():
    per_pair = pd.DataFrame({"strategy": ["ft_first"] * 2 + ["ft_first_bn_eval"] * 2 + ["bn_stats"] * 2,
                             "budget": ["1scan"] * 6, "source": ["a", "b"] * 3, "target": ["b", "a"] * 3,
                             "gap_closed": [0.4, 0.6, 0.1, 0.3, -0.1, 0.1]})
    intervals = pd.DataFrame({"strategy": ["ft_first", "ft_first_bn_eval", "bn_stats"], "budget": ["1scan"] * 3,
                              "low": [0.35, 0.0, -0.2], "high": [0.7, 0.45, 0.05], "n_pairs": [2, 2, 2]})
    return per_pair, intervals


def error_bar_ends(figure):
    """low, high of every error bar drawn, in drawing order, flat."""
    ends = []
    for container in figure.axes[0].containers:
        for segment in container.lines[2][0].get_segments():
            ends += [segment[0][1], segment[1][1]]
    return ends


def test_the_gap_closed_figure_draws_each_arms_bootstrap_interval():
    per_pair, intervals = per_pair_and_intervals()
    figure = plots.gap_closed_figure(per_pair, ["ft_first", "ft_first_bn_eval", "bn_stats"], "t", intervals)
    assert error_bar_ends(figure) == pytest.approx([0.35, 0.7, 0.0, 0.45, -0.2, 0.05])


def test_the_batchnorm_figure_draws_the_same_intervals():
    per_pair, intervals = per_pair_and_intervals()
    figure = plots.batchnorm_figure(per_pair, [("ft_first", "ft_first_bn_eval")], ["bn_stats"], "t", intervals)
    assert error_bar_ends(figure) == pytest.approx([0.35, 0.7, 0.0, 0.45, -0.2, 0.05])
    without = plots.batchnorm_figure(per_pair, [("ft_first", "ft_first_bn_eval")], ["bn_stats"], "t")
    sem = np.std([0.4, 0.6], ddof=1) / np.sqrt(2)
    assert error_bar_ends(without)[:2] == pytest.approx([0.5 - sem, 0.5 + sem])  # no intervals: ± standard error
