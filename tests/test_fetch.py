import tarfile

import numpy as np
import pytest
from conftest import ball, write_nifti

from mrishift.data.cc359 import DOMAINS, format_name
from mrishift.data.fetch import DatasetError, fetch_cc359
from mrishift.data.integrity import check_dataset


@pytest.fixture
def fake_cc359(tmp_path):
    """All 359 CC359 cases as tiny volumes, images and masks in two archives like the real downloads."""
    mask = ball((4, 4, 4), 1.5).astype(np.uint8)
    for domain in DOMAINS.values():
        for number in domain.ids:
            case = f"CC{number:04d}"
            write_nifti(tmp_path / "Original" / format_name(case, domain.name, 40, "F"), mask.astype(np.float32))
            write_nifti(tmp_path / "Silver-standard" / format_name(case, domain.name, 40, "F", mask=True), mask)
    archives = []
    for folder in ("Original", "Silver-standard"):
        archive = tmp_path / f"{folder}.tar.gz"
        with tarfile.open(archive, "w:gz") as handle:
            handle.add(tmp_path / folder, arcname=folder)
        archives.append(str(archive))
    return tmp_path, archives


def test_fetch_from_archives_and_folders(fake_cc359, tmp_path):
    root, archives = fake_cc359
    fetch_cc359(archives, tmp_path / "out1", list(DOMAINS))
    assert len(check_dataset(tmp_path / "out1")) == 359
    fetch_cc359([str(root / "Original"), str(root / "Silver-standard")], tmp_path / "out2", list(DOMAINS))
    assert (check_dataset(tmp_path / "out2")["status"] == "ok").sum() == 359


def test_fetch_reports_incomplete_domain(fake_cc359, tmp_path):
    root, _ = fake_cc359
    next((root / "Silver-standard").glob("CC0001_*")).unlink()
    with pytest.raises(DatasetError) as error:
        fetch_cc359([str(root / "Original"), str(root / "Silver-standard")], tmp_path / "out", list(DOMAINS))
    message = str(error.value)
    assert "missing mask" in message and "philips_15: found 58 complete image+mask pairs, expected 59" in message
    assert not (tmp_path / "out").exists()


def test_fetch_missing_path_says_where_data_comes_from(tmp_path):
    with pytest.raises(DatasetError, match="not found: /no/such/CC359.zip.*Calgary-Campinas dataset website"):
        fetch_cc359(["/no/such/CC359.zip"], tmp_path / "out", list(DOMAINS))
