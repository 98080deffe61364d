"""The cluster profile against a real single-node SLURM (munged + slurmctld + slurmd on localhost).

The fixture installs Debian's slurm-wlm and munge when they are missing, starts the daemons with a private
slurm.conf in /etc/slurm, removed afterwards (no accounting, fake `gres` GPUs so GPU requests are scheduled for real), and stops exactly the daemons
it started, by PID. It skips only where it cannot run at all: not root, or no apt-get to install SLURM with; in CI (MRISHIFT_CI)
it fails there instead.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import one_pair
import pandas as pd
import pytest
import yaml
from needs import missing

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.workflow, pytest.mark.slurm]
SLURM_PORTS = (6917, 6918)  # not the defaults, so a site SLURM on this machine is left alone
# The node offers each CPU twice, and as many fake GPUs (config_overrides: slurmd takes the configured counts): a
# job's start-up (Snakemake and torch imports) and the status polling's lag (the plugin adds 10 s to its interval
# after every round in which nothing finished) leave a CPU idle, which a second job in flight uses.
SLOTS_PER_CPU = 2

CONF_DIR = Path("/etc/slurm")
MARKER = "# written by mrishift tests/test_slurm.py"
SLURM_CONF = MARKER + """
ClusterName=mrishifttest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=7200
GresTypes=gpu
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
SlurmdSpoolDir={run}/slurmd
StateSaveLocation={run}/slurmctld
SlurmctldLogFile={run}/slurmctld.log
SlurmdLogFile={run}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 Gres=gpu:{cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
GRES_CONF = MARKER + "\nAutoDetect=off\nName=gpu File=/dev/tty[0-{last}]\n"  # fake GPUs, one per slot


def _run(*command, env=None, check=True, timeout=120):
    return subprocess.run(command, capture_output=True, text=True, env=env, check=check, timeout=timeout)


def _install_slurm():
    if all(shutil.which(c) for c in ("sbatch", "slurmctld", "slurmd", "munged")):
        return
    if os.geteuid() != 0:
        missing("SLURM is not installed and installing it needs root")
    if not shutil.which("apt-get"):
        missing("SLURM is not installed and there is no apt-get to install it with")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run("apt-get", "update", "-qq", env=env, timeout=600)
    _run("apt-get", "install", "-y", "-qq", "slurm-wlm", "munge", env=env, timeout=900)


def _munge_works():
    if not shutil.which("munge"):
        return False
    encoded = subprocess.run(["munge", "-n"], capture_output=True)
    return encoded.returncode == 0 and subprocess.run(["unmunge"], input=encoded.stdout,
                                                      capture_output=True).returncode == 0


def _wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """Environment for a running single-node cluster; every daemon started here is stopped after."""
    if os.geteuid() != 0:
        missing("slurmctld/slurmd/munged must run as root in this single-node set-up")
    _install_slurm()
    # The config must sit where every SLURM command finds it, srun inside a job included (SLURM_CONF does not reach
    # job steps): /etc/slurm. A config that is not ours means a real cluster; it is never overwritten.
    conf, gres = CONF_DIR / "slurm.conf", CONF_DIR / "gres.conf"
    for path in (conf, gres):
        if path.exists() and MARKER not in path.read_text():
            missing(f"{path} belongs to another SLURM set-up; not overwriting it")
    run = tmp_path_factory.mktemp("slurm")
    for sub in ("slurmd", "slurmctld"):
        (run / sub).mkdir()
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    conf.write_text(SLURM_CONF.format(run=run, ctld_port=SLURM_PORTS[0], slurmd_port=SLURM_PORTS[1],
                                      cpus=SLOTS_PER_CPU * os.cpu_count()))
    gres.write_text(GRES_CONF.format(last=SLOTS_PER_CPU * os.cpu_count() - 1))
    env = dict(os.environ)
    started: list[Path] = []  # pid files of the daemons this fixture started
    try:
        if not _munge_works():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            pid_file = Path("/run/munge/mrishift-test.pid")  # munged runs as munge: it cannot reach pytest's tmp
            _run("su", "-s", "/bin/sh", "munge", "-c", f"/usr/sbin/munged --pid-file={pid_file}")
            started.append(pid_file)
            _wait_for(_munge_works, "munged")
        _run("/usr/sbin/slurmctld", "-i", "-f", str(conf), env=env)
        started.append(run / "slurmctld.pid")
        _run("/usr/sbin/slurmd", "-N", "localhost", "-f", str(conf), env=env)
        started.append(run / "slurmd.pid")
        _wait_for(lambda: _run("sinfo", "-h", "-o", "%t", env=env, check=False).stdout.strip() == "idle",
                  "the SLURM node to become idle")
        yield env
    finally:
        for pid_file in reversed(started):
            _stop(pid_file)
        conf.unlink(missing_ok=True)
        gres.unlink(missing_ok=True)


def _stop(pid_file: Path):
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        _wait_for(lambda: not Path(f"/proc/{pid}").exists(), f"pid {pid} to stop", timeout=20)
    except ProcessLookupError:
        pass
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def test_profile_name_resolves_from_the_repository_root():
    # Snakemake 9 looks for a bare profile name in the working directory: `slurm` there links to profiles/slurm
    assert (ROOT / "slurm").resolve() == (ROOT / "profiles" / "slurm").resolve()
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["default-resources"]["slurm_account"]


def test_bare_profile_name_loads_the_slurm_profile(tmp_path):
    """`snakemake --profile slurm` from the root, in the environment the README installs (no conda), plans the study
    with profiles/slurm: its site placeholders show in the planned jobs' resources."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--configfile",
                             "config/tiny.yaml", "--directory", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "slurm_account=CHANGE_ME, slurm_partition=CHANGE_ME_CPU" in output, output[-2000:]


def test_profile_requests_gpus_only_for_gpu_rules():
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert "gpu" not in profile["default-resources"] and "gres" not in profile["default-resources"]
    gpu_rules = {"train_source", "train_oracle", "finetune", "score_oracle", "score_baseline",
                 "score_finetune", "train_source_normalized", "adapt_score", "prediction_qc", "similarity"}
    # GPU partition; the rules themselves declare gpu=1 (a CPU rule's entry sets its memory only)
    assert {rule for rule, r in profile["set-resources"].items() if "slurm_partition" in r} == gpu_rules
    assert all(r["slurm_partition"] == "CHANGE_ME_GPU" for r in profile["set-resources"].values() if "slurm_partition" in r)


def test_every_grouped_rule_runs_in_series_within_its_group():
    """A group job runs its jobs one at a time, so each grouped rule takes the one `group_serial` of its group's pool
    (scope local: a pool per submitted job, not one across the cluster). Snakemake's own layout of a group of 30 scans
    from the profile's values then asks for one job's memory and CPUs and 60 jobs' runtime."""
    from types import SimpleNamespace

    from snakemake.resources import GroupResources, Resource, Resources

    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["resources"] == ["group_serial=1"] and profile["set-resource-scopes"] == ["group_serial=local"]
    grouped = {entry.split("=")[0] for entry in profile["groups"]}
    assert grouped == {"resample", "scale_intensity"}
    assert all(profile["set-resources"][rule]["group_serial"] == 1 for rule in grouped)
    scans = int(next(c for c in profile["group-components"] if c.startswith("preprocess=")).split("=")[1])
    levels = [[SimpleNamespace(resources={"_cores": 1, **profile["set-resources"][rule]}, pipe_group=None)
               for _ in range(scans)] for rule in ("resample", "scale_intensity")]
    group = GroupResources.basic_layered(levels, constraints=Resources({"group_serial": Resource("group_serial", 1)}),
                                         run_local=False, additive_resources=["runtime"], sortby=["runtime"])
    assert (group["mem_mb"], group["cpus_per_task"], group["runtime"]) == (1000, 1, 60)


def test_tiny_config_through_slurm(slurm_cluster, tmp_path):
    """The tiny study through sbatch with the shipped profile; only the site values are overridden."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    # The shipped `jobs: 100` stays: every ready job is queued at once, so SLURM starts the next one as soon as a slot
    # frees rather than at Snakemake's next status check (the plugin adds 10 s to its interval after every check in
    # which nothing finished).
    profile.update({"latency-wait": 5,
                    "slurm-status-command": "squeue",  # no accounting → no sacct
                    "slurm-init-seconds-before-status-checks": 1, "slurm-logdir": str(tmp_path / "logs/slurm"),
                    "slurm-keep-successful-logs": True})
    profile["default-resources"].update(slurm_account="test", slurm_partition="debug", mem_mb=400, cpus_per_task=1)
    # A group job runs its jobs one at a time (the plugin starts it with --jobs 1), each restarting Snakemake: the
    # tiny study's 12 scans in one preprocessing job took 3.6 of its 11 min. Here 4 scans a job: the two domains' 8
    # in 2 jobs at once.
    profile["group-components"] = [c if not c.startswith("preprocess=") else "preprocess=4"
                                   for c in profile["group-components"]]
    for resources in profile["set-resources"].values():
        resources.update(mem_mb=400, **({"slurm_partition": "debug", "cpus_per_gpu": 1}
                                        if "slurm_partition" in resources else {}))
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile/config.yaml").write_text(yaml.safe_dump(profile))
    shutil.copytree(ROOT / "config", tmp_path / "config")
    # Every rule on one pair and its two domains (tests/one_pair.py; the tiny workflow tests run every pair and arm).
    # Each SLURM job starts Snakemake twice (sbatch, then srun) and torch, ~10 s on 2 cores: the pair on the tiny
    # study's 3 domains took 332 s here (41 SLURM jobs), on its 2 domains 259 s (33).
    (tmp_path / "config/one_pair.yaml").write_text(one_pair.OVERLAY)
    (tmp_path / "config/two_domains.yaml").write_text(one_pair.TWO_DOMAINS)

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(tmp_path / "profile"), "--snakefile",
         str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(tmp_path / "config/tiny.yaml"),
         str(tmp_path / "config/one_pair.yaml"), str(tmp_path / "config/two_domains.yaml")],
        capture_output=True, text=True, env={**slurm_cluster, "PATH": f"{Path(sys.executable).parent}:"
                                                                        f"{os.environ['PATH']}"}, timeout=1500)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-5000:]
    print(f"tiny config through SLURM: {wall:.0f} s")

    scores = pd.read_csv(tmp_path / "results/scores/scores.tsv", sep="\t")
    assert scores.role.value_counts().to_dict() == one_pair.ROWS_PER_ROLE_TWO_DOMAINS
    assert scores.sdice.between(0, 1).all()
    assert (tmp_path / "results/figures/unet2d_residual/winners.png").exists()
    submitted = result.stderr.count("has been submitted with SLURM jobid")
    assert 10 < submitted < 98  # every non-local job went through sbatch, short ones grouped

    jobs = _run("scontrol", "show", "job", "--oneliner", env=slurm_cluster).stdout.splitlines()
    ours = [j for j in jobs if "Comment=rule_" in j]  # the plugin names the rule (or group job) in the comment

    def rule_of(job: str) -> str:
        return job.split("Comment=rule_")[1].split("_wildcards")[0].split()[0]

    def names(with_gpu: bool) -> set[str]:
        return {rule_of(j) for j in ours if ("gres:gpu" in j) == with_gpu}

    gpu, cpu = names(True), names(False)
    # group jobs are named <group>_<rules>: preprocess_resample_scale_intensity
    assert {"train_source", "train_oracle", "finetune", "score_oracle", "score_baseline",
            "score_finetune", "train_source_normalized", "adapt_score", "prediction_qc",
            "similarity"} <= gpu, (gpu, cpu)
    assert {"synthesize_cc359", "check_integrity", "preprocess_resample_scale_intensity",
            "intensity_reference", "data_qc", "weight_change"} <= cpu, (gpu, cpu)
    assert not gpu & cpu
    local = {"make_splits", "scan_set", "collect_scores", "analyse", "figures", "convergence", "paper_view",
             "paper_vs_ours"}  # localrules: not queued
    assert not local & (gpu | cpu)  # (they ran: their outputs, scores.tsv and the figures, are checked above)
    assert all("JobState=COMPLETED" in j for j in ours)
    # a preprocessing group runs its jobs in series (the plugin's --jobs 1), and asks for that: one job's memory and
    # CPUs, the sum of its jobs' runtimes (4 scans: 8 jobs of 1 min), not 4 jobs' memory at once (group_serial)
    groups = [j for j in ours if rule_of(j) == "preprocess_resample_scale_intensity"]
    assert len(groups) == 2, groups
    for job in groups:
        assert ("MinMemoryNode=400M" in job and " NumCPUs=1 " in job and "TimeLimit=00:08:00" in job), job
    # the oracles queue behind everything else (the profile's --nice): every fine-tune waits for a source model only
    nice = {}
    for job in ours:
        nice.setdefault(rule_of(job), set()).add(job.split(" Nice=")[1].split()[0])
    assert (nice["train_oracle"], nice["train_source"], nice["finetune"]) == ({"1000"}, {"0"}, {"0"}), nice
