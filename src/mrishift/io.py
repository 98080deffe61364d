"""Atomic file output: a killed job never leaves a half-written file under its final name."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder (same suffixes); move it onto ``path`` only on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Keep the full suffix (".nii.gz", ".tsv") so that format-sniffing writers still work.
    suffix = "".join(final.suffixes)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the mode open() would give
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def error_summary(error: BaseException) -> str:
    """``Type: first line of the message`` — enough to say why a file could not be read, without a traceback."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_table(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as TSV (or CSV when the name ends in .csv), atomically."""
    sep = "," if str(path).endswith(".csv") else "\t"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep=sep, index=False)


# os.link's errors that mean "no hard link here": another file system, one without hard links, too many links
_NO_HARD_LINK = {errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK}


def write_linked_folder(files: list[str | os.PathLike], folder: str | os.PathLike) -> None:
    """A folder holding ``files`` under their own names: hard links where the file system allows (no copy of the
    data), copies elsewhere. Filled under a temporary name and renamed, so a killed job leaves no partial folder."""
    final = Path(folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        for file in map(Path, files):
            if (tmp / file.name).exists():
                raise ValueError(f"{file}: two files named {file.name} for {final}")
            try:
                os.link(file, tmp / file.name)
            except OSError as error:
                if error.errno not in _NO_HARD_LINK:
                    raise  # e.g. a missing file: a copy would fail the same way
                shutil.copy2(file, tmp / file.name)
        os.chmod(tmp, 0o777 & ~_umask())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
