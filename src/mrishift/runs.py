"""What a training job reads and writes: preprocessed volumes in, weights + a self-describing run record out."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import torch

from mrishift import __version__, models
from mrishift.data.volumes import Volume, load_volume
from mrishift.io import atomic_path, write_json


def load_case(case: str, data_dir: str | Path = "results/data") -> tuple[Volume, Volume]:
    """The scaled image and the reference mask of a case on the resampled grid (the workflow's layout)."""
    data_dir = Path(data_dir)
    image = load_volume(data_dir / "preprocessed" / f"{case}_image.nii.gz")
    mask = load_volume(data_dir / "resampled" / f"{case}_mask.nii.gz")
    if image.array.shape != mask.array.shape:
        raise ValueError(f"{case}: preprocessed image {image.array.shape} and mask {mask.array.shape} differ")
    return image, mask


def load_cases(cases: list[str], data_dir: str | Path = "results/data") -> list[tuple[np.ndarray, np.ndarray]]:
    """(scaled image, binary mask) arrays indexed (x, y, z) for each case id."""
    return [tuple(volume.array for volume in load_case(case, data_dir)) for case in cases]


def save_model(path: str | Path, model: torch.nn.Module, arch: str, width: float) -> None:
    """Plain (uncompiled) state_dict plus what rebuilds the network; loadable with weights_only=True."""
    with atomic_path(path) as tmp:
        torch.save({"arch": arch, "width": width, "model": model.state_dict()}, tmp)


def load_model(path: str | Path, map_location="cpu") -> torch.nn.Module:
    state = torch.load(path, map_location=map_location, weights_only=True)
    model = models.build(state["arch"], width=state["width"])
    model.load_state_dict(state["model"])
    return model


def versions() -> dict:
    import snakemake

    return {"mrishift": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "snakemake": snakemake.__version__, "cuda": torch.version.cuda,
            "platform": sys.platform}


def write_record(path: str | Path, **fields) -> None:
    write_json(path, {**fields, "versions": versions()})
