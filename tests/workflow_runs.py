"""Running the workflow from a test: the real Snakemake CLI on a folder holding a copy of config/."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir, *args, configfile="tiny.yaml", snakefile=ROOT / "Snakefile"):
    """Snakemake on ``workdir`` with its config/ files ``configfile`` (a name or a list, layered in order), 2 cores."""
    configfiles = [configfile] if isinstance(configfile, str) else configfile
    command = SNAKEMAKE + ["--snakefile", str(snakefile), "--directory", str(workdir), "--configfile",
                           *[str(workdir / "config" / name) for name in configfiles], "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


def planned_jobs(dry_run_output):
    """{rule: count} from the first 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:")[1].split("total")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.strip()}
