"""Training throughput of the paper's U-Net: optimizer steps/second and slices/second per strategy, and each
strategy's speed relative to fine-tuning all layers (the per-step cost of its penalty, mixed batches, frozen set).

    .venv/bin/python bench/train_speed.py --patch 80 256 --batch 16 --threads 1 2
    .venv/bin/python bench/train_speed.py --patch 64 --batch 8 --threads 1 --width 0.5 --strategies all   # the demo's

Prints one line per (patch, threads, strategy). Uses random slices (speed does not depend on content) and the real
trainer loop (mrishift.training.loop.train), so what it measures is what the workflow runs: a strategy mixing in source
slices gets a source sampler, one continuing the source optimizer a source run's state.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrishift.adaptation import strategies
from mrishift.models import networks
from mrishift.training.loop import Recipe, train
from mrishift.training.sampling import SliceSampler


def measure(patch: int, batch: int, threads: int, strategy: str, steps: int, device: str, bf16: bool,
            width: float = 1.0) -> float:
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    volumes = [(rng.random((patch, patch, 8), dtype=np.float32), (rng.random((patch, patch, 8)) > 0.5).astype(np.float32))]
    recipe = Recipe(epochs=1, iters_per_epoch=steps, batch_size=batch, patch_size=patch, device=device, bf16=bf16)
    warmup = Recipe(**{**recipe.__dict__, "iters_per_epoch": 2})
    model = networks.build("unet2d_residual", width=width)
    sampler = SliceSampler(volumes, [range(8)], batch, patch, 0.0, rng)
    source = SliceSampler(volumes, [range(8)], batch, patch, 0.0, np.random.default_rng(1))
    source_run = train(model, strategies.build("ft_all"), sampler, warmup, seed=0, keep_optimizer=True)
    extra = {"source": source, "source_optimizer": source_run["optimizer_state"]}  # what mmtl / octl read
    model, _ = strategies.build(strategy).network(model, "unet2d_residual", width)  # spottune: its gated network
    train(model, strategies.build(strategy), sampler, warmup, seed=0, **extra)
    start = time.perf_counter()
    train(model, strategies.build(strategy), sampler, recipe, seed=0, **extra)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, nargs="+", default=[80, 256])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--strategies", nargs="+", default=["ft_all", "ft_first", "ft_last"],
                        help="registered strategies ('all': every one that trains), ft_all first")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over every strategy; each keeps its fastest (the first round runs on a cold "
                             "allocator and caches, which made ft_all, measured first, look slower than l2sp)")
    parser.add_argument("--width", type=float, default=1.0, help="channel-width multiplier (the default config: 0.5)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    names = [n for n in strategies.names() if strategies.build(n).trains] if args.strategies == ["all"] \
        else args.strategies
    names = ["ft_all"] + [n for n in names if n != "ft_all"]  # the reference of the last column
    print(f"width {args.width:g}, device {args.device}, {args.steps} timed steps, fastest of {args.repeats} rounds")
    print(f"{'patch':>5} {'batch':>5} {'threads':>7} {'strategy':>10} {'steps/s':>8} {'slices/s':>9} {'× ft_all':>8}")
    for patch in args.patch:
        for threads in args.threads:
            rates = {strategy: 0.0 for strategy in names}
            for _ in range(args.repeats):  # interleaved, so a slow spell of the machine is not one strategy's
                for strategy in names:
                    rates[strategy] = max(rates[strategy], measure(patch, args.batch, threads, strategy, args.steps,
                                                                   args.device, args.bf16, args.width))
            reference = rates["ft_all"]
            for strategy, rate in rates.items():
                print(f"{patch:>5} {args.batch:>5} {threads:>7} {strategy:>10} {rate:>8.2f} {rate * args.batch:>9.1f} "
                      f"{rate / reference:>8.2f}")


if __name__ == "__main__":
    main()
