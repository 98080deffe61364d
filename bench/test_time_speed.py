"""Cost of each test-time method per volume, as a ratio to plain inference (``predict_volume``) of the same volume.

    .venv/bin/python bench/test_time_speed.py                      # the demo's size: 48×48×38, width 0.5, 1 thread
    .venv/bin/python bench/test_time_speed.py --shape 170 256 256 --width 1 --device cuda

Each method runs through the same per-volume path the workflow scores with (a fresh copy of the source model,
adapted, then ``predict_volume``); the arms and hyper-parameters are those of ``--config`` (default: the embedded
default's ``test_time``). Content does not change the cost, so the volume is random with a zero background; the
networks' BatchNorm statistics come from a few training-mode passes. Prints the best of ``--repeats`` per method.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mrishift.adaptation import test_time
from mrishift.evaluation.scoring import predict_volume
from mrishift.models import networks
from mrishift.models.inputs import resolve_device

ROOT = Path(__file__).resolve().parents[1]


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def source_model(arch: str, width: float, shape) -> torch.nn.Module:
    """A network whose BatchNorm statistics come from a few training-mode passes (the content does not change cost)."""
    torch.manual_seed(0)
    model = networks.build(arch, width=width).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 1, shape[0], shape[1]))
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 48, 38], help="x y z of the volume (z: slices)")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=Path, default=ROOT / "config/config.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    source_models = {kind: source_model("unet2d_residual" + suffix, args.width, args.shape)
                     for kind, suffix in (("plain", ""), ("normalized", networks.NORMALIZED))}
    model = source_models["plain"]
    rng = np.random.default_rng(0)
    image = rng.random(args.shape, dtype=np.float32)
    image[: args.shape[0] // 5] = 0
    reference = test_time.SourceReference(np.quantile(image[image > 0], np.linspace(0, 1, 1001)) ** 0.8)
    arms = yaml.safe_load(args.config.read_text())["test_time"]

    def plain():
        predict_volume(model, image, device=device)

    plain()
    inference = best_time(plain, args.repeats)
    print(f"volume {tuple(args.shape)}, width {args.width:g}, {args.threads} thread(s), {device}; "
          f"plain inference {inference:.3f} s")
    print(f"{'arm':>14} {'s/volume':>9} {'× inference':>12} {'passes (train, infer)':>22}")
    for arm, spec in arms.items():
        method = test_time.build_arm(arm, spec)
        adapt = method.per_volume(source_models[method.source_model], reference, device)

        def adapted():
            network, volume = adapt(image)
            predict_volume(network, volume, device=device)

        seconds = best_time(adapted, args.repeats)
        print(f"{arm:>14} {seconds:9.3f} {seconds / inference:12.1f} {str(method.passes()):>22}")


if __name__ == "__main__":
    main()
