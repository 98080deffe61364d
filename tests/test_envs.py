"""The conda env for the cluster and the pip pins must not drift apart."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEST_ONLY = {"pytest", "pytest-xdist", "surface-distance", "selenium"}


def pip_pins():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_conda_env_pins_match_requirements():
    env = yaml.safe_load((ROOT / "envs" / "mrishift.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(p.lower().split("==") for p in pip_section)
    runtime = {k: v for k, v in pip_pins().items() if k not in TEST_ONLY}
    assert conda_pins == runtime
    assert "python=3.11" in env["dependencies"]
