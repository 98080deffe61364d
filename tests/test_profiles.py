"""The profiles as Snakemake composes them: `--profile slurm` plus the workflow profile profiles/default, which
Snakemake loads on every run and whose keys override the chosen profile's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runs import ENV, SNAKEMAKE

ROOT = Path(__file__).resolve().parents[1]
SLURM_PROFILE = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())

# A job that fails (and fails again on the profile's retry) while a slow one runs; two jobs that wait for the slow one
# only, so they are scheduled after the failure. Each writes the resources its job was given; onstart writes the
# scheduler Snakemake runs with.
THREE_RULES = """
onstart:
    Path("scheduler.txt").write_text(workflow.scheduling_settings.scheduler)

rule all:
    input: "b", "c", "fails"

rule fails:
    output: "fails"
    shell: "exit 1"

rule slow:
    output: "slow"
    shell: "sleep 3; touch {output}"

rule independent:
    input: "slow"
    output: "{name,[bc]}"
    shell: "echo {resources.slurm_partition} {resources.mem_mb} {resources.runtime} > {output}"
"""


def test_a_failing_job_does_not_stop_independent_jobs_under_the_slurm_profile(tmp_path):
    """keep-going, the scheduler and the resources in effect are profiles/slurm's although profiles/default (the
    workflow profile beside the Snakefile, here the repository's own) is loaded too. The executor is the local one:
    which jobs run after a failure is Snakemake's scheduling, the same for every executor."""
    (tmp_path / "Snakefile").write_text("from pathlib import Path\n" + THREE_RULES)
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    result = subprocess.run([*SNAKEMAKE, "--profile", str(ROOT / "profiles/slurm"),
                             "--executor", "local", "--cores", "1"], cwd=tmp_path, capture_output=True, text=True,
                            env=ENV)
    output = result.stdout + result.stderr
    assert "workflow specific profile profiles/default" in output, output[-2000:]  # both profiles were loaded
    assert result.returncode != 0 and not (tmp_path / "fails").exists()
    defaults = SLURM_PROFILE["default-resources"]
    expected = f"{defaults['slurm_partition']} {defaults['mem_mb']} {defaults['runtime']}\n"
    assert (tmp_path / "b").read_text() == (tmp_path / "c").read_text() == expected, output[-2000:]
    assert (tmp_path / "scheduler.txt").read_text() == SLURM_PROFILE["scheduler"]


def test_the_workflow_profile_holds_nothing_that_differs_between_executors():
    workflow_profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    local = yaml.safe_load((ROOT / "profiles/local/config.yaml").read_text())
    assert set(workflow_profile) == {"scheduler", "rerun-incomplete", "show-failed-logs", "printshellcmds"}
    assert all(SLURM_PROFILE[key] == value for key, value in workflow_profile.items())  # no override in effect
    assert (local["cores"], local["keep-going"]) == (2, False) and SLURM_PROFILE["keep-going"] is True


@pytest.fixture
def stand_in_slurm(tmp_path):
    """A PATH whose sbatch, squeue, sacct, sinfo, sacctmgr and scontrol only record that they were called."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for command in ("sbatch", "squeue", "sacct", "sinfo", "sacctmgr", "scontrol"):
        (bin_dir / command).write_text(f'#!/bin/sh\necho "{command} $@" >> {calls}\nexit 0\n')
        (bin_dir / command).chmod(0o755)
    return {**ENV, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}"}, calls


def test_the_slurm_profile_refuses_to_submit_with_placeholder_site_values(tmp_path, stand_in_slurm):
    env, calls = stand_in_slurm
    workdir = tmp_path / "study"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config/tiny.yaml").write_text((ROOT / "config/tiny.yaml").read_text())
    command = [*SNAKEMAKE, "--profile", "slurm", "--configfile", "config/tiny.yaml",
               "--directory", str(workdir)]
    planned = subprocess.run([*command, "-n"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert planned.returncode == 0, planned.stderr[-2000:]  # a dry run still plans

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Nothing was submitted" in output and "Edit profiles/slurm/config.yaml" in output, output[-3000:]
    for line in ('slurm_account = "CHANGE_ME"', 'slurm_partition = "CHANGE_ME_CPU"',
                 'slurm_partition = "CHANGE_ME_GPU"'):
        assert line in output, output[-3000:]
    assert "sbatch" not in (calls.read_text() if calls.exists() else "")
    assert not (workdir / "resources").exists()  # not even a local job ran


def test_placeholder_values_names_each_unset_key_once_with_its_rules():
    from types import SimpleNamespace

    from mrishift.cluster import placeholder_values

    def job(rule, local=False, **resources):
        return SimpleNamespace(rule=SimpleNamespace(name=rule), is_local=local, resources=resources)

    jobs = [job("train", slurm_account="lab", slurm_partition="CHANGE_ME_GPU"),
            job("score", slurm_account="lab", slurm_partition=" "),
            job("resample", slurm_account="", slurm_partition="cpu"),
            job("resample", slurm_partition="cpu"),
            job("analyse", local=True, slurm_account="CHANGE_ME", slurm_partition="CHANGE_ME_CPU")]
    assert placeholder_values(jobs) == {("slurm_account", ""): ["resample"],
                                        ("slurm_partition", " "): ["score"],
                                        ("slurm_partition", "CHANGE_ME_GPU"): ["train"]}
    assert placeholder_values(jobs[:1] + [job("x", slurm_account="lab", slurm_partition="gpu")])  # one is enough
    assert placeholder_values([job("x", slurm_account="lab", slurm_partition="gpu")]) == {}


def test_a_missing_requirement_skips_on_a_laptop_and_fails_in_ci(monkeypatch):
    from needs import CI, missing

    monkeypatch.delenv(CI, raising=False)
    with pytest.raises(pytest.skip.Exception):
        missing("no SLURM")
    monkeypatch.setenv(CI, "1")
    with pytest.raises(pytest.fail.Exception, match="no SLURM"):
        missing("no SLURM")
