"""What Snakemake's planning costs per job and per declared input on this machine, apart from any workflow of ours.

    .venv/bin/python bench/dag_cost.py                   # the default grid, ~3 min on 2 cores
    .venv/bin/python bench/dag_cost.py --grid 20000:1 5000:100

Each point plans (``snakemake -n``, an empty folder: every job planned) a generated Snakefile of N jobs that each
declare K inputs made by 5,000 producer jobs, and prints the wall time. A least-squares fit of
seconds = fixed + a · jobs + b · (job, input) edges over the grid gives the per-job and per-edge costs, which say
what a plan of the paper's size can take at best (bench/plan_paper.py: its jobs and declared inputs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PRODUCERS = 5000
SNAKEFILE = f"""
N, K = int(config["n"]), int(config["k"])
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule consume:
    input: lambda w: [f"in/{{(int(w.i) * 7 + j) % {PRODUCERS}}}.txt" for j in range(K)]
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
rule produce:
    output: "in/{{j}}.txt"
    shell: "touch {{output}}"
"""


def plan_seconds(jobs: int, inputs_per_job: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        (workdir / "Snakefile").write_text(SNAKEFILE)
        (workdir / "config.yaml").write_text(f"n: {jobs}\nk: {inputs_per_job}\n")
        command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config.yaml"]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", nargs="+", default=["2000:1", "20000:1", "2000:50", "20000:10", "5000:100"],
                        help="JOBS:INPUTS_PER_JOB points to plan")
    args = parser.parse_args()
    rows = []
    print(f"{'jobs':>8} {'inputs/job':>10} {'edges':>9} {'planned in':>10}")
    for point in args.grid:
        consumers, per_job = map(int, point.split(":"))
        jobs = consumers + min(PRODUCERS, consumers * per_job) + 1  # + the producers used + rule all
        edges = consumers * per_job + consumers  # + rule all's inputs
        seconds = plan_seconds(consumers, per_job)
        rows.append((jobs, edges, seconds))
        print(f"{jobs:>8,} {per_job:>10} {edges:>9,} {seconds:>9.1f}s")
    jobs, edges, seconds = map(np.array, zip(*rows))
    design = np.column_stack([np.ones_like(jobs), jobs, edges]).astype(float)
    (fixed, per_job_s, per_edge_s), *_ = np.linalg.lstsq(design, seconds, rcond=None)
    print(f"\nfit: {fixed:.1f} s + {per_job_s * 1e3:.2f} ms per job + {per_edge_s * 1e3:.3f} ms per declared input")


if __name__ == "__main__":
    main()
