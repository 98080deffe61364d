"""Real CC359 from a local copy: the dataset cannot be downloaded by a script (its site needs a browser)."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

from mrishift.data.cc359 import expected_counts
from mrishift.data.integrity import find_cases

HOW_TO_GET = (
    "CC359 (Calgary-Campinas-359) must be obtained by you from the Calgary-Campinas dataset website "
    "(the CC359 download page, after registration): download the T1 images ('Original') and the "
    "'Silver-standard' skull-stripping masks (a separate download), then set data.cc359.paths in your config "
    "to the folders or archives (.zip, .tar, .tar.gz, .tgz) you downloaded."
)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


class DatasetError(RuntimeError):
    pass


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _extract(archive: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(tmp)
        else:
            with tarfile.open(archive) as handle:
                handle.extractall(tmp, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{archive}: cannot extract archive ({error})") from error
    os.replace(tmp, target)


def verify_counts(root: Path, domains: list[str], require_complete: bool) -> list[str]:
    """Naming/pairing problems plus, when ``require_complete``, missing scans per domain (60 each, 59 for philips 1.5T)."""
    cases = find_cases(root)
    problems = [p for case in cases for p in case.problems]
    per_domain = Counter(c.domain for c in cases if c.domain and c.image and c.mask and not c.problems)
    if require_complete:
        for domain, expected in expected_counts().items():
            if domain in domains and per_domain[domain] != expected:
                problems.append(f"{domain}: found {per_domain[domain]} complete image+mask pairs, expected {expected}")
    if not any(per_domain[d] for d in domains):
        problems.append(f"no CC359-named image/mask pair of the configured domains under {root}")
    return problems


def fetch_cc359(sources: list[str], out_dir: str | os.PathLike, domains: list[str], require_complete: bool = True) -> None:
    """Lay the user's local CC359 copy out under ``out_dir`` (folders linked, archives extracted) and verify it.

    Raises ``DatasetError`` naming what is missing or wrong, and how to get the data.
    """
    if not sources:
        raise DatasetError("data.cc359.paths is empty. " + HOW_TO_GET)
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        raise DatasetError(f"CC359 source(s) not found: {', '.join(missing)}. " + HOW_TO_GET)
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for index, source in enumerate(Path(s).resolve() for s in sources):
        target = staging / f"source{index}_{source.name.split('.')[0]}"
        if source.is_dir():
            target.symlink_to(source, target_is_directory=True)
        elif _is_archive(source):
            _extract(source, target)
        else:
            raise DatasetError(f"{source}: neither a folder nor a .zip/.tar/.tar.gz/.tgz archive. " + HOW_TO_GET)
    problems = verify_counts(staging, domains, require_complete)
    if problems:
        raise DatasetError("CC359 check failed:\n  " + "\n  ".join(problems) + "\n" + HOW_TO_GET)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
