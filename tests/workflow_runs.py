"""Running the workflow from a test: the real Snakemake CLI on a folder holding a copy of config/, and the tiny study
(config/tiny.yaml) that the workflow tests read, built once per test session."""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
ENV = {**os.environ, "PYTHONHASHSEED": "0"}  # the workflow's processes, as every test starts them


def snakemake_command(workdir, *args, configfile="tiny.yaml", snakefile=ROOT / "Snakefile") -> list[str]:
    """Snakemake on ``workdir`` with its config/ files ``configfile`` (a name or a list, layered in order), 2 cores."""
    configfiles = [configfile] if isinstance(configfile, str) else configfile
    return SNAKEMAKE + ["--snakefile", str(snakefile), "--directory", str(workdir), "--configfile",
                        *[str(workdir / "config" / name) for name in configfiles], "--cores", "2", *args]


def snakemake(workdir, *args, configfile="tiny.yaml", snakefile=ROOT / "Snakefile"):
    """``snakemake_command`` run to its end, its output captured."""
    return subprocess.run(snakemake_command(workdir, *args, configfile=configfile, snakefile=snakefile),
                          capture_output=True, text=True, env=ENV)


def write_changed_config(workdir, edit) -> None:
    """config/changed.yaml in ``workdir``: its tiny.yaml as ``edit(config)`` leaves it."""
    config = yaml.safe_load((workdir / "config/tiny.yaml").read_text())
    edit(config)
    (workdir / "config/changed.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def planned_jobs(dry_run_output):
    """{rule: count} from the first 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:")[1].split("total")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.strip()}


def tiny_study(tmp_path_factory) -> Path:
    """The finished tiny study. Built once per test session: under pytest-xdist the workflow tests sit in several
    files, which run on different workers; the first worker to ask builds the study, the others wait for it on a lock
    (and fail at once, with its error, if it failed)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: one folder per worker below it
    workdir, done, failed = shared / "tiny_study", shared / "tiny_study.done", shared / "tiny_study.failed"
    with open(shared / "tiny_study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when this worker dies
        if failed.exists():
            pytest.fail(f"the tiny study failed on another worker:\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a worker killed while building it
            shutil.copytree(ROOT / "config", workdir / "config")
            result = snakemake(workdir)
            if result.returncode != 0:
                failed.write_text(result.stderr[-4000:])
                pytest.fail(result.stderr[-4000:])
            done.touch()
    return workdir


def study_copy(study: Path, folder: Path) -> Path:
    """A copy of a finished study to change and run again. Snakemake's locks stay behind: a test on another worker may
    be writing a report in the original at that moment."""
    shutil.copytree(study, folder, symlinks=True,
                    ignore=lambda parent, names: ["locks"] if Path(parent).name == ".snakemake" else [])
    return folder


def planned_with_overlay(study: Path, tmp_path: Path, overlay: str):
    """A copy of the tiny study with ``overlay`` (YAML text) layered over tiny.yaml: (its folder, the dry run's output,
    its planned jobs per rule)."""
    workdir = study_copy(study, tmp_path / "copy")
    (workdir / "config/overlay.yaml").write_text(overlay)
    dry = snakemake(workdir, "-n", configfile=["tiny.yaml", "overlay.yaml"])
    assert dry.returncode == 0, dry.stderr[-2000:]
    return workdir, dry.stdout, planned_jobs(dry.stdout)
