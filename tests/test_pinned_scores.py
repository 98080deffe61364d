"""Numbers never change silently: every score of the tiny study (config/tiny.yaml: source, oracle, baseline,
fine-tuned, forgetting and test-time rows of results/scores/scores.tsv) is pinned in tests/reference/tiny_scores.tsv.

A change that moves any score fails here until the reference is rewritten in the same commit, whose message says why
the scores moved:

    MRISHIFT_UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_pinned_scores.py

(never in CI: there the variable is refused). Scores are compared to 1e-6, the tiny study being deterministic on CPU
(same config and seeds, one thread per job)."""

import os

import pandas as pd
import pytest
from needs import CI
from workflow_runs import ROOT

pytestmark = pytest.mark.workflow

REFERENCE = ROOT / "tests/reference/tiny_scores.tsv"
KEYS = ["variant", "role", "strategy", "source", "target", "budget", "seed", "fold", "case"]
SCORES = ["sdice", "dice", "hd95_mm", "assd_mm"]
TOLERANCE = 1e-6
UPDATE = "MRISHIFT_UPDATE_REFERENCE"


def _table(path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype={k: str for k in KEYS}, keep_default_na=False)
    return table[KEYS + SCORES].sort_values(KEYS).reset_index(drop=True)


def test_the_tiny_studys_scores_equal_the_pinned_reference(tiny_run):
    ours = _table(tiny_run / "results/scores/scores.tsv")
    if os.environ.get(UPDATE):
        assert not os.environ.get(CI), f"{UPDATE} rewrites the reference: never in CI"
        ours.to_csv(REFERENCE, sep="\t", index=False, float_format="%.9g")
        pytest.skip(f"rewrote {REFERENCE.relative_to(ROOT)}: commit it with a message that says why the scores moved")
    pinned = _table(REFERENCE)
    how = f"if the change is meant to move scores: {UPDATE}=1 and say why in the commit (tests/test_pinned_scores.py)"
    rows = ours[KEYS].merge(pinned[KEYS], how="outer", indicator=True)
    new, gone = rows[rows._merge == "left_only"], rows[rows._merge == "right_only"]
    assert new.empty and gone.empty, (f"{len(new)} scored rows not in the reference, {len(gone)} pinned rows not "
                                      f"scored:\n{new.head(5)}\n{gone.head(5)}\n{how}")
    moved = (ours[SCORES] - pinned[SCORES]).abs().gt(TOLERANCE) | (ours[SCORES].isna() != pinned[SCORES].isna())
    changed = ours[moved.any(axis=1)].merge(pinned, on=KEYS, suffixes=("", "_pinned"))
    assert changed.empty, (f"{len(changed)} of {len(ours)} scores moved by more than {TOLERANCE}:\n"
                           f"{changed.head(10).to_string()}\n{how}")
