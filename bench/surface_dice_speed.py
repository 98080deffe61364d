"""Surface Dice speed: mrishift.evaluation.metrics.surface_dice against DeepMind's `surface-distance` on a brain-sized
pair.

    .venv/bin/python bench/surface_dice_speed.py --shape 170 256 256 --spacing 1 1 1 --tolerance 1 --repeats 3

The pair is a smooth, folded head-sized blob (ground truth) and a perturbed copy of it (prediction), so both surfaces
have the size and roughness of real brain masks. Prints both timings (best of --repeats), the ratio and both values.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from mrishift.evaluation.metrics import surface_dice


def brain_like_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid[0] / 0.8) ** 2 + (grid[1] / 0.7) ** 2 + (grid[2] / 0.75) ** 2)
    folds = ndimage.gaussian_filter(rng.standard_normal(shape), 4)
    folds /= folds.std()
    gt = radius + 0.05 * folds < 1.0
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    pred = radius + 0.05 * folds + 0.04 * noise / noise.std() < 1.0
    return gt, pred


def best_time(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[170, 256, 256])
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    parser.add_argument("--tolerance", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import surface_distance

    gt, pred = brain_like_pair(tuple(args.shape))
    spacing = tuple(args.spacing)

    def reference():
        distances = surface_distance.compute_surface_distances(gt, pred, spacing)
        return surface_distance.compute_surface_dice_at_tolerance(distances, args.tolerance)

    surface_dice(gt[:8, :8, :8], pred[:8, :8, :8], spacing, args.tolerance)  # builds the cached lookup table
    ours_s, ours = best_time(lambda: surface_dice(gt, pred, spacing, args.tolerance), args.repeats)
    ref_s, ref = best_time(reference, args.repeats)
    print(f"shape {tuple(args.shape)}, spacing {spacing} mm, tolerance {args.tolerance} mm, "
          f"gt {int(gt.sum())} voxels, pred {int(pred.sum())} voxels")
    print(f"{'mrishift.evaluation.metrics':<31} {ours_s:8.3f} s   sDice {ours:.9f}")
    print(f"{'surface-distance (DeepMind)':<31} {ref_s:8.3f} s   sDice {ref:.9f}")
    print(f"speed-up {ref_s / ours_s:.1f}x   |difference| {abs(ours - ref):.2e}")


if __name__ == "__main__":
    main()
