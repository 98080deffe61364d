"""Training batches: random axial slices, cropped (and optionally flipped/rotated) to the patch size.

A batch is first *drawn* on the host — which slices, where each is cropped, which flips and rotation — from the
run's numpy generator, then *assembled*: on the host with numpy (the default), or, after ``to_device``, by one
gather on the device from the run's slices held in its memory, so a GPU step never waits for Python to cut
patches. Both assemblies read the same draw, so for one seed they give the same batches (the tests compare them).

Cropping is the public code's ``sample_center_uniformly``: a random patch where the slice holds one in both
directions, else the centre patch, zero-padded where the slice is smaller than the patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Draw:
    """One batch, before assembly: for each sample the pool index of its slice, the patch's start in the slice's
    padded frame (``fitted_slice``), and its augmentation (flip along x, flip along y, 90° rotations 0-3)."""

    picks: np.ndarray  # (B,) int64
    starts: np.ndarray  # (B, 2) int64
    flips: np.ndarray  # (B, 2) bool
    turns: np.ndarray  # (B,) int64


class SliceSampler:
    """Random training slices from (image, mask) volumes indexed (x, y, z): axial slice k = volume[:, :, k]."""

    def __init__(self, volumes, slices, batch_size: int, patch_size: int, augment_p: float, rng: np.random.Generator):
        self.volumes = volumes
        self.pool = [(v, int(k)) for v, ks in enumerate(slices) for k in ks]
        if not self.pool:
            raise ValueError("no training slices: every volume has an empty slice list")
        self.batch_size, self.patch_size, self.augment_p, self.rng = batch_size, patch_size, augment_p, rng
        self._resident: tuple[torch.Tensor, torch.Tensor] | None = None

    # --- geometry ---------------------------------------------------------------------------------------------
    def _shape(self, pick: int) -> tuple[int, int]:
        volume, _ = self.pool[pick]
        return self.volumes[volume][0].shape[:2]

    def _margins(self, shape) -> list[int]:
        """Per axis, where the slice sits in its padded frame: axes shorter than the patch are centred in it."""
        return [(self.patch_size - n) // 2 if n < self.patch_size else 0 for n in shape]

    def _start(self, shape, random: bool) -> list[int]:
        """The patch's start in the padded frame along each axis; draws one integer per axis when ``random``."""
        starts = []
        for n in shape:
            if n < self.patch_size:
                starts.append(0)
            elif random:
                starts.append(int(self.rng.integers(0, n - self.patch_size + 1)))
            else:
                starts.append((n - self.patch_size) // 2)
        return starts

    def fitted_slice(self, pick: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``pick`` of the pool in its padded frame: each axis at least the patch size, shorter axes centred."""
        volume, k = self.pool[pick]
        image, mask = (array[:, :, k] for array in self.volumes[volume])
        frame = [max(n, self.patch_size) for n in image.shape]
        (mx, my), (nx, ny) = self._margins(image.shape), image.shape
        out_image, out_mask = np.zeros(frame, np.float32), np.zeros(frame, np.float32)
        out_image[mx:mx + nx, my:my + ny] = image
        out_mask[mx:mx + nx, my:my + ny] = mask
        return out_image, out_mask

    # --- drawing ----------------------------------------------------------------------------------------------
    def draw(self, size: int | None = None) -> Draw:
        """The next batch's draw (``size`` slices, default the batch size); advances the generator exactly as one
        such batch does."""
        picks = self.rng.integers(0, len(self.pool), size=self.batch_size if size is None else size)
        starts, flips, turns = [], [], []
        for pick in picks:
            shape = self._shape(pick)
            starts.append(self._start(shape, random=min(shape) >= self.patch_size))
            flip, turn = [False, False], 0
            if self.augment_p > 0:
                flip = [bool(self.rng.random() < self.augment_p) for _ in range(2)]
                if self.rng.random() < self.augment_p:
                    turn = int(self.rng.integers(1, 4))
            flips.append(flip)
            turns.append(turn)
        return Draw(picks.astype(np.int64), np.array(starts, np.int64).reshape(-1, 2), np.array(flips, bool).reshape(-1, 2),
                    np.array(turns, np.int64))

    # --- assembling -------------------------------------------------------------------------------------------
    def batch(self, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, masks), each (B, 1, P, P) float32 (B = ``size``, default the batch size): on the device after
        ``to_device``, else on the host."""
        draw = self.draw(size)
        return self._gather(draw) if self._resident is not None else self._assemble_on_host(draw)

    def _assemble_on_host(self, draw: Draw):
        p = self.patch_size
        images, masks = [], []
        for pick, (sx, sy), flip, turn in zip(draw.picks, draw.starts, draw.flips, draw.turns):
            image, mask = (array[sx:sx + p, sy:sy + p] for array in self.fitted_slice(pick))
            for axis in (0, 1):
                if flip[axis]:
                    image, mask = np.flip(image, axis), np.flip(mask, axis)
            image, mask = np.rot90(image, turn), np.rot90(mask, turn)
            images.append(np.ascontiguousarray(image))
            masks.append(np.ascontiguousarray(mask))
        return torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(np.stack(masks)[:, None])

    def to_device(self, device: torch.device | str) -> "SliceSampler":
        """Hold every pool slice (padded frame) on ``device`` and assemble batches there from now on. Memory: a
        float32 image and a uint8 mask per pool slice (float32 where a mask is not binary), 5 bytes a pixel: e.g.
        ≈ 5 GB for a CC359 source model's ≈ 15,000 slices of about 256 × 270."""
        fitted = [self.fitted_slice(pick) for pick in range(len(self.pool))]
        frame = np.max([image.shape for image, _ in fitted], axis=0)
        binary = all(np.isin(mask, (0.0, 1.0)).all() for _, mask in fitted)
        images = np.zeros((len(fitted), *frame), np.float32)
        masks = np.zeros((len(fitted), *frame), np.uint8 if binary else np.float32)
        for i, (image, mask) in enumerate(fitted):
            images[i, :image.shape[0], :image.shape[1]] = image
            masks[i, :mask.shape[0], :mask.shape[1]] = mask
        self._resident = (torch.from_numpy(images).to(device), torch.from_numpy(masks).to(device))
        return self

    def _gather(self, draw: Draw):
        """The draw's patches in one indexing op on the device: output pixel (a, b) reads the padded slice at
        start + the inverse of the rotation and flips applied to (a, b)."""
        images, masks = self._resident
        device, p = images.device, self.patch_size
        as_tensor = lambda array: torch.from_numpy(array).to(device, non_blocking=True)  # noqa: E731
        picks, starts, flips, turns = map(as_tensor, (draw.picks, draw.starts, draw.flips, draw.turns))
        a = torch.arange(p, device=device).view(1, p, 1).expand(len(picks), p, p)
        b = torch.arange(p, device=device).view(1, 1, p).expand(len(picks), p, p)
        turn = turns.view(-1, 1, 1)
        last = p - 1
        # np.rot90(m, k)[a, b] = m[b, last - a] (k=1), m[last - a, last - b] (k=2), m[last - b, a] (k=3)
        u = torch.where(turn == 0, a, torch.where(turn == 1, b, torch.where(turn == 2, last - a, last - b)))
        v = torch.where(turn == 0, b, torch.where(turn == 1, last - a, torch.where(turn == 2, last - b, a)))
        u = torch.where(flips[:, 0].view(-1, 1, 1), last - u, u) + starts[:, 0].view(-1, 1, 1)
        v = torch.where(flips[:, 1].view(-1, 1, 1), last - v, v) + starts[:, 1].view(-1, 1, 1)
        rows = picks.view(-1, 1, 1)
        return images[rows, u, v][:, None], masks[rows, u, v][:, None].float()

    def all_slices(self) -> torch.Tensor:
        """Every slice of the pool, centre-fitted to the patch, as one (N, 1, P, P) batch; draws no random number."""
        p = self.patch_size
        patches = []
        for pick in range(len(self.pool)):
            (sx, sy) = self._start(self._shape(pick), random=False)
            patches.append(self.fitted_slice(pick)[0][sx:sx + p, sy:sy + p])
        return torch.from_numpy(np.stack(patches)[:, None])
