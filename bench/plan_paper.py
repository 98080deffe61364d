"""The full study (config/paper.yaml): planning time and jobs per rule, and its GPU-hours from measured throughput.

    .venv/bin/python bench/plan_paper.py                                   # plan + estimate from the H100 figures
    .venv/bin/python bench/plan_paper.py --throughput my_gpu.json --switches defaults+compile --no-plan

Planning runs `snakemake -n --configfile config/paper.yaml config/plan-only.yaml` in a scratch directory (so no
earlier results count: everything is planned) and prints the wall time and the jobs per rule.

The estimate is `mrishift plan`'s (mrishift.cost: its docstring lists the assumptions), on one throughput file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mrishift.plan import Plan, bill, load_config

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_COST = "DART20: 'about 4 hours' per 100-epoch training on a V100, the study on the order of 750 V100-hours"


def plan() -> None:
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
    print(f"planned in {seconds:.1f} s (snakemake -n, this machine)\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config/paper.yaml")
    parser.add_argument("--throughput", type=Path, default=ROOT / "bench/measured/h100-2026-11-22.json")
    parser.add_argument("--switches", default="defaults", help="a switch setting of the throughput file")
    parser.add_argument("--plan", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.plan:
        plan()
    study = Plan(load_config([args.config], ROOT / "config/config.yaml"))
    throughput = json.loads(args.throughput.read_text())
    print(bill(study, throughput, args.switches, args.config.name))
    print(f"({ORIGINAL_COST}; assumptions: the docstring of src/mrishift/cost.py)")


if __name__ == "__main__":
    main()
