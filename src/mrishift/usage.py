"""What each workflow job used — wall and CPU time, peak memory on the host and on the GPU, units of work, output size —
written by the job itself beside its log (``<log>.usage.json``) when it ends, and ``collect``ed into one table per rule
(``mrishift usage``) from which the cluster profile's resources are set.

Peak host memory is the kernel's high-water mark, not a sample: the job's own process (VmHWM), and the largest of the
processes it waited for (a fine-tuning job that trains ``k`` runs at once in their own processes needs about its
own peak plus ``k`` times that). Peak GPU memory is PyTorch's allocator peak (what the tensors held; the CUDA context
adds a few hundred MB). A job says how much work it did with ``count`` (scans, optimizer steps, scored volumes, models),
so a rule's time is also given per unit and scales to a study of another size.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from mrishift.io import write_json

SUFFIX = ".usage.json"

_work: Counter = Counter()
_notes: dict = {}


def count(unit: str, n: int = 1) -> None:
    """Add ``n`` units of work (e.g. "volumes") to this job's record."""
    _work[unit] += n


def note(**values) -> None:
    """Add facts to this job's record (e.g. ``concurrent_children=4``, ``gpu_peak_mb`` of its run processes)."""
    _notes.update(values)


def watch(job) -> None:
    """Record this job's usage when its process exits (``job``: the script's ``snakemake`` object). Called by
    ``logs.log_to``, so every workflow script is measured, from its process's start (its imports included)."""
    atexit.register(_write, job, time.time() - _process_age_s())


def _process_age_s() -> float:
    """Seconds since this process started (Linux's /proc; 0 where there is none)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: start time in clock ticks
    except (OSError, ValueError, IndexError):
        return 0.0


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The high-water mark of resident memory, MB. Of this process: its own address space's (Linux's VmHWM), since
    getrusage's also counts the parent it was started from (a job started by a 2 GB Snakemake would report 2 GB); of
    its children (``RUSAGE_CHILDREN``): the largest's, by getrusage, which may include what they were forked from."""
    if who == resource.RUSAGE_SELF:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
        except OSError:
            pass
    return resource.getrusage(who).ru_maxrss / 1024


def gpu_peak_mb() -> float | None:
    """PyTorch's peak allocated CUDA memory in this process (MB), or None when it never used a GPU."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def size_bytes(path: str | Path) -> int:
    """Disk a file, or every file under a folder, takes; 0 when it does not exist. A file with other hard links (a
    scan set's link to a preprocessed scan) takes none of its own."""
    path = Path(path)
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path] if path.exists() else []
    return sum(stat.st_size for stat in map(Path.stat, files) if stat.st_nlink == 1)


def _write(job, started: float) -> None:
    outputs = [str(p) for p in job.output]
    record = {
        "rule": job.rule, "wildcards": dict(job.wildcards.items()), "threads": job.threads,
        "wall_s": round(time.time() - started, 3), "cpu_s": round(_cpu_seconds(), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_children_mb": round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
        "gpu_peak_mb": None if (peak := gpu_peak_mb()) is None else round(peak, 1),
        "work": dict(_work), "output_bytes": sum(size_bytes(p) for p in outputs),
        "complete": all(os.path.exists(p) for p in outputs), **_notes,
    }
    write_json(str(job.log[0]) + SUFFIX, record)


def collect(folder: str | Path = "logs") -> list[dict]:
    """Every job record under ``folder`` (``**/*.usage.json``), each with its file's path."""
    return [{**json.loads(path.read_text()), "record": str(path)} for path in sorted(Path(folder).rglob("*" + SUFFIX))]


def per_rule(records: list[dict]):
    """One row per rule: finished jobs, their units of work, time per job and per unit, peak host memory (its own
    process plus its concurrent run processes), peak GPU memory, output size per job and in all."""
    import pandas as pd

    rows = []
    for record in records:
        if not record.get("complete", True):
            continue  # a failed or killed job's time and outputs describe nothing whole
        work = record.get("work") or {}
        unit, units = next(iter(work.items())) if work else ("job", 1)
        host = record["peak_rss_mb"] + record.get("concurrent_children", 0) * record["peak_rss_children_mb"]
        gpu = [v for v in (record.get("gpu_peak_mb"), record.get("runs_gpu_peak_mb")) if v]
        rows.append({"rule": record["rule"], "unit": unit, "units": units, "wall_s": record["wall_s"],
                     "cpu_s": record["cpu_s"], "threads": record["threads"], "peak_host_mb": host,
                     "peak_gpu_mb": max(gpu) if gpu else float("nan"), "output_mb": record["output_bytes"] / 2**20})
    if not rows:
        return pd.DataFrame()
    jobs = pd.DataFrame(rows)
    jobs["s_per_unit"] = jobs.wall_s / jobs.units.clip(lower=1)
    return jobs.groupby("rule", sort=True).agg(
        jobs=("wall_s", "size"), unit=("unit", "first"), units=("units", "sum"), threads=("threads", "max"),
        wall_s_max=("wall_s", "max"), s_per_unit=("s_per_unit", "median"), cpu_s=("cpu_s", "sum"),
        peak_host_mb=("peak_host_mb", "max"), peak_gpu_mb=("peak_gpu_mb", "max"),
        output_mb_per_job=("output_mb", "mean"), output_mb=("output_mb", "sum")).reset_index()


def resources(table, margin: float = 1.5, floor_mb: int = 1000) -> dict:
    """``set-resources`` for a cluster profile from a per-rule table: each rule's measured peak host memory times
    ``margin``, rounded up to the next GB (never below ``floor_mb``)."""
    return {row.rule: {"mem_mb": max(floor_mb, int(-(-row.peak_host_mb * margin // 1000)) * 1000)}
            for row in table.itertuples()}
