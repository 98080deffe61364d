"""What a test does when something it needs is missing: skips on a developer's machine, fails in CI.

`.ci/run` sets MRISHIFT_CI: there every requirement (SLURM, the reference surface-distance package, a browser) is
installed by the run itself, so a missing one is a broken CI, not a reason to pass. Tests that need a GPU still skip
in CI (it has none) and run on the device machine."""

import os

import pytest

CI = "MRISHIFT_CI"


def missing(message: str, module_level: bool = False):
    """Skip with ``message``, or fail with it when MRISHIFT_CI is set."""
    if os.environ.get(CI):
        pytest.fail(f"{message} (MRISHIFT_CI is set: CI must provide it)", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)
