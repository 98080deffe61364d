"""Faults injected into the workflow on config/tiny.yaml: the whole workflow killed -9 twice, and a scan gone bad on
disk under --keep-going. (Its own file, so that pytest-xdist runs it beside the other workflow tests.)"""

import json
import os
import shutil
import signal
import subprocess
import time

import one_pair
import pandas as pd
import pytest
from workflow_runs import ENV, ROOT, planned_jobs, snakemake, snakemake_command, study_copy, write_changed_config

pytestmark = pytest.mark.workflow


def _kill_when(process, ready, timeout=600):
    """kill -9 the whole Snakemake process group once ``ready()`` holds (a crash, an OOM kill, a lost node)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the workflow finished before the fault could be injected"
        assert time.monotonic() < deadline, "the fault point was never reached"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_twice_the_workflow_resumes_to_the_same_scores(request, tmp_path):
    """kill -9 in the middle of training, then in the middle of scoring; --unlock and the same command finish, and
    every per-scan score equals the uninterrupted run's exactly. On one pair and its two domains (every rule, 67 of the
    tiny study's 122 jobs): each run's numbers depend on its identity only, so they must equal the same runs' rows of
    the whole tiny study."""
    workdir = tmp_path / "faults"
    shutil.copytree(ROOT / "config", workdir / "config")
    (workdir / "config/one_pair.yaml").write_text(one_pair.OVERLAY)
    (workdir / "config/two_domains.yaml").write_text(one_pair.TWO_DOMAINS)
    command = snakemake_command(workdir, "--rerun-incomplete",
                                configfile=["tiny.yaml", "one_pair.yaml", "two_domains.yaml"])

    def start():  # a process group of its own, to kill whole
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env=ENV)

    # A run between two epochs: a saved checkpoint, not the hidden temporary file one is being written to (a kill
    # there leaves no checkpoint, and the run rightly starts over).
    saved_checkpoints = lambda: [p for p in (workdir / "results/checkpoints").glob("**/*.pt")
                                 if not p.name.startswith(".")]
    _kill_when(start(), lambda: bool(saved_checkpoints()))
    interrupted = [str(p.relative_to(workdir)) for p in saved_checkpoints()]  # a finished job deletes its own
    assert interrupted
    unlock = subprocess.run(command + ["--unlock"], capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    scored = lambda: any((workdir / "results/scores").glob("*/finetune/**/*.tsv"))
    _kill_when(start(), lambda: scored() and not (workdir / "results/scores/scores.tsv").exists())
    assert subprocess.run(command + ["--unlock"], capture_output=True).returncode == 0
    finished = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert finished.returncode == 0, finished.stderr[-3000:]

    resumed_scores = pd.read_csv(workdir / "results/scores/scores.tsv", sep="\t", dtype=str)
    assert resumed_scores.role.value_counts().to_dict() == one_pair.ROWS_PER_ROLE_TWO_DOMAINS
    tiny_run = request.getfixturevalue("tiny_run")  # only now: this test's own runs need not wait for it
    uninterrupted = pd.read_csv(tiny_run / "results/scores/scores.tsv", sep="\t", dtype=str)
    found = resumed_scores.merge(uninterrupted, how="left", indicator=True)  # every column compared as text: exactly
    assert (found._merge == "both").all(), found[found._merge != "both"].head().to_string()
    resumed = [line for log in (workdir / "logs").glob("**/*.log") for line in log.read_text().splitlines()
               if "resumed from" in line]
    for checkpoint in interrupted:  # every killed run went on from its epoch checkpoint, not from scratch
        assert any(checkpoint in line for line in resumed), (checkpoint, resumed)


def test_keep_going_keeps_every_other_result_and_reruns_only_the_failed_jobs(tiny_run, tmp_path):
    """A scan that went bad on disk after preprocessing (truncated, its time stamp kept, so nothing replans because of
    it) under --keep-going: a new arm's job that reads it fails naming the file, the arm's other jobs finish and
    keep their results; with the file restored, only the failed job and its dependants run."""
    workdir = study_copy(tiny_run, tmp_path / "copy")
    write_changed_config(workdir, lambda config: config["strategies"].update(ft_last={}))
    test_scan = json.loads((workdir / "results/data/splits.json").read_text())["domains"]["ge_15"]["test"][0]
    # the file the scoring jobs read: ge_15's test set (in a study, a hard link to the preprocessed image; in this
    # copy of one, a copy of it)
    image = workdir / f"results/data/scan_sets/ge_15/test/{test_scan}_image.nii.gz"
    original, stamp = image.read_bytes(), image.stat()
    image.write_bytes(original[: len(original) // 2])
    os.utime(image, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))

    failed = snakemake(workdir, "--keep-going", configfile="changed.yaml")
    assert failed.returncode != 0
    scores = sorted((workdir / "results/scores/unet2d_residual/finetune/ft_last").glob("*.tsv"))
    assert [path.stem for path in scores] == ["to_siemens_15", "to_siemens_3"]  # 2 of its 3 scoring jobs
    assert len(list((workdir / "results/models/unet2d_residual/finetune/ft_last").glob("*/*/*/seed0/model.pt"))) == 12
    assert image.name in (workdir / "logs/score_finetune/unet2d_residual/ft_last/to_ge_15.log").read_text()
    assert "Error in rule score_finetune" in failed.stderr

    image.write_bytes(original)
    os.utime(image, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    dry = snakemake(workdir, "-n", configfile="changed.yaml")
    # similarity read the bad scan too (a ge_15 test scan of an analysed pair); prediction_qc waits for the scores
    assert planned_jobs(dry.stdout) == {"score_finetune": 1, "similarity": 1, "collect_scores": 1, "analyse": 1,
                                        "figures": 1, "forgetting": 1, "paper_view": 1, "paper_vs_ours": 1,
                                        "prediction_qc": 1, "test_time_loss": 1, "all": 1}
