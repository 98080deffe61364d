"""Similarity between trained models (the FCN study's Tables VII and VIII): the per-block measure of two models, and
the tables built from it (mrishift.analysis.model_similarity)."""

import numpy as np
import pandas as pd
import pytest
import torch

from mrishift.analysis import model_similarity
from mrishift.evaluation.similarity import block_activations, pwcca
from mrishift.evaluation.similarity import model_similarity as between_models
from mrishift.models import networks


def seeded(seed):
    torch.manual_seed(seed)
    return networks.build("unet2d_residual", width=0.25)


def test_a_model_is_identical_to_itself_and_a_reseeded_copy_is_not():
    slices = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    one, again, other = (block_activations(seeded(s), slices, positions=300, seed=1) for s in (0, 0, 1))
    itself = between_models(one, again)
    assert all(row["cka"] == pytest.approx(1.0) and row["pwcca"] == pytest.approx(1.0) for row in itself)
    reseeded = between_models(one, other)
    assert [row["block"] for row in reseeded] == list(one)
    assert all(row["cka"] < 0.999 for row in reseeded[:-1])  # every block but the 1-channel output normalisation
    assert max(row["cka"] for row in reseeded) <= 1.0 + 1e-9
    # symmetric: PWCCA taken both ways and averaged, whatever model comes first
    backwards = between_models(other, one)
    assert all(a["pwcca"] == pytest.approx(b["pwcca"]) and a["cka"] == pytest.approx(b["cka"])
               for a, b in zip(reseeded, backwards))
    name = list(one)[2]
    assert reseeded[2]["pwcca"] == pytest.approx((pwcca(one[name], other[name]) + pwcca(other[name], one[name])) / 2)


def pairs_frame():
    rows = []
    values = {("scratch_target", "scratch_target"): [0.2, 0.4], ("ft_all", "ft_all"): [0.5, 0.7],
              ("scratch_target", "ft_all"): [0.3, 0.3, 0.6]}
    for (a, b), measured in values.items():
        for i, value in enumerate(measured):
            for depth, block in enumerate(["init", "up"]):
                rows.append({"source": "s", "target": "t", "budget": "1scan", "arm_a": a, "seed_a": str(i),
                             "arm_b": b, "seed_b": str(i + 1), "block": block, "depth": depth, "cka": value + depth,
                             "pwcca": value})
    return pd.DataFrame(rows)


def test_table_seven_gives_mean_and_std_per_comparison_and_block():
    text, numbers = model_similarity.similarity_table(pairs_frame(), "pwcca")
    assert list(text.columns) == ["model pairs", "init", "up"]
    assert text.loc[("1scan", "scratch_target vs scratch_target"), "init"] == "0.300 ± 0.141"
    assert text.loc[("1scan", "scratch_target vs ft_all"), "model pairs"] == 3
    row = numbers[(numbers.comparison == "ft_all vs ft_all") & (numbers.block == "up")].iloc[0]
    assert (row["mean"], row["n"]) == (pytest.approx(0.6), 2) and row["std"] == pytest.approx(np.sqrt(0.02))


def test_comparisons_are_tested_against_each_other_with_welchs_t():
    tests = model_similarity.comparison_tests(pairs_frame(), "pwcca")
    assert len(tests) == 2 * 3  # two blocks, three comparisons two by two
    row = tests[(tests.block == "init") & (tests["first"] == "scratch_target vs scratch_target")
                & (tests["second"] == "ft_all vs ft_all")].iloc[0]
    # equal variances (0.02 each), n = 2 each: t = (0.3 - 0.6) / sqrt(0.02/2 + 0.02/2) = -2.1213, df = 2
    assert row.t == pytest.approx(-0.3 / np.sqrt(0.02)) and row.p == pytest.approx(0.1679, abs=1e-4)


def test_feature_reuse_is_the_transfer_arms_similarity_to_its_start_minus_the_scratch_arms():
    rows = [{"source": "s", "target": t, "budget": "1scan", "strategy": arm, "seed": seed, "block": block,
             "depth": depth, "pwcca": value + 0.1 * depth}
            for t, shift in (("t", 0.0), ("u", 0.2))
            for arm, seed, value in (("ft_all", "0", 0.8 + shift), ("ft_all", "1", 0.6 + shift),
                                     ("scratch_target", "0", 0.2), ("ft_first", "0", 0.9))
            for depth, block in enumerate(["init", "up"])]
    reuse = model_similarity.feature_reuse(pd.DataFrame(rows), "pwcca", ["scratch_target"])
    assert list(reuse.columns) == ["pair", "budget", "transfer", "scratch", "init", "up"]
    first = reuse[(reuse.pair == "s → t") & (reuse.transfer == "ft_all")].iloc[0]
    assert (first.init, first.up) == (pytest.approx(0.5), pytest.approx(0.5))  # mean(0.8, 0.6) - 0.2
    pooled = reuse[(reuse.pair == "mean over pairs") & (reuse.transfer == "ft_all")].iloc[0]
    assert pooled.init == pytest.approx(0.6)  # (0.5 + 0.7) / 2
    assert sorted(reuse.transfer.unique()) == ["ft_all", "ft_first"] and len(reuse) == 6
    assert model_similarity.feature_reuse(pd.DataFrame(rows), "pwcca", []).empty  # no scratch arm: no reuse
