"""Planning time and job counts of the full study (config/paper.yaml) without the CC359 data present.

    .venv/bin/python bench/plan_paper.py

Runs `snakemake -n --configfile config/paper.yaml config/plan-only.yaml` in a scratch directory (so no earlier
results are taken into account: everything is planned) and prints the wall time and the jobs per rule.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                   workdir, "--cores", "1", "--configfile", str(ROOT / "config/paper.yaml"),
                   str(ROOT / "config/plan-only.yaml")]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    table = result.stdout.split("Job stats:")[1].split("\n\n")[0]
    print(table.strip())
    print(f"planned in {seconds:.1f} s (snakemake -n, this machine)")


if __name__ == "__main__":
    main()
