"""The whole workflow end to end on config/tiny.yaml, through the real Snakemake CLI."""

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import report_browser
import torch
import yaml
from workflow_runs import (
    ROOT,
    SNAKEMAKE,
    planned_jobs,
    planned_with_overlay,
    snakemake,
    study_copy,
    write_changed_config,
)

from mrishift import plan
from mrishift.models import networks

pytestmark = pytest.mark.workflow


ARMS = ["ft_all", "ft_first", "ft_first_bn_eval", "bn_stats", "scratch_target"]  # config/tiny.yaml, in its order
METHODS = ["hist_match", "adabn", "tent", "bn_kl_affine", "bn_kl_normalizer"]  # test-time; bn_kl_* from siemens_15


def test_tiny_workflow_outputs(tiny_run):
    report = pd.read_csv(tiny_run / "results/data/integrity.tsv", sep="\t")
    assert len(report) == 12 and set(report["status"]) == {"ok"}
    assert set(report["orientation"]) == {"LAS", "PIR", "LPS"}  # the three domains are stored differently
    for case in report["case"]:
        image = nib.load(tiny_run / f"results/data/preprocessed/{case}_image.nii.gz")
        mask = nib.load(tiny_run / f"results/data/resampled/{case}_mask.nii.gz")
        array = np.asarray(image.dataobj)
        assert image.shape == mask.shape == (40, 40, 32)  # 200 × 200 × 160 mm at 5 mm
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert np.allclose(image.header.get_zooms(), 5.0) and np.allclose(image.affine, mask.affine)
        assert array.min() == 0.0 and array.max() == 1.0
        assert set(np.unique(np.asarray(mask.dataobj))) == {0, 1}
    splits = json.loads((tiny_run / "results/data/splits.json").read_text())
    assert list(splits["domains"]) == ["siemens_15", "siemens_3", "ge_15"]
    ge = splits["domains"]["ge_15"]
    assert ge["budgets"]["every4"]["slices"][ge["finetune_order"][0]] == [0, 4, 8, 12, 16, 20, 24, 28]
    assert (tiny_run / "logs/check_integrity.log").exists() and (tiny_run / "logs/resample/CC0120.log").exists()
    for domain in splits["domains"]:  # data QC: each domain's first scan, raw and preprocessed
        assert (tiny_run / f"results/qc/data/{domain}.png").read_bytes()[:4] == b"\x89PNG"


def test_trained_models_and_records(tiny_run):
    splits = json.loads((tiny_run / "results/data/splits.json").read_text())["domains"]
    models = tiny_run / "results/models/unet2d_residual"
    sources = list(models.glob("source/*/seed0/record.json"))
    oracles = list(models.glob("oracle/*/fold*/seed0/record.json"))
    assert len(sources) == 3 and len(oracles) == 9
    for path in sources + oracles:  # validation scans are scored after the last epoch and never trained on
        record = json.loads(path.read_text())
        assert [v["epoch"] for v in record["validation"]] == [2] and 0 <= record["validation"][0]["sdice"] <= 1
        assert len(record["validation_cases"]) == 1 and not set(record["validation_cases"]) & set(record["cases"])
        assert record["final_model"] == "last epoch"
    records = list(models.glob("finetune/*/to_*/*/*/seed0/record.json"))
    # (arms × budgets + ft_first_bn_eval's one budget) × pairs + scratch_target's one budget on 2 pairs
    assert len(records) == (3 * 2 + 1) * 6 + 2
    by_run = {}
    for path in records:
        record = json.loads(path.read_text())
        identity = record["identity"]
        target = splits[identity["target"]]
        assert set(record["cases"]) <= set(target["finetune_order"]) and set(record["cases"]).isdisjoint(target["test"])
        assert len(record["losses"]) == (0 if identity["strategy"] == "bn_stats" else 2)
        assert all(np.isfinite(record["losses"])) and record["versions"]["torch"].startswith("2.13.0")
        by_run[identity["strategy"], identity["source"], identity["target"], identity["budget"]] = record
    # two arms of one class: their own identity and folder, the same batch stream
    first, first_eval = by_run["ft_first", "ge_15", "siemens_3", "every4"], by_run["ft_first_bn_eval", "ge_15",
                                                                                   "siemens_3", "every4"]
    assert first["identity"]["hparams"] == {} and first_eval["identity"]["hparams"] == {"strategy": "ft_first",
                                                                                         "frozen_bn": "eval"}
    assert first["seed"] == first_eval["seed"] == by_run["ft_all", "ge_15", "siemens_3", "every4"]["seed"]
    assert first["seed"] != by_run["ft_first", "ge_15", "siemens_3", "2scans"]["seed"]
    assert not list((tiny_run / "results").glob("checkpoints/**/*.pt"))  # removed once the final weights exist


def test_the_runs_on_disk_are_exactly_the_plans(tiny_run):
    """Every model the tiny study trained, and every test-time pair it scored, is one of the plan's runs, and every
    plan run is there: mrishift.plan.Plan answers 'which runs does this config mean' as Snakemake ran it."""
    config = plan.load_config([tiny_run / "config/tiny.yaml"], tiny_run / "config/config.yaml", plan_only=False)
    runs = plan.Plan(config).runs()
    runs["fold"] = runs.fold.map(lambda fold: "" if pd.isna(fold) else str(int(fold)))
    planned = set(runs.fillna("").itertuples(index=False, name=None))
    on_disk = set()
    for path in (tiny_run / "results/models").glob("*/**/record.json"):
        run = json.loads(path.read_text())["identity"]
        variant, role = path.relative_to(tiny_run / "results/models").parts[:2]
        if role == "finetune":
            on_disk.add((variant, role, run["strategy"], run["source"], run["target"], run["budget"], "", run["seed"]))
        else:  # source, source_normalized, oracle: one domain
            target, fold = (run["domain"], run["fold"]) if role == "oracle" else ("", "")
            on_disk.add((variant, role, "", run["domain"], target, "", fold, run["seed"]))
    scores = pd.read_csv(tiny_run / "results/scores/scores.tsv", sep="\t", dtype=str)
    adapted = scores[scores.role == "test_time"].drop_duplicates(["variant", "strategy", "source", "target", "seed"])
    on_disk |= {(r.variant, "test_time", r.strategy, r.source, r.target, "0", "", r.seed) for r in adapted.itertuples()}
    assert on_disk == planned
    # 3 sources, 1 with a normalizer, 3 × 3 oracle folds, (2 arms × 2 budgets + 1 + 2 (bn_stats)) × 6 pairs, test-time:
    # scratch_target's 2, three test-time methods on every pair, two from one source
    assert len(planned) == 3 + 1 + 9 + 7 * 6 + 2 + 3 * 6 + 2 * 2


