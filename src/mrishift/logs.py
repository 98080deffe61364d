"""Logging for workflow scripts: everything a job prints goes to its rule's log file under logs/."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

from mrishift import usage


def log_to(job) -> logging.Logger:
    """Send stderr and the ``mrishift`` logger to the rule's ``log:`` file, and have the job record what it used beside
    it when it ends (``mrishift.usage``); ``job`` is the script's ``snakemake`` object."""
    path = str(job.log[0])
    usage.watch(job)
    open(path, "w").close()  # then append: the lines of a job's run processes interleave with its own, never overwrite
    stream = open(path, "a", buffering=1)
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    return logging.getLogger("mrishift")


def progress(iterable, desc: str, total: int | None = None):
    """tqdm progress with ETA on stderr (the log file inside a workflow job)."""
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, mininterval=2.0)

