"""What a network sees of a volume, and where: a 2D network its padded axial slices, a 3D one its overlapping sliding
windows, on the device a job asks for. Scoring predicts from these, and test-time methods adapt a network to them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

WINDOW_OVERLAP = 0.5  # of a 3D network's sliding windows, along each axis


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU where there is one, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def window_starts(n: int, window: int, overlap: float = WINDOW_OVERLAP) -> list[int]:
    """Starts of windows of ``window`` voxels along an axis of ``n`` (>= window) voxels: a step of
    window × (1 − overlap) (at least 1), the last window flush with the end, so every voxel is covered."""
    step = max(1, int(window * (1 - overlap)))
    starts = list(range(0, n - window + 1, step))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def window_grid(volume: torch.Tensor, window, stride: int):
    """An (x, y, z) volume zero-padded at its far ends (each axis at least the window and a multiple of ``stride``;
    zero is background after scaling), the window size, and every window's corner in it. ``window`` None: the whole
    padded volume in one window."""
    padded = [n + -n % stride for n in volume.shape]
    if window is not None:
        padded = [max(n, w) for n, w in zip(padded, window)]
    volume = F.pad(volume, [p for n, size in zip(reversed(volume.shape), reversed(padded)) for p in (0, size - n)])
    size = padded if window is None else list(window)
    starts = [window_starts(n, w) for n, w in zip(padded, size)]
    return volume, size, [(x, y, z) for x in starts[0] for y in starts[1] for z in starts[2]]


def volume_windows(image: np.ndarray, window, stride: int, device) -> torch.Tensor:
    """The (N, 1, wx, wy, wz) sliding windows a 3D network predicts an (x, y, z) volume from: what test-time methods
    adapt a 3D network to."""
    volume = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device)
    volume, size, corners = window_grid(volume, window, stride)
    return torch.stack([volume[tuple(slice(c, c + s) for c, s in zip(corner, size))] for corner in corners])[:, None]


def network_inputs(model: torch.nn.Module, image: np.ndarray, device) -> torch.Tensor:
    """What a network sees of a volume: its padded axial slices (2D) or its sliding windows (3D)."""
    if getattr(model, "dims", 2) == 3:
        return volume_windows(image, model.window, model.stride, device)
    return volume_slices(image, model.stride, device)


def volume_slices(image: np.ndarray, stride: int, device) -> torch.Tensor:
    """The (z, 1, x', y') axial slices of an (x, y, z) volume on ``device``, zero-padded up to multiples of
    ``stride``. One copy in, the axis reordering done on the device: on a GPU, per-batch transfers and a host-side
    transpose cost more than the network."""
    nx, ny, _ = image.shape
    slices = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device).permute(2, 0, 1)[:, None]
    return F.pad(slices, (0, -ny % stride, 0, -nx % stride))  # F.pad order: last dim first
