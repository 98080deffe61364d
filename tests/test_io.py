"""Atomic outputs: nothing under the final name until complete; the permissions a plain open() would give."""

import os
import stat

import pytest

from mrishift.io import atomic_path, write_text


def test_a_failed_write_leaves_nothing_and_a_finished_one_is_readable_by_others(tmp_path):
    final = tmp_path / "table.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    old = os.umask(0o022)
    try:
        write_text(final, "done\n")
    finally:
        os.umask(old)
    assert final.read_text() == "done\n"
    assert stat.S_IMODE(final.stat().st_mode) == 0o644  # mkstemp's 0600 would hide results on a shared cluster disk
