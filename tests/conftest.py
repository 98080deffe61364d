import os

import nibabel as nib
import numpy as np
import pytest
import workflow_runs

# Under pytest-xdist the other worker is usually running a Snakemake study whose jobs keep both cores busy. A test
# computing with torch's default two threads beside it stalls at every parallel region, waiting for a thread that has
# no core: a test-time test took 45 s beside a two-thread torch process and 5 s on one thread (117 s in CI).
# Imported here only, so that a run without workers (the SLURM phase, one test file) does not load torch for nothing.
if "PYTEST_XDIST_WORKER" in os.environ:
    import torch

    torch.set_num_threads(1)


def write_nifti(path, array, spacing=(1.0, 1.0, 1.0), affine=None):
    if affine is None:
        affine = np.diag([*spacing, 1.0])
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


def ball(shape=(12, 12, 10), radius=4.0):
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2.0
    return ((grid - centre[:, None, None, None]) ** 2).sum(0) <= radius**2


@pytest.fixture
def good_case(tmp_path):
    """One valid CC359-named image/mask pair; returns (image path, mask path)."""
    mask = ball().astype(np.uint8)
    image = mask * 100.0 + 10.0
    image_path = write_nifti(tmp_path / "CC0120_siemens_15_40_F.nii.gz", image.astype(np.float32))
    mask_path = write_nifti(tmp_path / "CC0120_siemens_15_40_F_ss.nii.gz", mask)
    return image_path, mask_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The finished tiny study (config/tiny.yaml), shared by every workflow test of the session; a test that changes
    it works on a copy (workflow_runs.study_copy)."""
    return workflow_runs.tiny_study(tmp_path_factory)
