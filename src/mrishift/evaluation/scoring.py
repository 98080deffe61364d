"""Whole-volume inference and per-scan scores on the resampled grid."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mrishift import usage
from mrishift.data.scans import ScanFiles, load_case
from mrishift.evaluation import metrics
from mrishift.models import networks
from mrishift.models.inputs import resolve_device, volume_slices, window_grid

log = logging.getLogger("mrishift")

IDENTITY_COLUMNS = ["variant", "role", "strategy", "source", "target", "budget", "seed", "fold"]
SCORE_COLUMNS = ["case", "sdice", "dice", "hd95_mm", "assd_mm"]


def predict_volume(model: torch.nn.Module, image: np.ndarray, batch_size: int = 32, device: str = "auto",
                   bf16: bool = False, channels_last: bool = True) -> np.ndarray:
    """Brain mask of a scaled (x, y, z) volume, sigmoid >= 0.5: every axial slice through a 2D network, or sliding
    windows through a 3D one (``sliding_window_logits``).

    Slices are zero-padded to a multiple of the network's stride (zero is background after intensity scaling) and
    cropped back, so the mask has exactly the image's shape. The model is left in eval mode on ``device`` in the
    memory format it came in: converting its parameters inside inference mode would turn them into inference
    tensors that a training run validating between epochs could no longer train."""
    if image.ndim != 3:
        raise ValueError(f"expected an (x, y, z) volume, got shape {image.shape}")
    device = resolve_device(device)
    model.eval().to(device)
    came_as = _memory_format(model)
    if channels_last:
        model.to(memory_format=networks.memory_format(model))
    try:
        with torch.inference_mode():
            if getattr(model, "dims", 2) == 3:
                return _predict_windows(model, image, batch_size, device, bf16, channels_last)
            return _predict_slices(model, image, batch_size, device, bf16, channels_last)
    finally:
        model.to(memory_format=came_as)


def _memory_format(model: torch.nn.Module) -> torch.memory_format:
    """Channels-last when the model's convolution weights are (as ``model.to(memory_format=...)`` leaves them), else
    contiguous. A weight laid out the same either way (a 1×1 convolution's) says nothing."""
    layout, rank = networks.memory_format(model), 5 if getattr(model, "dims", 2) == 3 else 4
    telling = [p for p in model.parameters()
               if p.dim() == rank and p.is_contiguous() != p.is_contiguous(memory_format=layout)]
    if telling and all(p.is_contiguous(memory_format=layout) for p in telling):
        return layout
    return torch.contiguous_format


def _predict_slices(model, image, batch_size, device, bf16, channels_last) -> np.ndarray:
    nx, ny, nz = image.shape
    slices = volume_slices(image, model.stride, device)
    out = torch.empty((nz, nx, ny), dtype=torch.bool, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
    for start in range(0, nz, batch_size):
        batch = slices[start:start + batch_size]
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(batch)
        out[start:start + batch_size] = logits[:, 0, :nx, :ny] >= 0  # sigmoid(l) >= 0.5 ⇔ l >= 0
    return out.cpu().numpy().transpose(1, 2, 0)


def _predict_windows(model, image, batch_size, device, bf16, channels_last) -> np.ndarray:
    volume = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")

    def network(batch):
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with autocast:
            return model(batch).float()

    return (sliding_window_logits(network, volume, model.window, model.stride, batch_size) >= 0).cpu().numpy()


def sliding_window_logits(network, volume: torch.Tensor, window, stride: int, batch_size: int) -> torch.Tensor:
    """Logits of an (x, y, z) volume from a 3D ``network`` ((B, 1, wx, wy, wz) -> same shape) applied to windows of
    ``window`` voxels overlapping by ``models.inputs.WINDOW_OVERLAP`` (``window_grid``): each voxel's logit is the
    plain mean over the windows that hold it (nnU-Net weights window centres higher; a plain mean keeps the
    reconstruction exact), cropped back to the volume's shape."""
    shape = volume.shape
    volume, size, corners = window_grid(volume, window, stride)
    total = torch.zeros(volume.shape, device=volume.device)
    hits = torch.zeros(volume.shape, device=volume.device)
    for first in range(0, len(corners), batch_size):
        views = [tuple(slice(c, c + s) for c, s in zip(corner, size)) for corner in corners[first:first + batch_size]]
        logits = network(torch.stack([volume[view] for view in views])[:, None])[:, 0]
        for view, value in zip(views, logits):
            total[view] += value
            hits[view] += 1
    return (total / hits)[:shape[0], :shape[1], :shape[2]]


class ScanCache:
    """Scaled images and reference masks (with their spacing) of the cases a job scores, each read once while they fit
    in ``max_mb``: a job scores every model on the same scans, so it keeps what it read, but no more than that. Beyond
    the budget a scan is read again each time it is used and never kept, so what a job holds stays bounded whatever the
    number of its scans (at CC359's 1 mm a scan is ~60 MB: a target's 57 test scans would be 3.4 GB)."""

    def __init__(self, files: ScanFiles, max_mb: float | None = None):
        self.files = files
        self.max_bytes = None if max_mb is None else max_mb * 2**20
        self.held_bytes = 0
        self.reads = 0
        self._scans: dict[str, tuple[np.ndarray, np.ndarray, tuple[float, ...]]] = {}

    def __getitem__(self, case: str):
        if case in self._scans:
            return self._scans[case]
        image, mask = load_case(case, self.files)
        if not mask.array.any():
            raise ValueError(f"{self.files[case][1]}: reference mask is empty")
        scan = (image.array, mask.array > 0.5, tuple(float(s) for s in image.spacing))
        self.reads += 1
        size = scan[0].nbytes + scan[1].nbytes
        if self.max_bytes is None or self.held_bytes + size <= self.max_bytes:
            self._scans[case] = scan
            self.held_bytes += size
        return scan


def read_scores(path: str | Path) -> pd.DataFrame:
    """A score table as written by the workflow: identity columns stay strings ("3scans", seed "0"), blanks are NaN."""
    return pd.read_csv(path, sep="\t", dtype={"budget": str, "seed": str, "fold": str}, keep_default_na=False,
                       na_values=[""])


def validation_scores(model: torch.nn.Module, cases: list[str], scans: ScanCache, tolerance_mm: float,
                      batch_size: int = 32, device: str = "auto", bf16: bool = False) -> dict[str, float]:
    """Mean surface Dice and Dice over validation scans (what a training run logs every few epochs)."""
    table = score_scans(model, cases, scans, tolerance_mm, batch_size, device, bf16)
    return {"sdice": float(table.sdice.mean()), "dice": float(table.dice.mean())}


def score_scans(model: torch.nn.Module, cases: list[str], scans: ScanCache, tolerance_mm: float,
                batch_size: int = 32, device: str = "auto", bf16: bool = False, adapt=None) -> pd.DataFrame:
    """One row per case: surface Dice at tolerance_mm, volumetric Dice, HD95 and ASSD of the predicted mask.

    ``adapt``: for test-time adaptation, ``image -> (network, image)`` gives what predicts each volume (it never
    sees the reference mask); by default ``model`` predicts the image as it is."""
    rows, started = [], time.perf_counter()
    for case in cases:
        image, reference, spacing = scans[case]
        network = model
        if adapt is not None:
            network, image = adapt(image)
        predicted = predict_volume(network, image, batch_size, device, bf16)
        rows.append({"case": case, "dice": metrics.dice(reference, predicted),
                     **metrics.surface_scores(reference, predicted, spacing, tolerance_mm)})
    log.info("scored %d scans in %.1f s, mean sDice %.3f", len(cases), time.perf_counter() - started,
             np.mean([r["sdice"] for r in rows]) if rows else float("nan"))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def score_models(jobs, scans: ScanCache, load, tolerance_mm: float, batch_size: int = 32, device: str = "auto",
                 bf16: bool = False, progress=lambda jobs: jobs) -> pd.DataFrame:
    """A scoring job's table: each ``(identity, model file, cases)`` of ``jobs`` scored (``score_scans``), its identity
    columns first. It holds one model at a time (``load(path, identity)`` reads it; consecutive jobs of one model
    read it once) and the scans as ``scans`` bounds them, so its memory does not grow with its number of models."""
    tables, held = [], (None, None)
    for identity, model_path, cases in progress(jobs):
        log.info("%s on %d scans", model_path, len(cases))
        if held[0] != model_path:
            held = (None, None)  # the previous model goes before the next one is read
            held = (model_path, load(model_path, identity))
        table = score_scans(held[1], cases, scans, tolerance_mm, batch_size, device, bf16)
        usage.count("volumes", len(cases))
        tables.append(table.assign(**identity)[IDENTITY_COLUMNS + SCORE_COLUMNS])
    return pd.concat(tables, ignore_index=True)
