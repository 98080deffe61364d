"""Dataset discovery and integrity checks: one row per case, every problem named, nothing silently skipped.

Files are found recursively by CC359 name, so both the dataset's own sub-folders (images and masks are
separate downloads) and a flat folder work; ``X_ss.nii.gz`` is the mask of ``X.nii.gz``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mrishift.data.cc359 import LOOKS_LIKE_CC359, CC359NameError, domain_of_case, parse_name
from mrishift.data.volumes import VolumeError, load_volume

AFFINE_TOLERANCE_MM = 1e-3


@dataclass
class Case:
    case: str
    domain: str | None = None
    image: Path | None = None
    mask: Path | None = None
    problems: list[str] = field(default_factory=list)


def find_cases(root: str | os.PathLike) -> list[Case]:
    """Pair the CC359-named images and masks found anywhere under ``root`` (symlinks followed).

    Naming problems (unparseable name, unknown domain, duplicate file for one case, image without mask and
    mask without image) are recorded on the case; files that are not CC359-like are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    cases: dict[str, Case] = {}
    for folder, _, files in sorted(os.walk(root, followlinks=True)):
        for name in sorted(files):
            if not LOOKS_LIKE_CC359.match(name):
                continue
            path = Path(folder) / name
            key = name[:6]
            case = cases.setdefault(key, Case(key))
            try:
                parsed = parse_name(name)
            except CC359NameError as error:
                case.problems.append(f"{path}: {error}")
                continue
            case.domain = parsed.domain
            slot = "mask" if parsed.is_mask else "image"
            if getattr(case, slot) is not None:
                case.problems.append(f"duplicate {slot} files: {getattr(case, slot)} and {path}")
                continue
            setattr(case, slot, path)
    for case in cases.values():
        if case.image is not None and case.mask is None:
            case.problems.append(f"{case.image}: missing mask (expected {case.image.name[:-7]}_ss.nii.gz)")
        if case.mask is not None and case.image is None:
            case.problems.append(f"{case.mask}: missing image (expected {case.mask.name[:-10]}.nii.gz)")
    return [cases[key] for key in sorted(cases)]


def check_volumes(image_path: Path, mask_path: Path) -> list[str]:
    """Content problems of one image/mask pair, each message naming the file."""
    problems = []
    volumes = {}
    for role, path in (("image", image_path), ("mask", mask_path)):
        try:
            volumes[role] = load_volume(path, dtype=np.float64)
        except VolumeError as error:
            problems.append(str(error))
    for role, volume in volumes.items():
        path = image_path if role == "image" else mask_path
        bad = int((~np.isfinite(volume.array)).sum())
        if bad:
            problems.append(f"{path}: {bad} non-finite voxel values (NaN or inf)")
    if "mask" in volumes:
        mask = volumes["mask"].array
        finite = mask[np.isfinite(mask)]
        values = np.unique(finite)
        if not np.isin(values, (0.0, 1.0)).all():
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
            problems.append(f"{mask_path}: mask is not binary (values {shown})")
        elif not (finite > 0).any():
            problems.append(f"{mask_path}: mask is empty (no brain voxel)")
    if len(volumes) == 2:
        image, mask = volumes["image"], volumes["mask"]
        if image.array.shape != mask.array.shape:
            problems.append(f"{mask_path}: shape {mask.array.shape} differs from the image's {image.array.shape}")
        elif not np.allclose(image.affine, mask.affine, atol=AFFINE_TOLERANCE_MM):
            problems.append(f"{mask_path}: affine differs from the image's (mask and image are not on the same grid)")
    return problems


def check_dataset(root: str | os.PathLike, expected_cases: list[str] | None = None, progress=None) -> pd.DataFrame:
    """The integrity report of a dataset folder: one row per case with its status and every problem found.

    ``expected_cases``: ids that must be present (missing ones are reported as bad rows).
    """
    cases = find_cases(root)
    found = {c.case for c in cases}
    for missing in sorted(set(expected_cases or []) - found):
        cases.append(Case(missing, domain_of_case(missing), problems=[f"{missing}: no image and no mask found under {root}"]))
    rows = []
    for case in progress(cases) if progress else cases:
        problems = list(case.problems)
        shape, spacing, orientation = "", "", ""
        if case.image is not None and case.mask is not None and not problems:
            problems += check_volumes(case.image, case.mask)
            if not problems:
                volume = load_volume(case.image)
                shape = "x".join(map(str, volume.array.shape))
                spacing = "x".join(f"{s:.4g}" for s in volume.spacing)
                orientation = volume.orientation
        rows.append({
            "case": case.case, "domain": case.domain or "",
            "image": str(case.image or ""), "mask": str(case.mask or ""),
            "shape": shape, "spacing_mm": spacing, "orientation": orientation,
            "status": "bad" if problems else "ok", "problems": "; ".join(problems),
        })
    return pd.DataFrame(rows, columns=["case", "domain", "image", "mask", "shape", "spacing_mm", "orientation",
                                       "status", "problems"])


def bad_case_lines(report: pd.DataFrame) -> list[str]:
    return [f"{row.case}: {row.problems}" for row in report.itertuples() if row.status != "ok"]
