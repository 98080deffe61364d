"""What each job used (mrishift.usage): the records the tiny study's jobs wrote, their known counts of work, the table
and resources collected from them; and memory that stays bounded as a scoring job handles more models and scans."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ball, write_nifti

from mrishift import cli, usage
from mrishift.evaluation.scoring import ScanCache, read_scores

ROOT = Path(__file__).resolve().parents[1]


def test_every_job_of_the_tiny_study_recorded_what_it_used(tiny_run, tmp_path, capsys):
    records = usage.collect(tiny_run / "logs")
    logs = {str(p) for p in (tiny_run / "logs").rglob("*.log")}
    assert {r["record"].removesuffix(usage.SUFFIX) for r in records} == logs  # every job's log has its record
    # each job's own peak: any Python process holds > 10 MB (scan_set's ~27 MB), one that runs torch > 300 MB
    assert all(r["complete"] and r["wall_s"] > 0 and r["peak_rss_mb"] > 10 and r["gpu_peak_mb"] is None
               for r in records)
    assert all(r["peak_rss_mb"] > 300 for r in records if r["rule"] in ("train_source", "score_finetune"))
    by_rule = pd.DataFrame(records).groupby("rule")
    # known counts of work: one scan per preprocessing job, every case once
    domains = json.loads((tiny_run / "results/data/splits.json").read_text())["domains"]
    assert sorted(r["wildcards"]["case"] for r in records if r["rule"] == "resample") == sorted(
        case for domain in domains.values() for case in domain["cases"])
    assert all(r["work"] == {"scans": 1} for r in records if r["rule"] in ("resample", "scale_intensity"))
    # a source model or an oracle fold: the tiny recipe's 2 epochs × 3 iterations
    assert all(r["work"] == {"steps": 6} for r in records if r["rule"] in ("train_source", "train_oracle"))
    # every scored volume once: the scoring jobs' counts add up to the study's rows
    scores = read_scores(tiny_run / "results/scores/scores.tsv")
    scored = sum(r["work"]["volumes"] for r in records if r["rule"].startswith("score_") or r["rule"] == "adapt_score")
    assert scored == len(scores) > 0
    assert by_rule.size()["collect_scores"] == 1

    table = usage.per_rule(records)
    assert set(table.rule) == set(by_rule.groups)
    row = table.set_index("rule").loc["train_source"]
    assert (row.unit, row.units, row.jobs) == ("steps", 6 * row.jobs, 3)  # three domains
    assert table.set_index("rule").loc["score_finetune", "unit"] == "volumes"
    asked = usage.resources(table, margin=1.5)
    for rule, resources in asked.items():
        peak = table.set_index("rule").loc[rule, "peak_host_mb"]
        assert resources["mem_mb"] % 1000 == 0 and resources["mem_mb"] >= max(1000, 1.5 * peak)

    out = tmp_path / "usage.tsv"
    assert cli.main(["usage", "--logs", str(tiny_run / "logs"), "--out", str(out)]) == 0
    assert "set-resources" in capsys.readouterr().out
    assert len(pd.read_csv(out, sep="\t")) == len(table)
    assert cli.main(["usage", "--logs", str(tmp_path)]) == 2  # no record there


def test_scan_cache_keeps_no_more_than_its_budget(tmp_path):
    files = {}
    for n in range(4):
        mask = ball((16, 16, 8), radius=3 + n % 2).astype(np.uint8)
        files[f"CC{n:04d}"] = (str(write_nifti(tmp_path / f"CC{n:04d}_image.nii.gz", mask * 0.5 + 0.1 * n)),
                               str(write_nifti(tmp_path / f"CC{n:04d}_mask.nii.gz", mask)))
    one_scan = 16 * 16 * 8 * (4 + 1)  # float32 image, boolean mask
    cache = ScanCache(files, max_mb=2.5 * one_scan / 2**20)
    unbounded = ScanCache(files)
    for _ in range(2):
        for case in files:
            image, mask, spacing = cache[case]
            expected = unbounded[case]
            assert np.array_equal(image, expected[0]) and np.array_equal(mask, expected[1]) and spacing == expected[2]
    assert cache.held_bytes == 2 * one_scan  # the first two; the others are read again each time
    assert cache.reads == 2 + 2 * 2 and unbounded.reads == 4 and unbounded.held_bytes == 4 * one_scan


# A scoring job of n width-1 models (6.2 MB of weights each), model i on scan i (128 × 128 × 24: 1.9 MB), peak
# resident memory of a fresh process. Bounded: score_models with a scan cache of 0 MB. Leaky, the control that shows
# the measurement sees growth: the same, keeping every model and scan it read.
SCORING_JOB = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    from mrishift import usage
    from mrishift.evaluation.scoring import ScanCache, score_models
    from mrishift.training.runs import load_model
    torch.set_num_threads(1)
    folder, n, leaky = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "leaky"
    files = {f"CC{i:04d}": (str(folder / f"CC{i:04d}_image.nii.gz"), str(folder / f"CC{i:04d}_mask.nii.gz"))
             for i in range(n)}
    jobs = [({"variant": "v", "role": "finetune", "strategy": "ft_all", "source": "a", "target": "b",
              "budget": "1scan", "seed": str(i), "fold": ""}, str(folder / f"model{i}.pt"), [f"CC{i:04d}"])
            for i in range(n)]
    kept = []
    scans = ScanCache(files, max_mb=None if leaky else 0)
    def load(path, identity):
        model = load_model(path)
        if leaky:
            kept.append(model)
        return model
    table = score_models(jobs, scans, load, tolerance_mm=1.0, batch_size=32, device="cpu")
    assert len(table) == n
    print(usage.peak_rss_mb())  # this process's own high-water mark, not the pytest worker's it was started from
""")


@pytest.fixture(scope="module")
def scoring_inputs(tmp_path_factory):
    import torch

    from mrishift.models import networks
    from mrishift.training.runs import save_model

    folder = tmp_path_factory.mktemp("scoring")
    for i in range(6):
        torch.manual_seed(i)
        save_model(folder / f"model{i}.pt", networks.build("unet2d_residual", width=1.0), "unet2d_residual", 1.0)
        mask = ball((128, 128, 24), radius=40 + i).astype(np.uint8)
        write_nifti(folder / f"CC{i:04d}_image.nii.gz", (mask * 0.6 + 0.2).astype(np.float32))
        write_nifti(folder / f"CC{i:04d}_mask.nii.gz", mask)
    return folder


def peak_mb(folder: Path, n: int, kind: str) -> float:
    # a fixed mmap threshold: glibc otherwise raises it as large blocks are freed, and a heap that keeps freed
    # inference buffers would look like growth
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", SCORING_JOB, str(folder), str(n), kind], env=env,
                            capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def test_a_scoring_job_holds_one_model_and_its_scan_budget_whatever_their_number(scoring_inputs):
    # measured 2026-12-05 (2 and 8 models): bounded 570.3 -> 570.6 MB, leaky 578.9 -> 631.1 MB
    bounded = {n: peak_mb(scoring_inputs, n, "bounded") for n in (2, 6)}
    leaky = {n: peak_mb(scoring_inputs, n, "leaky") for n in (2, 6)}
    held = 4 * (6.2 + 128 * 128 * 24 * 5 / 2**20)  # what 4 more models and scans would hold: ~33 MB
    assert leaky[6] - leaky[2] > 0.6 * held, leaky  # the measurement sees what a job keeps
    assert bounded[6] - bounded[2] < 0.25 * held, bounded
