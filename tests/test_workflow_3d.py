"""The 3D U-Net through the same rules as the 2D one, on one pair of config/tiny.yaml (config/volumetric.yaml). (Its
own file, so that pytest-xdist runs it beside the other workflow tests.)"""

import json

import one_pair
import pandas as pd
import pytest
import torch
from workflow_runs import ROOT, planned_with_overlay, snakemake

from mrishift.evaluation import scoring
from mrishift.models import networks

pytestmark = pytest.mark.workflow


def test_the_3d_unet_runs_the_study_through_the_same_rules(tiny_run, tmp_path):
    """unet3d_residual as an architecture of the tiny study on one pair (config/volumetric.yaml): trained on patches
    (the budget's labelled slices, the rest of each patch ignored), scored by sliding windows, analysed block by block
    like the 2D network."""
    workdir, _, planned = planned_with_overlay(tiny_run, tmp_path, (ROOT / "config/volumetric.yaml").read_text())
    assert planned["train_source"] == 3 and planned["train_oracle"] == 9  # the 3D variant's; the 2D ones exist
    # ft_all, ft_first, bn_stats, ft_first_bn_eval, scratch_target on the one pair; the 2D variant's 4 jobs into
    # siemens_3 lose a pair (one pair now) and rerun whole, to the same weights (scratch_target's keeps its one pair)
    assert planned["finetune"] == 5 + 4
    result = snakemake(workdir, configfile=["tiny.yaml", "overlay.yaml"])
    assert result.returncode == 0, result.stderr[-3000:]
    models_dir = workdir / "results/models/unet3d_residual"
    saved = torch.load(models_dir / "finetune/ft_first/to_siemens_3/siemens_15_to_siemens_3/every4/seed0/model.pt",
                       weights_only=True)
    assert (saved["arch"], saved["window"]) == ("unet3d_residual", [32, 32, 32])
    assert saved["model"]["init.weight"].shape == (8, 1, 3, 3, 3)
    record = json.loads((models_dir / "source/siemens_15/seed0/record.json").read_text())
    assert (record["recipe"]["patch_size"], record["recipe"]["batch_size"]) == ([32, 32, 32], 2)
    assert len(record["losses"]) == 2 and 0 <= record["validation"][-1]["sdice"] <= 1
    scores = pd.read_csv(workdir / "results/scores/scores.tsv", sep="\t", dtype={"budget": str})
    three_d = scores[scores.variant == "unet3d_residual"]
    # test-time: hist_match, adabn, tent on all 6 pairs and the two KL arms on siemens_15's 2, 2 test scans each
    assert three_d.role.value_counts().to_dict() == one_pair.ROWS_PER_ROLE | {"test_time": (3 * 6 + 2 * 2) * 2}
    assert three_d.sdice.between(0, 1).all()
    # the same rules score the same scans for both networks: the 3D variant's rows are the 2D variant's, key for key
    keys = [column for column in scoring.IDENTITY_COLUMNS if column != "variant"] + ["case"]
    two_d = scores[scores.variant == "unet2d_residual"]
    assert sorted(map(tuple, three_d[keys].astype(str).values)) == sorted(map(tuple, two_d[keys].astype(str).values))
    similarity = pd.read_csv(workdir / "results/stats/unet3d_residual/similarity.tsv", sep="\t")
    assert similarity.block.nunique() == len(networks.build("unet3d_residual", width=0.5).blocks())
    assert similarity.cka.between(0, 1 + 1e-6).all()
    assert (workdir / "results/tables/unet3d_residual/gap_closed.md").exists()
