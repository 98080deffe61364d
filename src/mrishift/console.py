"""What a person sees while the workflow runs: a line per finished stage instead of Snakemake's job dumps.

``run_workflow`` runs a command (Snakemake) and writes everything it prints to a log file. On the console: a line
when a rule's last job finishes (the rule's job counts come from Snakemake's "Job stats" table), and inside a long
stage at most one every ``HEARTBEAT_S`` seconds — each with jobs done / total, time elapsed and an ETA (``eta``: each
rule's jobs left × its finished jobs' mean duration, at the parallelism seen so far; rules with no finished job yet
are named, not guessed: a workflow's cheap first hundred jobs say nothing of its training jobs) — plus every error
line as it comes; when the command fails, the log's last lines.
``headline`` prints where the report is and the study's headline table.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import TextIO

FINISHED = re.compile(r"Finished jobid: (?P<id>\d+) \(Rule: (?P<rule>[\w-]+)\)")
STARTED = re.compile(r"^(local)?rule (?P<rule>[\w-]+):")  # a job's block as Snakemake starts it; its jobid follows
JOB_ID = re.compile(r"^\s+jobid: (?P<id>\d+)")
STEPS = re.compile(r"(?P<done>\d+) of (?P<total>\d+) steps \(\d+%\) done")
JOB_COUNT = re.compile(r"^(?P<rule>[\w-]+)\s+(?P<count>\d+)\s*$")
ERROR = re.compile(r"^(Error in rule|\S*Error\b|\S*Exception\b|Exiting because|Nothing to be done)")
TAIL_LINES = 40
HEARTBEAT_S = 60.0


def duration(seconds: float) -> str:
    """'1h02m', '12m05s' or '42s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def eta(planned: dict[str, int], finished: dict[str, list[float]], elapsed: float) -> str:
    """Time left: each rule's jobs left × the mean duration of its finished jobs, divided by the parallelism so far
    (job-seconds finished per second elapsed, at least 1); rules with jobs left but none finished are named after it
    ("+ finetune untimed"), as their cost is unknown."""
    left = {rule: count - len(finished.get(rule, [])) for rule, count in planned.items()}
    left = {rule: n for rule, n in left.items() if n > 0}
    work = sum(n * sum(finished[rule]) / len(finished[rule]) for rule, n in left.items() if finished.get(rule))
    parallelism = max(1.0, sum(map(sum, finished.values())) / elapsed) if elapsed > 0 else 1.0
    untimed = [rule for rule in left if not finished.get(rule) and rule != "all"]
    return duration(work / parallelism) + (f" + {', '.join(untimed)} untimed" if untimed else "")


def run_workflow(command: list[str], log_path: str | Path, out: TextIO | None = None) -> int:
    """Run ``command``, its output (stdout and stderr) going to ``log_path``; print the progress lines (to ``out``,
    default stdout); return its exit status."""
    out = out or sys.stdout
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = last_printed = time.monotonic()
    rule, tail, planned, finished_jobs, in_stats = "", deque(maxlen=TAIL_LINES), {}, Counter(), False
    starting, job_starts, durations = "", {}, defaultdict(list)  # job id -> its start; rule -> finished jobs' seconds
    print(f"running: {shlex.join(command)}\nfull log: {log_path}", file=out, flush=True)
    with open(log_path, "w") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, bufsize=1) as process:
        for line in process.stdout:
            log.write(line)
            log.flush()
            tail.append(line)
            if line.startswith("Job stats:"):
                in_stats = not planned  # the first table is the plan
            elif in_stats and (count := JOB_COUNT.match(line)):
                if count["rule"] == "total":
                    in_stats = False
                else:
                    planned[count["rule"]] = int(count["count"])
            elif start := STARTED.match(line):
                starting = start["rule"]
            elif starting and (job := JOB_ID.match(line)):
                job_starts[job["id"]], starting = time.monotonic(), ""
            elif finished := FINISHED.search(line):
                rule = finished["rule"]
                finished_jobs[rule] += 1
                if finished["id"] in job_starts:
                    durations[rule].append(time.monotonic() - job_starts.pop(finished["id"]))
            elif steps := STEPS.search(line):
                done, total = int(steps["done"]), int(steps["total"])
                now = time.monotonic()
                stage_done = rule in planned and finished_jobs[rule] >= planned[rule]
                if stage_done or done == total or now - last_printed >= HEARTBEAT_S:
                    last_printed, elapsed = now, now - started
                    left = eta(planned, durations, elapsed) if done < total else "0s"
                    stage = (f"{rule}: {finished_jobs[rule]} of {planned[rule]} jobs" if rule in planned
                             else rule or "job")
                    print(f"[{done:>{len(str(total))}}/{total}] {stage}{' (stage done)' if stage_done else ''} · "
                          f"{duration(elapsed)} elapsed · ETA {left}", file=out, flush=True)
            elif ERROR.match(line):
                print(line.rstrip(), file=out, flush=True)
        status = process.wait()
    if status != 0:
        print(f"--- failed (exit status {status}); the last {len(tail)} lines of {log_path}:", file=out)
        print("".join(tail).rstrip(), file=out, flush=True)
    else:
        print(f"finished in {duration(time.monotonic() - started)}", file=out, flush=True)
    return status


def headline(results: str | Path, report: str | Path, out: TextIO | None = None) -> int:
    """Where the report is, the paper's claims beside ours (``results/tables/paper_vs_ours.md``, its cell-for-cell
    rows left to the file) and each model variant's gap-closed table as the paper reads it
    (``results/tables/*/paper_gap_closed.md``)."""
    out = out or sys.stdout
    tables = sorted(Path(results).glob("tables/*/paper_gap_closed.md"))
    if not tables:
        print(f"no gap-closed table under {results}/tables/: has the workflow run?", file=out)
        return 1
    print(f"\nreport: {Path(report).resolve()}", file=out)
    versus = Path(results) / "tables/paper_vs_ours.md"
    if versus.exists():
        lines = versus.read_text().splitlines()
        claims = [line for line in lines if line.startswith("|") and "| Table 1 | 0." not in line]
        print(f"\n{versus} (the paper's claims; every published cell is in the file)", file=out)
        print("\n".join([line for line in lines if not line.startswith("|")][:4] + claims), file=out)
    for table in tables:
        print(f"\n{table}\n{table.read_text().rstrip()}", file=out)
    return 0
