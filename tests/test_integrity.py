import gzip

import numpy as np
from conftest import ball, write_nifti

from mrishift.cli import main
from mrishift.data.integrity import check_dataset

IMAGE = "CC0120_siemens_15_40_F.nii.gz"
MASK = "CC0120_siemens_15_40_F_ss.nii.gz"


def problems(folder):
    report = check_dataset(folder)
    assert len(report) == 1 and report.loc[0, "status"] == "bad"
    return report.loc[0, "problems"]


def test_good_case_passes(good_case):
    report = check_dataset(good_case[0].parent, expected_cases=["CC0120"])
    assert report["status"].tolist() == ["ok"]
    assert report.loc[0, "shape"] == "12x12x10" and report.loc[0, "domain"] == "siemens_15"


def test_corrupt_file(good_case):
    image, _ = good_case
    data = image.read_bytes()
    image.write_bytes(gzip.compress(data[:100]))  # valid gzip of a truncated NIfTI
    assert f"{image}: unreadable or corrupt NIfTI" in problems(image.parent)


def test_not_3d(good_case):
    image, _ = good_case
    write_nifti(image, np.zeros((12, 12, 10, 2), np.float32))
    assert f"{image}: expected a 3D volume, found 4D" in problems(image.parent)


def test_non_finite(good_case):
    image, _ = good_case
    array = ball().astype(np.float32)
    array[0, 0, 0], array[1, 1, 1] = np.nan, np.inf
    write_nifti(image, array)
    assert f"{image}: 2 non-finite voxel values" in problems(image.parent)


def test_shape_mismatch(good_case):
    _, mask = good_case
    write_nifti(mask, ball((12, 12, 11)).astype(np.uint8))
    assert f"{mask}: shape (12, 12, 11) differs from the image's (12, 12, 10)" in problems(mask.parent)


def test_affine_mismatch(good_case):
    _, mask = good_case
    write_nifti(mask, ball().astype(np.uint8), spacing=(1.0, 1.0, 1.2))
    assert f"{mask}: affine differs from the image's" in problems(mask.parent)


def test_mask_not_binary(good_case):
    _, mask = good_case
    write_nifti(mask, ball().astype(np.uint8) * 255)
    assert f"{mask}: mask is not binary (values 0, 255)" in problems(mask.parent)


def test_empty_mask(good_case):
    _, mask = good_case
    write_nifti(mask, np.zeros((12, 12, 10), np.uint8))
    assert f"{mask}: mask is empty" in problems(mask.parent)


def test_missing_mask_and_missing_image(good_case):
    image, mask = good_case
    mask.unlink()
    assert f"{image}: missing mask (expected {MASK})" in problems(image.parent)
    image.rename(image.parent / "CC0130_siemens_15_40_F_ss.nii.gz")
    assert "missing image (expected CC0130_siemens_15_40_F.nii.gz)" in problems(image.parent)


def test_unknown_domain(tmp_path):
    write_nifti(tmp_path / "CC0120_toshiba_15_40_F.nii.gz", ball().astype(np.float32))
    assert "unknown domain 'toshiba_15'" in problems(tmp_path)


def test_expected_case_missing(good_case):
    report = check_dataset(good_case[0].parent, expected_cases=["CC0120", "CC0121"])
    assert report.set_index("case").loc["CC0121", "problems"].startswith("CC0121: no image and no mask found")


def test_cli_exit_codes_and_lines(good_case, tmp_path, capsys):
    # Masks in a sub-folder, as in the dataset's own layout: files are found recursively.
    image, mask = good_case
    (tmp_path / "Silver-standard").mkdir()
    mask.rename(tmp_path / "Silver-standard" / MASK)
    assert main(["check-data", str(tmp_path)]) == 0
    write_nifti(tmp_path / "CC0180_siemens_3_50_M.nii.gz", ball().astype(np.float32))
    assert main(["check-data", str(tmp_path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"CC0180: {tmp_path}/CC0180_siemens_3_50_M.nii.gz: missing mask (expected CC0180_siemens_3_50_M_ss.nii.gz)"]
    assert main(["check-data", str(tmp_path / "nowhere")]) == 2
