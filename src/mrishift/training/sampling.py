"""Training batches: random axial slices, cropped (and optionally flipped/rotated) to the patch size; for 3D networks,
patches of the volume around labelled slices (``PatchSampler``).

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

from mrishift.adaptation.losses import IGNORE


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


def _crop(array: np.ndarray, starts, size, fill: float) -> np.ndarray:
    """The window ``[start, start + size)`` per axis of ``array`` centred in its padded frame (each axis at least
    ``size``, shorter axes centred as ``SliceSampler``'s), ``fill`` outside the array."""
    out = np.full(size, fill, np.float32)
    source, target = [], []
    for n, start, p in zip(array.shape, starts, size):
        offset = start - ((p - n) // 2 if n < p else 0)  # array index of the window's first voxel
        lo, hi = max(0, offset), min(n, offset + p)
        source.append(slice(lo, hi))
        target.append(slice(lo - offset, hi - offset))
    out[tuple(target)] = array[tuple(source)]
    return out


class PatchSampler:
    """Random (x, y, z) patches of (image, mask) volumes for 3D networks, around their labelled axial slices.

    The pool is the labelled slices, as ``SliceSampler``'s: each sample draws one uniformly, then a patch holding it —
    its z-range uniformly among those that contain the slice, x and y as ``SliceSampler`` crops (random where the
    volume holds the patch, else centred and zero-padded). Mask voxels on the patch's unlabelled slices (and on
    z-padding) are ``IGNORE``, which the loss leaves out: a budget of a few slices trains the network on sparse
    annotation; a scan budget labels every voxel. Augmentation as ``SliceSampler``'s, in the axial plane (rotations
    need a square one). Batches are (B, 1, x, y, z) float32, assembled on the host (``to_device`` changes nothing)."""

    def __init__(self, volumes, slices, batch_size: int, patch_size, augment_p: float, rng: np.random.Generator):
        self.volumes = volumes
        self.labelled = [sorted({int(k) for k in ks}) for ks in slices]
        self.pool = [(v, k) for v, ks in enumerate(self.labelled) for k in ks]
        if not self.pool:
            raise ValueError("no training slices: every volume has an empty slice list")
        self.patch = tuple(int(p) for p in patch_size)
        if len(self.patch) != 3:
            raise ValueError(f"a 3D patch has three sides (x, y, z), got {patch_size!r}")
        if augment_p > 0 and self.patch[0] != self.patch[1]:
            raise ValueError(f"rotating {self.patch} patches in the axial plane needs equal x and y sides")
        self.batch_size, self.augment_p, self.rng = batch_size, augment_p, rng

    def _frame(self, volume: int) -> list[int]:
        return [max(n, p) for n, p in zip(self.volumes[volume][0].shape, self.patch)]

    def draw(self, size: int | None = None) -> list[tuple[int, list[int], list[bool], int]]:
        """The next batch's (volume, patch start in its padded frame, flips along x and y, 90° turns) per sample."""
        samples = []
        for pick in self.rng.integers(0, len(self.pool), size=self.batch_size if size is None else size):
            volume, k = self.pool[pick]
            frame, shape = self._frame(volume), self.volumes[volume][0].shape
            starts = [int(self.rng.integers(0, f - p + 1)) if n >= p else 0
                      for n, f, p in zip(shape[:2], frame[:2], self.patch[:2])]
            nz, pz = shape[2], self.patch[2]
            at = k + ((pz - nz) // 2 if nz < pz else 0)  # the slice's z in the padded frame
            starts.append(int(self.rng.integers(max(0, at - pz + 1), min(frame[2] - pz, at) + 1)))
            flips, turn = [False, False], 0
            if self.augment_p > 0:
                flips = [bool(self.rng.random() < self.augment_p) for _ in range(2)]
                if self.rng.random() < self.augment_p:
                    turn = int(self.rng.integers(1, 4))
            samples.append((volume, starts, flips, turn))
        return samples

    def patch_at(self, volume: int, starts) -> tuple[np.ndarray, np.ndarray]:
        """The image and label patch of ``volume`` at ``starts`` (padded frame); unlabelled slices ``IGNORE``."""
        image, mask = self.volumes[volume]
        label = _crop(mask, starts, self.patch, 0.0)
        nz, pz = image.shape[2], self.patch[2]
        first = starts[2] - ((pz - nz) // 2 if nz < pz else 0)  # the volume's slice at the patch's first z
        labelled = set(self.labelled[volume])
        label[:, :, [z for z in range(pz) if first + z not in labelled]] = IGNORE
        return _crop(image, starts, self.patch, 0.0), label

    def batch(self, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for volume, starts, flips, turn in self.draw(size):
            image, label = self.patch_at(volume, starts)
            for axis in (0, 1):
                if flips[axis]:
                    image, label = np.flip(image, axis), np.flip(label, axis)
            image, label = np.rot90(image, turn, axes=(0, 1)), np.rot90(label, turn, axes=(0, 1))
            images.append(np.ascontiguousarray(image))
            labels.append(np.ascontiguousarray(label))
        return torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(np.stack(labels)[:, None])

    def to_device(self, device) -> "PatchSampler":
        return self

    def all_slices(self) -> torch.Tensor:
        """Patches that hold every labelled slice, centred in x and y: per volume, from its first labelled slice on,
        a patch starting there (kept inside the frame) covers each slice not yet covered. Draws no random number."""
        patches = []
        for volume, labelled in enumerate(self.labelled):
            frame, shape = self._frame(volume), self.volumes[volume][0].shape
            xy = [(f - p) // 2 for f, p in zip(frame[:2], self.patch[:2])]
            margin, pz = ((self.patch[2] - shape[2]) // 2 if shape[2] < self.patch[2] else 0), self.patch[2]
            covered_to = -1
            for k in labelled:
                if k + margin <= covered_to:
                    continue
                start = min(k + margin, frame[2] - pz)
                covered_to = start + pz - 1
                patches.append(self.patch_at(volume, [*xy, start])[0])
        return torch.from_numpy(np.stack(patches)[:, None])


def sampler(dims: int, volumes, slices, batch_size: int, patch_size, augment_p: float, rng: np.random.Generator):
    """The training sampler of a network that convolves ``dims`` dimensions: slices (2) or patches (3)."""
    if dims == 3:
        return PatchSampler(volumes, slices, batch_size, patch_size, augment_p, rng)
    return SliceSampler(volumes, slices, batch_size, patch_size, augment_p, rng)
