"""Atomic outputs: nothing under the final name until complete; the permissions a plain open() would give."""

import errno
import os
import stat

import pytest

from mrishift.data.scans import scan_files
from mrishift.io import atomic_path, write_linked_folder, write_text


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


def test_a_scan_set_folder_links_its_files_and_a_failure_leaves_no_folder(tmp_path):
    (tmp_path / "preprocessed").mkdir()
    (tmp_path / "resampled").mkdir()
    image, mask = tmp_path / "preprocessed/CC0001_image.nii.gz", tmp_path / "resampled/CC0001_mask.nii.gz"
    image.write_bytes(b"image")
    mask.write_bytes(b"mask")
    folder = tmp_path / "sets/ge_3/test"
    write_linked_folder([image, mask], folder)
    assert sorted(p.name for p in folder.iterdir()) == ["CC0001_image.nii.gz", "CC0001_mask.nii.gz"]
    assert (folder / "CC0001_image.nii.gz").stat().st_ino == image.stat().st_ino  # a hard link: no copy of the data
    # a job given the set and one scan of its own pairs every image with its mask, wherever each lies
    other = tmp_path / "preprocessed/CC0002_image.nii.gz"
    other.write_bytes(b"image")
    (tmp_path / "resampled/CC0002_mask.nii.gz").write_bytes(b"mask")
    files = scan_files([str(other)], [str(tmp_path / "resampled/CC0002_mask.nii.gz")], [str(folder)])
    assert files == {"CC0001": (str(folder / "CC0001_image.nii.gz"), str(folder / "CC0001_mask.nii.gz")),
                     "CC0002": (str(other), str(tmp_path / "resampled/CC0002_mask.nii.gz"))}
    with pytest.raises(FileNotFoundError, match="missing_mask.nii.gz"):
        write_linked_folder([image, tmp_path / "missing_mask.nii.gz"], tmp_path / "sets/ge_3/all")
    assert sorted(p.name for p in (tmp_path / "sets/ge_3").iterdir()) == ["test"]  # no partial "all", no temporary
    with pytest.raises(ValueError, match="two files named CC0001_image.nii.gz"):
        write_linked_folder([image, folder / "CC0001_image.nii.gz"], tmp_path / "sets/ge_3/heldout")


def test_a_scan_set_is_copied_only_where_hard_links_cannot_be_made(tmp_path, monkeypatch):
    image = tmp_path / "CC0001_image.nii.gz"
    image.write_bytes(b"image")

    def link_failing_with(code):
        def link(source, target):
            raise OSError(code, os.strerror(code), str(source), None, str(target))
        return link

    monkeypatch.setattr(os, "link", link_failing_with(errno.EXDEV))  # the set on another file system: a copy
    write_linked_folder([image], tmp_path / "other_disk")
    copied = tmp_path / "other_disk/CC0001_image.nii.gz"
    assert copied.read_bytes() == b"image" and copied.stat().st_ino != image.stat().st_ino
    monkeypatch.setattr(os, "link", link_failing_with(errno.EIO))  # a read error is not hidden behind a copy
    with pytest.raises(OSError, match="Input/output error"):
        write_linked_folder([image], tmp_path / "failing_disk")
    assert not (tmp_path / "failing_disk").exists()