def test_scores_tables_and_figures(tiny_run):
    splits = json.loads((tiny_run / "results/data/splits.json").read_text())["domains"]
    scores = pd.read_csv(tiny_run / "results/scores/scores.tsv", sep="\t", dtype={"budget": str})
    counts = scores.role.value_counts().to_dict()
    assert counts == {"oracle": 12, "baseline": 3 * 8, "finetune": (7 * 6 + 2) * 2,  # arm-budgets × pairs × tests
                      "test_time": (3 * 6 + 2 * 2) * 2,  # arms × their pairs × tests
                      "source": 3, "forgetting": 7 * 6 + 2}  # each source's held-out scan: its model, every fine-tune
    assert scores[["sdice", "dice"]].apply(lambda c: c.between(0, 1)).all().all()
    oracle = scores[scores.role == "oracle"]
    assert sorted(oracle.case) == sorted(c for d in splits.values() for c in d["cases"])  # folds cover each scan once
    for (target, budget), group in scores[scores.role == "finetune"].groupby(["target", "budget"]):
        assert sorted(set(group.case)) == splits[target]["test"]  # never a scan a budget could fine-tune on
        assert set(group.case).isdisjoint(splits[target]["budgets"][budget]["scans"])
    test_time = scores[scores.role == "test_time"]
    assert set(test_time.budget) == {"0"} and set(test_time.strategy) == set(METHODS)
    for (target, method), group in test_time.groupby(["target", "strategy"]):
        assert sorted(set(group.case)) == splits[target]["test"]  # the fine-tunes' test scans
    assert set(test_time[test_time.strategy.str.startswith("bn_kl")].source) == {"siemens_15"}
    for role in ("source", "forgetting"):  # forgetting: scored on the source's scans no run trained on
        rows = scores[scores.role == role]
        assert all(splits[source]["source"]["validation"] == [case] for source, case in zip(rows.source, rows.case))
    references = tiny_run / "results/data/intensity_reference"
    ge_reference = json.loads((references / "ge_15.json").read_text())
    assert ge_reference["scans"] == splits["ge_15"]["source"]["train"] and len(ge_reference["quantiles"]) == 1001

    tables = tiny_run / "results/tables/unet2d_residual"
    matrix = pd.read_csv(tables / "sdice_matrix.csv", index_col=0)
    assert matrix.shape == (3, 3) and matrix.apply(lambda c: c.between(0, 1)).all().all()
    assert "| target \\ source" in (tables / "sdice_matrix.md").read_text()
    assert "\\begin{table}" in (tables / "gap_closed.tex").read_text()
    gap = pd.read_csv(tables / "gap_closed.csv", index_col=0)
    assert list(gap.index) == ARMS + METHODS and list(gap.columns) == ["0", "every4", "2scans"]
    assert gap.loc["ft_first_bn_eval"].isna().tolist() == [True, False, True]  # run on every4 only
    assert gap.loc["scratch_target"].isna().tolist() == [True, False, True]  # every4, on the 2 pairs from siemens_15
    assert gap.loc[METHODS].notna().values.tolist() == [[True, False, False]] * 5  # test-time: budget 0 only
    assert "| bn_kl_affine (2 pairs) " in (tables / "gap_closed.md").read_text()
    stats_dir = tiny_run / "results/stats/unet2d_residual"
    intervals = pd.read_csv(stats_dir / "gap_closed_intervals.tsv", sep="\t", dtype={"budget": str})
    per_pair = pd.read_csv(stats_dir / "gap_closed_per_pair.tsv", sep="\t", dtype={"budget": str})
    assert len(intervals) == per_pair.groupby(["strategy", "budget"]).ngroups  # one per arm and budget it ran
    with_pairs = intervals.dropna(subset=["low"])
    for row in with_pairs.itertuples():  # the mean lies inside its interval
        assert row.low - 1e-9 <= gap.loc[row.strategy, row.budget] <= row.high + 1e-9, row
    cell = with_pairs.iloc[0]
    assert f"{gap.loc[cell.strategy, cell.budget]:.2f} " in (tables / "gap_closed.md").read_text()
    assert f"[{cell.low:.2f}, {cell.high:.2f}]" in (tables / "gap_closed.md").read_text()
    matrix_ends = pd.read_csv(stats_dir / "sdice_matrix_intervals.tsv", sep="\t")
    assert len(matrix_ends) == 9 and (matrix_ends.low <= matrix_ends.high).all()
    winners = pd.read_csv(tables / "winners.tsv", sep="\t", dtype={"budget": str})
    assert len(winners) == 6 * 3 and winners.p_value.between(0, 1).all()  # budget 0: among the test-time arms
    assert set(winners.winner) <= set(ARMS + METHODS)
    at_zero = winners[winners.budget == "0"]
    assert len(at_zero) == 6 and set(at_zero.winner) | set(at_zero.runner_up) <= set(METHODS)
    summary = json.loads((tables / "summary.json").read_text())
    assert 0 <= summary["oracle_mean"] <= 1 and 0 <= summary["baseline_mean"] <= 1
    batchnorm = pd.read_csv(tables / "batchnorm.csv", index_col=0)
    assert list(batchnorm.index) == ["ft_first", "ft_first_bn_eval", "bn_stats"]
    tests = pd.read_csv(tables / "batchnorm_tests.tsv", sep="\t")
    assert len(tests) == 6 and set(tests.arm_a) == {"ft_first"} and set(tests.arm_b) == {"ft_first_bn_eval"}
    assert set(tests.budget) == {"every4"}  # the budget both arms ran
    assert set(summary["gap_closed_mean"]["ft_first_bn_eval"]) == {"every4"}
    assert summary["bootstrap"] == {"samples": 2000, "level": 0.95, "seed": 0}  # the schema's defaults
    assert set(tests.better) <= {"ft_first", "ft_first_bn_eval", "tie"} and tests.p_value.between(0, 1).all()
    curves = pd.read_csv(tables / "convergence.tsv", sep="\t")
    assert curves.groupby("role").run.nunique().to_dict() == {"source": 3, "oracle": 9,
                                                              "finetune": (2 * 2 + 1) * 6 + 2,
                                                              "source_normalized": 1}  # bn_kl_normalizer's
    assert curves[curves.role == "source"].val_sdice.notna().sum() == 3  # validated once, after the last epoch
    changes = pd.read_csv(tiny_run / "results/stats/unet2d_residual/weight_change.tsv", sep="\t",
                          dtype={"budget": str, "seed": str})
    blocks = changes.block.nunique()
    assert len(changes) == 7 * 6 * blocks  # arm-budgets × pairs × blocks
    first = changes[changes.strategy.isin(["ft_first", "ft_first_bn_eval"])]
    moved = first.groupby("block").relative_change.min() > 0
    assert sorted(moved[moved].index) == ["encoder0.0", "init"]  # the first layer group, and only it, moved
    assert (first[~first.block.isin(["init", "encoder0.0"])].relative_change == 0).all()
    assert (changes[changes.strategy == "bn_stats"].relative_change == 0).all()  # statistics only: no weight moves
    assert (changes[changes.strategy == "ft_all"].groupby("block").relative_change.max() > 0).all()
    forgetting = pd.read_csv(tables / "forgetting.csv", index_col=0)
    assert list(forgetting.index) == ["source model (before)"] + ARMS
    assert list(forgetting.columns) == ["every4", "2scans"]
    assert forgetting.loc["ft_first_bn_eval"].isna().tolist() == [False, True]  # run on every4 only
    by_model = scores.groupby(["role", "strategy", "source", "budget"]).sdice.mean()
    before = scores[scores.role == "source"].set_index("source").sdice
    for arm in ARMS:  # each arm's after: the mean over its 6 pairs' fine-tunes on their source's held-out scan
        for budget in forgetting.columns[forgetting.loc[arm].notna()]:
            assert forgetting.loc[arm, budget] == pytest.approx(by_model["forgetting", arm, :, budget].mean())
    assert forgetting.loc["source model (before)", "every4"] == pytest.approx(before.mean())  # 2 pairs per source
    assert "→" in (tables / "forgetting.md").read_text()
    for name in ["sdice_matrix", "gap_closed", "winners", "batchnorm", "forgetting", "convergence", "weight_change"]:
        assert (tiny_run / f"results/figures/unet2d_residual/{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tiny_run / f"results/figures/unet2d_residual/{name}.pdf").read_bytes()[:4] == b"%PDF"


def test_the_paper_view_counts_every_pair_among_the_papers_arms(tiny_run):
    """tiny.yaml's study: DART 2020 on two of its arms (ft_all, ft_first): winners among those two only, one per
    pair and budget (the counts sum to the 6 pairs), every pair in the gap-closed means (the small-gap ones flagged),
    and the published Table 1 beside our 3 × 3 corner of it."""
    tables = tiny_run / "results/tables/unet2d_residual"
    scores = pd.read_csv(tiny_run / "results/scores/scores.tsv", sep="\t", dtype={"budget": str, "seed": str})
    counts = pd.read_csv(tables / "paper_winner_counts.tsv", sep="\t", dtype={"budget": str})
    assert counts.groupby("budget").wins.sum().to_dict() == {"every4": 6, "2scans": 6}
    assert set(counts.winner) == {"ft_all", "ft_first"} and (counts.significant <= counts.wins).all()
    winners = pd.read_csv(tables / "paper_winners.tsv", sep="\t", dtype={"budget": str})
    assert set(winners.winner) | set(winners.runner_up) <= {"ft_all", "ft_first"}
    assert not (winners.significant & (winners.scans_for_winner <= winners.scans_for_runner_up)).any()
    pairs = pd.read_csv(tiny_run / "results/stats/unet2d_residual/paper_gap_closed_per_pair.tsv", sep="\t",
                        dtype={"budget": str})
    assert len(pairs) == 6 * 2 * 2 and pairs.gap_closed.notna().all()  # every pair, budget and paper arm
    gap = pd.read_csv(tables / "paper_gap_closed.csv", index_col=0)
    for (arm, budget), mean in pairs.groupby(["strategy", "budget"]).gap_closed.mean().items():
        assert gap.loc[arm, budget] == pytest.approx(mean)
    flagged = pairs[pairs.small_gap].drop_duplicates(["source", "target"])
    assert ((flagged.oracle - flagged.baseline) < 0.05).all()
    for row in flagged.itertuples():
        assert f"{row.source}→{row.target}" in (tables / "paper_gap_closed.md").read_text()
    absolute = pd.read_csv(tables / "paper_scores.csv", index_col=0)
    finetuned = scores[(scores.role == "finetune") & (scores.strategy == "ft_first") & (scores.budget == "every4")]
    assert absolute.loc["ft_first", "every4"] == pytest.approx(finetuned.groupby(["source", "target"]).sdice.mean()
                                                                .mean())
    versus = pd.read_csv(tiny_run / "results/tables/paper_vs_ours.tsv", sep="\t")
    cells = versus[versus["where"] == "Table 1"].dropna(subset=["ours"])
    cells = cells[pd.to_numeric(cells.ours, errors="coerce").notna()]
    assert len(versus[versus.what.str.startswith("sDice ")]) == 36 and len(cells) == 9  # 3 of the 6 domains ran
    matrix = pd.read_csv(tables / "sdice_matrix.csv", index_col=0)
    assert float(cells[cells.what == "sDice siemens_3 model on ge_15"].ours.iloc[0]) == pytest.approx(
        matrix.loc["ge_15", "siemens_3"])
    assert versus.what.str.contains("fine-tuning the first layers beats the last layers").sum() == 1  # not run
    for name in ("paper_winners", "paper_gap_closed"):
        assert (tiny_run / f"results/figures/unet2d_residual/{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_the_study_metric_sets_our_views_metric(tiny_run, tmp_path):
    """study.metric: dice makes the cross-domain matrix, gap closed and the summary Dice's; only analyse reruns."""
    workdir, _, planned = planned_with_overlay(tiny_run, tmp_path, "study: {metric: dice}\n")
    assert planned["analyse"] == 1 and "train_source" not in planned and "score_finetune" not in planned
    result = snakemake(workdir, "results/tables/unet2d_residual/summary.json", configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "results/tables/unet2d_residual/summary.json").read_text())
    scores = pd.read_csv(workdir / "results/scores/scores.tsv", sep="\t")
    assert summary["metric"] == "Dice" and summary["oracle_mean"] == pytest.approx(
        scores[scores.role == "oracle"].dice.mean())
    assert "Dice, mean (std)" in (workdir / "results/tables/unet2d_residual/sdice_matrix.md").read_text()
    before = json.loads((tiny_run / "results/tables/unet2d_residual/summary.json").read_text())
    assert before["metric"] == "surface Dice at 5 mm" and before["oracle_mean"] == pytest.approx(
        scores[scores.role == "oracle"].sdice.mean())


def test_report_embeds_figures_and_methods(tiny_run):
    result = snakemake(tiny_run, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tiny_run / "results/report.html").read_text()
    assert "Methods." in html and "sign test" in html
    for name in ["sdice_matrix.png", "gap_closed.png", "winners.png", "batchnorm.png", "convergence.png",
                 "weight_change.png",
                 "gap_closed.csv", "batchnorm.csv", "scores.tsv", "siemens_15.png", "siemens_3.png", "ge_15.png"]:
        assert name in html
    assert "Data QC of ge_15" in html  # the caption names each domain


def test_the_report_shows_every_figure_in_a_browser(tiny_run, tmp_path):
    """Every figure of the report, opened by clicks in headless Chromium as a person would, is displayed and is the
    figure file's own bytes; a screenshot of the last one (a prediction QC figure) is left in the test's tmp dir."""
    report = tiny_run / "results/report.html"
    if not report.exists():
        assert snakemake(tiny_run, "--report", "results/report.html").returncode == 0
    figures = sorted(path for subcategories in report_browser.report_categories(report.read_text()).values()
                     for paths in subcategories.values() for path in paths if path.endswith(".png"))
    # data QC per domain, the study's figures (2 of the paper's view, filters, feature maps, the test-time loss),
    # prediction QC
    assert len(figures) == 3 + 14 + 14
    driver = report_browser.chromium(tmp_path / "chromium")
    try:
        seen = report_browser.view_every_figure(driver, report)
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert sorted(shown for *_, shown in seen) == sorted((tiny_run / path).read_bytes() for path in figures)
    assert seen[-1][0] == "Prediction QC" and (tmp_path / "report.png").stat().st_size > 50_000
    print(f"screenshot: {tmp_path / 'report.png'}")


def test_similarity_compares_every_block_of_the_analysed_pairs_models_with_their_sources(tiny_run):
    table = pd.read_csv(tiny_run / "results/stats/unet2d_residual/similarity.tsv", sep="\t", dtype={"budget": str})
    pairs = set(zip(table.source, table.target))
    assert pairs == {("siemens_15", "siemens_3"), ("siemens_15", "ge_15"), ("ge_15", "siemens_15"),
                     ("ge_15", "siemens_3")}  # tiny.yaml: sources siemens_15 and ge_15
    blocks = table.block.nunique()
    assert len(table) == 4 * (3 * 2 + 1) * blocks  # 4 pairs × 7 fine-tuned models (3 arms × 2 budgets + 1) × blocks
    assert table[["cka", "pwcca"]].stack().between(0, 1 + 1e-9).all()
    first = table[table.block == "init"].set_index(["strategy", "source", "target", "budget"])
    assert np.allclose(first.loc["bn_stats", ["cka", "pwcca"]], 1.0)  # its weights and its input are the source's
    # every weight and BatchNorm statistic of ft_all moved: each model's blocks compute something else on average
    # (its first conv alone moved too little for CKA to tell: 4 steps at lr 1e-3)
    per_model = table[table.strategy == "ft_all"].groupby(["source", "target", "budget"]).cka.mean()
    assert (per_model < 0.99).all()
    for name in ("similarity_cka", "similarity_pwcca", "filters", "feature_maps"):
        assert (tiny_run / f"results/figures/unet2d_residual/{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_the_test_time_loss_is_stored_per_scan_and_read_against_the_unadapted_score(tiny_run):
    """tiny.yaml: tent on every pair, bn_kl_affine from Siemens 1.5T (both adapt the plain source model and minimise a
    loss); bn_kl_normalizer adapts another source model and is left out; adabn and hist_match minimise none."""
    per_scan = pd.read_csv(tiny_run / "results/stats/unet2d_residual/test_time_loss_per_scan.tsv", sep="\t",
                           dtype={"seed": str})
    scores = pd.read_csv(tiny_run / "results/scores/scores.tsv", sep="\t", dtype={"budget": str, "seed": str})
    adapted = scores[scores.strategy.isin(["tent", "bn_kl_affine"])]
    assert set(per_scan.strategy) == {"tent", "bn_kl_affine"} and len(per_scan) == len(adapted)
    baseline = scores[scores.role == "baseline"].set_index(["source", "target", "seed", "case"]).sdice
    assert np.allclose(per_scan.unadapted, baseline.loc[list(zip(per_scan.source, per_scan.target, per_scan.seed,
                                                                 per_scan.case))].to_numpy())
    assert (per_scan.loss_before > 0).all() and (per_scan.loss_after <= per_scan.loss_before + 1e-9).all()
    table = pd.read_csv(tiny_run / "results/tables/unet2d_residual/test_time_loss.csv")
    pooled = table[table.target == "all"].set_index("strategy")
    assert pooled.n.to_dict() == per_scan.strategy.value_counts().to_dict()
    assert pooled.rho.between(-1, 1).all()
    for path in (tiny_run / "results/scores/unet2d_residual/test_time/adabn").rglob("*.tsv"):  # no loss minimised
        kept = pd.read_csv(path, sep="\t")
        assert len(kept) and kept[["loss_before", "loss_after"]].isna().all().all()
    assert (tiny_run / "results/figures/unet2d_residual/test_time_loss.png").read_bytes()[:4] == b"\x89PNG"


def test_prediction_qc_redraws_the_scored_best_median_and_worst_of_every_arm(tiny_run):
    examples = pd.read_csv(tiny_run / "results/stats/unet2d_residual/prediction_qc_examples.tsv", sep="\t",
                           dtype={"budget": str, "seed": str})
    arms = examples.groupby(["role", "strategy", "budget"], dropna=False)
    # the oracle, the baseline, 5 arms at their budgets (ft_first_bn_eval, scratch_target: one) and 4 of the 5
    # test-time methods
    assert arms.ngroups == 2 + 8 + 4 and (arms.size() == 3).all()
    assert "bn_kl_normalizer" not in set(examples.strategy)  # tiny.yaml: evaluation.prediction_qc.exclude
    assert (examples.sdice_redrawn == examples.sdice).all()  # on the CPU the redrawn mask is the scored one
    scores = pd.read_csv(tiny_run / "results/scores/scores.tsv", sep="\t", dtype={"budget": str, "seed": str})
    best = examples[examples.example == "best"].set_index(["role", "strategy"]).sdice
    assert best["finetune", "ft_all"].max() == scores[scores.strategy == "ft_all"].sdice.max()
    figures = tiny_run / "results/qc/predictions/unet2d_residual"
    assert sorted(str(p.relative_to(figures)) for p in figures.glob("*/*.png")) == sorted(
        [f"{arm}/{budget}.png" for arm in ("ft_all", "ft_first", "bn_stats") for budget in ("2scans", "every4")]
        + ["ft_first_bn_eval/every4.png", "scratch_target/every4.png", "baseline/source_model.png",
           "oracle/target_folds.png"]
        + [f"{method}/0.png" for method in METHODS if method != "bn_kl_normalizer"])


def changed_config(workdir, edit, *dry_run_args):
    write_changed_config(workdir, edit)
    dry = snakemake(workdir, "-n", *dry_run_args, configfile="changed.yaml")
    assert dry.returncode == 0, dry.stderr
    return planned_jobs(dry.stdout)


def test_rerun_plans_only_what_a_change_touches(tiny_run):
    assert "Nothing to be done" in snakemake(tiny_run, "-n").stdout
    one_strategy = changed_config(tiny_run, lambda c: c["strategies"].update(ft_first={"lr": 0.01}))
    study = {"collect_scores": 1, "analyse": 1, "figures": 1, "forgetting": 1, "paper_view": 1, "paper_vs_ours": 1,
             "prediction_qc": 1, "test_time_loss": 1, "all": 1}
    retrained = {**study, "convergence": 1, "weight_change": 1, "similarity": 1}  # every run record / fine-tuned model
    # ft_first's 3 targets (6 pairs) only; it is among the arms model_similarity compares
    assert one_strategy == {"finetune": 3, "score_finetune": 3, "model_similarity": 1, **retrained}
    new_arm = changed_config(tiny_run, lambda c: c["strategies"].update(ft_last_bn_eval={"strategy": "ft_last",
                                                                                         "frozen_bn": "eval"}))
    assert new_arm == {"finetune": 3, "score_finetune": 3, **retrained}  # a job: one arm into one target, every budget
    more_budgets = changed_config(tiny_run, lambda c: c["strategies"]["ft_first_bn_eval"].pop("budgets"))
    # its 3 jobs rerun whole (a job's runs form one output): every4 retrains too, to the same weights (seeded by run)
    assert more_budgets == {"finetune": 3, "score_finetune": 3, **retrained}
    tolerance = changed_config(tiny_run, lambda c: c["evaluation"].update(tolerance_mm=2.5))
    assert tolerance == {"score_oracle": 3, "score_baseline": 3, "score_finetune": 14, "adapt_score": 13,
                         **study}  # no retraining
    significance = changed_config(tiny_run, lambda c: c["evaluation"].update(significance_level=0.05))
    assert significance == {"analyse": 1, "figures": 1, "paper_view": 1, "paper_vs_ours": 1, "all": 1}
    training = {"scan_set": 3 * 8, "train_source": 3, "train_oracle": 9, "finetune": 14, "score_oracle": 3,
                "score_baseline": 3, "score_finetune": 14, "intensity_reference": 3, "adapt_score": 13,
                "train_source_normalized": 1, "model_similarity": 1, **retrained}
    scaling = changed_config(tiny_run, lambda c: c["preprocess"].update(clip_percentiles=[2.0, 98.0]))
    assert scaling == {"scale_intensity": 12, "make_splits": 1, "data_qc": 3, **training}
    spacing = changed_config(tiny_run, lambda c: c["preprocess"].update(spacing_mm=[4.0, 4.0, 4.0]))
    assert spacing == {"resample": 12, "scale_intensity": 12, "make_splits": 1, "data_qc": 3, **training}


def test_one_job_per_strategy_gives_identical_models(tiny_run, tmp_path):
    """training.finetune_job only regroups runs into jobs and training.runs_per_device only runs them at once (tiny:
    one job per arm and target, its runs one after another in the job's process; here: one job per arm, every pair and
    budget, two runs at a time in their own processes): every run keeps its seed and its path, so its weights are
    identical."""
    workdir = study_copy(tiny_run, tmp_path / "copy")
    # Forced: whether an arm's new folder-wide job looks older than a source model depends on which pair's job made
    # the folder first (a folder's time stamp is its last new entry's)
    planned = changed_config(workdir, lambda c: c["training"].update(finetune_job="strategy", runs_per_device=2),
                             "--forceall")
    assert (planned["finetune"], planned["score_finetune"], planned["adapt_score"]) == (5, 5, 5)  # one job per arm
    assert len(list((tiny_run / "results/models/unet2d_residual/finetune").glob("*/to_*/*/*/seed0/model.pt"))) == 44
    # ft_all's 12 runs (6 pairs × 2 budgets) retrained by its one job: the regrouping of every arm is the same code
    models = sorted((tiny_run / "results/models/unet2d_residual/finetune/ft_all").glob("to_*/*/*/seed0/model.pt"))
    assert len(models) == 12
    shutil.rmtree(workdir / "results/models/unet2d_residual/finetune/ft_all")
    result = snakemake(workdir, "results/models/unet2d_residual/finetune/ft_all", configfile="changed.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    job_log = (workdir / "logs/finetune/unet2d_residual/ft_all.log").read_text()  # one job ran the arm
    assert "2 at a time in their own processes" in job_log
    assert job_log.count("] epoch 2/2 loss") == 12, job_log  # each run's last epoch, from its own process
    for original in models:
        regrouped = workdir / original.relative_to(tiny_run)
        a, b = (torch.load(p, weights_only=True)["model"] for p in (original, regrouped))
        assert all(torch.equal(a[k], b[k]) for k in a), original


def test_editing_a_script_replans_its_rule_and_dependants(tiny_run, tmp_path):
    workdir = study_copy(tiny_run, tmp_path / "copy")
    for name in ("rules", "workflow", "envs", "report"):
        shutil.copytree(ROOT / name, workdir / name)
    shutil.copy(ROOT / "Snakefile", workdir / "Snakefile")
    (workdir / "src").symlink_to(ROOT / "src")
    unchanged = snakemake(workdir, "-n", snakefile=workdir / "Snakefile")
    assert unchanged.returncode == 0 and "Nothing to be done" in unchanged.stdout, unchanged.stdout[-2000:]
    script = workdir / "workflow/scripts/analyse.py"
    script.write_text(script.read_text() + "# an edit\n")
    edited = snakemake(workdir, "-n", snakefile=workdir / "Snakefile")
    assert planned_jobs(edited.stdout) == {"analyse": 1, "figures": 1, "all": 1}


def test_a_changed_mask_replans_exactly_the_jobs_that_read_it(tiny_run, tmp_path):
    """Each job declares the scans it reads, and no others: a changed reference mask of one ge_15 scan replans the
    jobs that read that scan and what depends on them. The expectation is counted here from the splits file."""
    workdir = study_copy(tiny_run, tmp_path / "copy")
    ge = json.loads((workdir / "results/data/splits.json").read_text())["domains"]["ge_15"]
    case = ge["budgets"]["every4"]["scans"][0]  # ge_15's first fine-tuning scan: every budget trains on it
    mask = workdir / f"results/data/resampled/{case}_mask.nii.gz"
    image = nib.load(mask)
    array = np.asarray(image.dataobj).copy()
    array[array.shape[0] // 2] = 1 - array[array.shape[0] // 2]
    nib.save(nib.Nifti1Image(array, image.affine, image.header), str(mask))
    dry = snakemake(workdir, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]

    oracle_folds = sum(case not in fold["test"] for fold in ge["oracle_folds"])  # the folds that train on it
    # the scan sets holding it: every scan, the source split, the training or held-out part of it, the oracle folds
    # training on it (never the test set: no budget's scan is a test scan)
    scan_sets = 2 + 1 + oracle_folds
    into_ge = 5  # every arm's job into ge_15 (one job per arm and target): every budget trains on this scan
    out_of_ge = 4 * 2  # every arm's jobs into the two siemens domains: their pairs from ge_15 start from its model
    scoring_jobs = into_ge + out_of_ge  # one per fine-tuning job (scratch_target's into siemens_3 reads no ge_15 scan)
    reference = int(case in ge["source"]["train"])  # ge_15's intensity reference pools its source training scans
    test_time = 3 * 2  # into either siemens domain (ge_15's source model retrains), every method but the bn_kl_*,
    # which adapt from siemens_15's model only
    qc = {"data_qc": 1} if case == ge["cases"][0] else {}  # each domain's first scan is shown in the data QC
    assert planned_jobs(dry.stdout) == {**({"intensity_reference": 1} if reference else {}), "adapt_score": test_time,
        **qc, "scan_set": scan_sets,
        "train_source": 1, "train_oracle": oracle_folds, "score_oracle": 1,
        "score_baseline": 3,  # to ge_15 reads it; to siemens_15 and siemens_3 test ge_15's source model
        "finetune": into_ge + out_of_ge, "score_finetune": scoring_jobs,
        "collect_scores": 1, "analyse": 1, "figures": 1, "forgetting": 1, "convergence": 1, "weight_change": 1,
        "similarity": 1, "model_similarity": 1, "paper_view": 1, "paper_vs_ours": 1, "prediction_qc": 1,
        "test_time_loss": 1, "all": 1}
    outputs = [line for line in dry.stdout.splitlines() if line.strip().startswith("output:")]
    for untouched in ("source/siemens_15/", "source/siemens_3/", "oracle/siemens", "scan_sets/siemens",
                      "scan_sets/ge_15/test", "bn_kl_affine/to_siemens_3"):
        assert not any(untouched in line for line in outputs), untouched


def test_moved_results_folder_is_complete_under_its_config_key(tiny_run, tmp_path):
    """Every output lives under the `results` config key and every job is given its files: the finished study moved
    to another folder plans nothing; a changed mask there replans the jobs reading it, with the new paths."""
    workdir = study_copy(tiny_run, tmp_path / "copy")
    (workdir / "study").mkdir()
    shutil.move(workdir / "results", workdir / "study/run1")  # a rename: time stamps kept
    (workdir / "config/moved.yaml").write_text("results: study/run1\n")
    dry = snakemake(workdir, "-n", configfile=["tiny.yaml", "moved.yaml"])
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout, dry.stdout[-3000:]
    mask = workdir / "study/run1/data/resampled/CC0120_mask.nii.gz"  # siemens_15
    mask.touch()
    dry = snakemake(workdir, "-n", configfile=["tiny.yaml", "moved.yaml"])
    assert planned_jobs(dry.stdout)["train_source"] == 1 and "study/run1/models/unet2d_residual/source/siemens_15" in (
        dry.stdout)
    assert "results/" not in dry.stdout.replace("study/run1/", "")


def test_an_overlay_with_one_arm_plans_only_that_arm(tiny_run):
    (tiny_run / "config/one_arm.yaml").write_text("strategies:\n  ft_all: {}\nsplits:\n  budgets: [every4]\n")
    dry = snakemake(tiny_run, "-n", "--forceall", configfile=["tiny.yaml", "one_arm.yaml"])
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = planned_jobs(dry.stdout)
    assert planned["finetune"] == 3 and planned["score_finetune"] == 3  # one arm × 3 targets, not four arms
    assert "output: results/models/unet2d_residual/finetune/ft_all/to_siemens_3\n" in dry.stdout
    assert "ft_first" not in dry.stdout and "2scans" not in dry.stdout and "bn_stats" not in dry.stdout


def test_a_frozen_random_encoder_variant_trains_only_the_decoder_of_its_source_models(tiny_run, tmp_path):
    workdir, dry, planned = planned_with_overlay(tiny_run, tmp_path, "models:\n  frozen_random_encoder: [false, true]\n")
    assert planned["train_source"] == 3 and planned["train_oracle"] == 9 and planned["finetune"] == 14  # one variant
    assert "unet2d_residual_frozen_random_encoder/source/ge_15/seed0/model.pt" in dry  # (its strategy: below)
    model = workdir / "results/models/unet2d_residual_frozen_random_encoder/source/ge_15/seed0/model.pt"
    result = snakemake(workdir, str(model.relative_to(workdir)), configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(model.with_name("record.json").read_text())
    torch.manual_seed(record["seed"])
    initial = networks.build("unet2d_residual", width=0.5).state_dict()
    trained = torch.load(model, weights_only=True)["model"]
    groups = networks.build("unet2d_residual", width=0.5).layer_groups()
    assert all(torch.equal(trained[n], initial[n]) for n in groups["encoder"])  # still its random initialisation
    assert not any(torch.equal(trained[n], initial[n]) for n in groups["decoder"] if n.endswith("weight"))


def test_an_adam_variant_trains_with_adam_and_octl_continues_its_source_moments(tiny_run, tmp_path):
    workdir, _, planned = planned_with_overlay(tiny_run, tmp_path,
                                               "models:\n  optimizers: [sgd, adam]\nstrategies:\n  octl: {}\n")
    assert planned["train_source"] == 3 and planned["train_oracle"] == 9  # the new variant's; the sgd one's exist
    assert planned["finetune"] == 3 * 2  # octl in both variants (a new arm): 3 targets
    runs = workdir / "results/models/unet2d_residual_adam/finetune/octl/to_ge_15"
    model = runs / "siemens_15_to_ge_15/every4/seed0/model.pt"
    result = snakemake(workdir, str(runs.relative_to(workdir)), configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    source = workdir / "results/models/unet2d_residual_adam/source/siemens_15/seed0/model.pt"
    source_record = json.loads(source.with_name("record.json").read_text())
    assert (source_record["recipe"]["optimizer"], source_record["recipe"]["lr"]) == ("adam", 0.001)
    saved = torch.load(source, weights_only=True)["optimizer"]
    assert saved["kind"] == "adam" and set(saved["state"]) == set(saved["state"]) & set(
        torch.load(source, weights_only=True)["model"])  # moments keyed by parameter name
    assert all(float(state["step"]) == 2 * 3 for state in saved["state"].values())  # tiny: 2 epochs × 3 steps
    record = json.loads(model.with_name("record.json").read_text())
    assert record["recipe"]["optimizer"] == "adam" and record["identity"]["strategy"] == "octl"
    assert "optimizer" not in torch.load(model, weights_only=True)  # only source runs keep theirs
    sgd_source = torch.load(tiny_run / "results/models/unet2d_residual/source/siemens_15/seed0/model.pt",
                            weights_only=True)
    assert json.loads((tiny_run / "results/models/unet2d_residual/source/siemens_15/seed0/record.json").read_text())[
        "recipe"]["optimizer"] == "sgd" and sgd_source["optimizer"]["kind"] == "sgd"


def test_a_spottune_arm_saves_its_gated_network_and_scores_it_through_the_same_paths(tiny_run, tmp_path):
    workdir, _, planned = planned_with_overlay(
        tiny_run, tmp_path, "strategies:\n  spottune: {budgets: [every4]}\n"
                            "splits:\n  finetune_pairs: {sources: [siemens_15], targets: [siemens_3]}\n")
    assert planned["finetune"] == 1 and planned["score_finetune"] == 1
    scores = workdir / "results/scores/unet2d_residual/finetune/spottune/to_siemens_3.tsv"
    changes = workdir / "results/stats/unet2d_residual/weight_change.tsv"
    result = snakemake(workdir, *(str(p.relative_to(workdir)) for p in (scores, changes)),
                       configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    model = (workdir / "results/models/unet2d_residual/finetune/spottune/to_siemens_3/siemens_15_to_siemens_3/every4"
             "/seed0/model.pt")
    saved = torch.load(model, weights_only=True)
    assert saved["arch"] == "unet2d_residual_spottune"
    source = torch.load(workdir / "results/models/unet2d_residual/source/siemens_15/seed0/model.pt", weights_only=True)
    frozen = {n.removeprefix("frozen."): v for n, v in saved["model"].items() if n.startswith("frozen.")}
    assert frozen.keys() == source["model"].keys()
    assert all(torch.equal(v, source["model"][n]) for n, v in frozen.items() if "running" not in n
               and "num_batches" not in n)  # the frozen copy's weights never move (its BN statistics follow the data)
    table = pd.read_csv(scores, sep="\t")
    assert table.role.value_counts().to_dict() == {"finetune": 2, "forgetting": 1}
    assert table.sdice.between(0, 1).all()
    moved = pd.read_csv(changes, sep="\t").query("strategy == 'spottune'")
    assert len(moved) == len(networks.build("unet2d_residual", width=0.5).blocks())  # its fine-tuned copy, block by block
    assert (moved.relative_change > 0).any()


SUBSET_ARMS = """\
strategies:  # tiny.yaml's arms; its BN-eval twin and a new arm on the pairs from siemens_15 only
  ft_all: {}
  ft_first: {}
  ft_first_bn_eval: {strategy: ft_first, frozen_bn: eval, budgets: [every4], sources: [siemens_15]}
  bn_stats: {}
  l2sp: {budgets: [every4], sources: [siemens_15]}
"""


def test_arms_on_fewer_pairs_run_score_and_compare_only_there(tiny_run, tmp_path):
    """strategies.<arm>.sources/targets: an arm runs, is scored and is tested against its twin on its own pairs, and
    with one job per arm, that job covers the arm's pairs only."""
    workdir, _, planned = planned_with_overlay(tiny_run, tmp_path, SUBSET_ARMS)
    # l2sp from siemens_15 into 2 targets, a job each; ft_first_bn_eval's 2 jobs into them lose a pair and rerun whole
    assert planned["finetune"] == 2 + 2 and planned["score_finetune"] == 2 + 2
    result = snakemake(workdir, configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    scores = pd.read_csv(workdir / "results/scores/scores.tsv", sep="\t", dtype={"budget": str})
    finetuned = scores[scores.role == "finetune"]

    def pairs(arm):
        return set(zip(finetuned[finetuned.strategy == arm].source, finetuned[finetuned.strategy == arm].target))

    ours = {("siemens_15", "siemens_3"), ("siemens_15", "ge_15")}
    assert pairs("l2sp") == ours and pairs("ft_first_bn_eval") == ours and len(pairs("ft_all")) == 6
    tests = pd.read_csv(workdir / "results/tables/unet2d_residual/batchnorm_tests.tsv", sep="\t")
    assert set(zip(tests.source, tests.target)) == ours  # ft_first vs its eval twin where both ran
    gap = (workdir / "results/tables/unet2d_residual/gap_closed.md").read_text()
    assert "l2sp (2 pairs)" in gap and "ft_first_bn_eval (2 pairs)" in gap

    (workdir / "config/per_arm.yaml").write_text("training:\n  finetune_job: strategy\n")
    dry = snakemake(workdir, "-n", "--forceall", configfile=["tiny.yaml", "overlay.yaml", "per_arm.yaml"])
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = planned_jobs(dry.stdout)
    assert planned["finetune"] == 5 and planned["score_finetune"] == 5  # one per arm, on the pairs it runs
    jobs = [block.split("\n\n")[0] for block in dry.stdout.split("\nrule finetune:")[1:]]
    l2sp = next(job for job in jobs if "output: results/models/unet2d_residual/finetune/l2sp\n" in job)
    assert "siemens_15/seed0/model.pt" in l2sp and "siemens_3/seed0/model.pt" not in l2sp  # from siemens_15 only


SCRATCH_ARMS = """strategies:
  ft_all: {}
  ft_first: {}
  scratch_target: {targets: [siemens_3], budgets: [every4]}
  scratch_joint: {targets: [siemens_3], budgets: [every4]}
"""


def test_scratch_arms_read_no_source_model_train_with_the_source_recipe_and_enter_the_paper_view(tiny_run, tmp_path):
    workdir, dry, planned = planned_with_overlay(tiny_run, tmp_path, SCRATCH_ARMS)
    assert planned["finetune"] == 2 and planned["score_finetune"] == 2  # the two scratch jobs into siemens_3
    jobs = [block.split("\n\n")[0] for block in dry.split("\nrule finetune:")[1:]]
    assert len(jobs) == 2 and not any("/source/" in job for job in jobs)  # no source model among their inputs
    joint = next(job for job in jobs if "finetune/scratch_joint/" in job)
    assert "scan_sets/siemens_15/source_train" in joint and "scan_sets/ge_15/source_train" in joint
    result = snakemake(workdir, configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    source_recipe = yaml.safe_load((workdir / "config/tiny.yaml").read_text())["training"]["source"]
    record = json.loads((workdir / "results/models/unet2d_residual/finetune/scratch_target/to_siemens_3/"
                                   "siemens_15_to_siemens_3/every4/seed0/record.json").read_text())
    assert record["identity"]["recipe"].items() >= source_recipe.items()  # not the fine-tuning recipe's 2 × 2 at 1e-3
    assert len(record["losses"]) == source_recipe["epochs"]
    scores = pd.read_csv(workdir / "results/scores/scores.tsv", sep="\t", dtype={"budget": str})
    for arm in ("scratch_target", "scratch_joint"):  # the target's 2 sources, each its own run
        rows = scores[(scores.strategy == arm) & (scores.role == "finetune")]
        assert set(zip(rows.source, rows.target, rows.budget)) == {("siemens_15", "siemens_3", "every4"),
                                                                   ("ge_15", "siemens_3", "every4")}
    weights = pd.read_csv(workdir / "results/stats/unet2d_residual/weight_change.tsv", sep="\t")
    assert set(weights.strategy) == {"ft_all", "ft_first"}  # moved from a source model: only the fine-tunes
    claims = (workdir / "results/tables/paper_vs_ours.md").read_text()
    assert "fine-tuning all layers beats training from scratch on the target's budget only — at every4" in claims
    assert "fine-tuning all layers beats training from scratch on source and target data jointly — at every4" in claims


def test_size_variants_train_their_own_networks_and_add_the_size_figure(tiny_run, tmp_path):
    workdir, dry, planned = planned_with_overlay(tiny_run, tmp_path,
                                                 "models:\n  sizes: [{}, {width: 0.25}, {levels: 3}]\n")
    assert planned["train_source"] == 2 * 3 and planned["finetune"] == 2 * 14 and planned["size_effects"] == 1
    assert "unet2d_residual_w0.25/source/ge_15" in dry and "unet2d_residual_l3/oracle/ge_15" in dry
    trained = [line for line in dry.splitlines() if line.strip().startswith("output: results/models/")]
    assert not any("results/models/unet2d_residual/" in line for line in trained)  # the study's own size: all done
    model = workdir / "results/models/unet2d_residual_l3/source/ge_15/seed0/model.pt"
    result = snakemake(workdir, str(model.relative_to(workdir)), configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(model, weights_only=True)
    assert (saved["arch"], saved["width"], saved["levels"]) == ("unet2d_residual", 0.5, 3)
    assert "encoder.2.0.body.0.0.weight" not in saved["model"] and "encoder.1.0.body.0.0.weight" in saved["model"]


def test_an_arm_mixing_in_source_slices_declares_its_sources_training_scans(tiny_run):
    (tiny_run / "config/mmtl.yaml").write_text("strategies:\n  mmtl: {}\n  ft_all: {}\nsplits:\n  budgets: [every4]\n")
    dry = snakemake(tiny_run, "-n", "--forceall", configfile=["tiny.yaml", "mmtl.yaml"])
    assert dry.returncode == 0, dry.stderr[-2000:]
    splits = json.loads((tiny_run / "results/data/splits.json").read_text())["domains"]
    jobs = {block.split("output: ")[1].split("\n")[0]: block.split("input: ")[1].split("\n")[0]
            for block in dry.stdout.split("rule finetune:")[1:]}
    mixed = jobs["results/models/unet2d_residual/finetune/mmtl/to_ge_15"]
    plain = jobs["results/models/unet2d_residual/finetune/ft_all/to_ge_15"]
    assert "scan_sets/siemens_15/source_train" in mixed and "scan_sets/siemens_3/source_train" in mixed  # mmtl: its
    # sources' training scans
    assert "scan_sets/" not in plain  # ft_all: the budget's scans only
    for case in splits["ge_15"]["budgets"]["every4"]["scans"]:
        assert f"preprocessed/{case}_image" in plain and f"resampled/{case}_mask" in mixed
    # the set holds exactly the source training scans: never the held-out scans, forgetting's reference
    held = sorted(p.name for p in (tiny_run / "results/data/scan_sets/siemens_15/source_train").iterdir()
                  if not p.name.startswith("."))  # Snakemake's .snakemake_timestamp
    assert held == sorted(f"{case}_{kind}.nii.gz" for case in splits["siemens_15"]["source"]["train"]
                          for kind in ("image", "mask"))


def test_intensity_references_are_computed_only_for_the_arms_that_read_them(tiny_run):
    (tiny_run / "config/adabn_only.yaml").write_text("test_time:\n  adabn: {}\n")
    dry = snakemake(tiny_run, "-n", "--forceall", configfile=["tiny.yaml", "adabn_only.yaml"])
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = planned_jobs(dry.stdout)
    assert planned["adapt_score"] == 3 and "intensity_reference" not in planned and "train_source_normalized" \
        not in planned  # adabn into 3 targets reads neither a reference nor a normalized source model


def test_bad_config_stops_with_the_key(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "config/bad.yaml").write_text("splits:\n  budgets: [half]\n")
    result = snakemake(tmp_path, "-n", configfile="bad.yaml")
    assert result.returncode != 0
    assert "config key 'splits.budgets.0': 'half' does not match" in result.stderr + result.stdout
    (tmp_path / "config/bad.yaml").write_text("strategies:\n  ft_all: {budgets: [5scans]}\n")
    result = snakemake(tmp_path, "-n", configfile="bad.yaml")
    assert result.returncode != 0
    assert "config key 'strategies.ft_all': 'budgets: ['5scans']' must be a non-empty list of the study's budgets" in (
        result.stderr + result.stdout)


def test_bad_data_fails_listing_every_bad_case(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    assert snakemake(tmp_path, "resources/synthetic_cc359").returncode == 0
    folder = tmp_path / "resources/synthetic_cc359"
    next((folder / "Silver-standard").glob("CC0121_*")).unlink()
    bad = next((folder / "Original").glob("CC0180_*"))
    bad.write_bytes(b"not a nifti")
    result = snakemake(tmp_path, "results/data/integrity.tsv")
    assert result.returncode != 0
    log = (tmp_path / "logs/check_integrity.log").read_text()
    assert "2 bad case(s)" in log and "CC0121" in log and "missing mask" in log and f"{bad.name}: unreadable" in log
    assert not (tmp_path / "results/data/integrity.tsv").exists()
    assert (tmp_path / "results/data/integrity.failed.tsv").exists()


def test_lint_is_clean():
    result = subprocess.run(SNAKEMAKE + ["--lint", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


def test_models_are_compared_two_by_two_and_with_where_they_started(tiny_run):
    """Tables VII and VIII of the FCN study on the tiny study (evaluation.model_similarity: scratch_target, ft_all,
    ft_first on the 4 analysed pairs): every two models of a pair and budget, each model against its start."""
    stats, tables = tiny_run / "results/stats/unet2d_residual", tiny_run / "results/tables/unet2d_residual"
    pairs = pd.read_csv(stats / "model_similarity_pairs.tsv", sep="\t", dtype={"budget": str, "seed_a": str})
    blocks = pairs.block.nunique()
    # every4 from siemens_15: 3 models (3 pairs of them) on 2 pairs; every4 from ge_15: 2 on 2; 2scans: 2 on 4
    assert len(pairs) == (2 * 3 + 2 * 1 + 4 * 1) * blocks
    kinds = pairs.groupby(["arm_a", "arm_b"]).size().div(blocks).to_dict()
    assert kinds == {("scratch_target", "ft_all"): 2, ("scratch_target", "ft_first"): 2, ("ft_all", "ft_first"): 8}
    assert pairs[["cka", "pwcca"]].stack().between(0, 1 + 1e-9).all()
    initial = pd.read_csv(stats / "model_similarity_initial.tsv", sep="\t", dtype={"budget": str})
    assert len(initial) == (2 + 8 + 8) * blocks  # scratch_target's 2, ft_all's and ft_first's 4 pairs × 2 budgets
    assert set(initial[initial.strategy == "scratch_target"].start) == {"random initialisation"}
    assert set(initial[initial.strategy != "scratch_target"].start) == {"source model"}
    reuse = pd.read_csv(tables / "feature_reuse.csv")
    # per measure: 2 pairs × 2 transfer arms, and their mean over pairs
    assert len(reuse) == 2 * (2 * 2 + 2) and set(reuse.scratch) == {"scratch_target"}
    row = reuse[(reuse.measure == "pwcca") & (reuse.pair == "siemens_15 → siemens_3") & (reuse.transfer == "ft_all")]
    start = initial[(initial.target == "siemens_3") & (initial.source == "siemens_15") & (initial.budget == "every4")]
    by_arm = start[start.block == "bottleneck.2"].set_index("strategy").pwcca
    assert row["bottleneck.2"].item() == pytest.approx(by_arm["ft_all"] - by_arm["scratch_target"])
    text = (tables / "model_similarity.md").read_text()
    assert "scratch_target vs ft_all" in text and "± " in text and "| bottleneck.2" in text.replace("  ", " ")
    tests = pd.read_csv(tables / "model_similarity_tests.tsv", sep="\t", dtype={"budget": str})
    assert len(tests) == 3 * 2 * blocks and set(tests.budget) == {"every4"}  # its 3 kinds two by two; 2 measures
    assert tests.p.between(0, 1).all() and (tests.n_first + tests.n_second).isin([4, 6]).all()
