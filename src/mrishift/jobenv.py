"""The environment that the workflow's jobs inherit."""

from __future__ import annotations

import os


def export_library_path(src: str) -> None:
    """Put the repository's ``src`` first on PYTHONPATH, so that every job's script imports this copy of mrishift —
    inside a conda env (--sdm conda), on a SLURM node, or from a Python where the package is not installed."""
    paths = [src, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
