"""Training and inference throughput of the paper recipe (256² patches, batch 32, width 1.0), with each speed switch.

    .venv/bin/python bench/gpu_throughput.py                       # on a GPU: every switch, 1-8 runs at once
    .venv/bin/python bench/gpu_throughput.py --steps 3 --concurrent 1 2 --json results/bench/cpu.json   # a CPU

Training goes through the real loop (``mrishift.training.loop.train``) on random volumes (speed does not depend on
content), so what it measures is what the workflow runs. Printed:

1. slices/s per role (source training = all layers of a fresh network; fine-tuning first / last layers) and switch
   setting, with the speed-up over the baseline (fp32, contiguous, eager, host batches) as a ratio from the same run;
   on a CPU bf16, compile and device-held data are ignored by the trainer, so those rows only repeat the baseline;
2. inference slices/s (``predict_volume`` over a patch × patch × 160 volume) per precision and memory format;
3. several fine-tuning runs at once on the device (``training.runs_per_device``): one process each, as
   ``mrishift.training.jobs`` runs them, started together; the aggregate slices/s and the speed-up over one run.

``--json`` writes every figure, for ``bench/plan_paper.py --throughput`` (the study's GPU-hour estimate).
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mrishift.adaptation import strategies
from mrishift.evaluation.scoring import predict_volume
from mrishift.io import write_json
from mrishift.models import networks
from mrishift.models.inputs import resolve_device
from mrishift.training.loop import Recipe, train
from mrishift.training.sampling import SliceSampler

ROLES = {"source": "ft_all", "ft_all": "ft_all", "ft_first": "ft_first", "ft_last": "ft_last"}
SWITCHES = {  # name -> recipe changes from the baseline (fp32, contiguous, eager, batches cut on the host)
    "baseline": {},
    "data_on_device": {"data_on_device": True},
    "channels_last": {"channels_last": True},
    "bf16": {"bf16": True},
    "compile": {"compile": True},
    "defaults": {"data_on_device": True, "channels_last": True},  # the config's defaults: fp32, as the public code
    "defaults+compile": {"data_on_device": True, "channels_last": True, "compile": True},
    "all_but_compile": {"data_on_device": True, "channels_last": True, "bf16": True},
    "all": {"data_on_device": True, "channels_last": True, "bf16": True, "compile": True},
}
BASELINE = {"bf16": False, "channels_last": False, "compile": False, "data_on_device": False}


def synthetic_sampler(patch: int, batch: int, seed: int = 0, depth: int = 32) -> SliceSampler:
    rng = np.random.default_rng(seed)
    image = rng.random((patch, patch, depth), dtype=np.float32)
    mask = (rng.random((patch, patch, depth)) > 0.5).astype(np.float32)
    return SliceSampler([(image, mask)], [range(depth)], batch, patch, 0.0, rng)


def _warmed_up(role: str, recipe: Recipe, steps: int, width: float, warmup: int):
    """A run after ``warmup`` steps (compilation, cuDNN autotuning); returns the call that trains ``steps`` more."""
    torch.manual_seed(0)
    model = networks.build("unet2d_residual", width=width)
    strategy = strategies.build(ROLES[role])
    train(model, strategy, synthetic_sampler(recipe.patch_size, recipe.batch_size),
          replace(recipe, epochs=1, iters_per_epoch=warmup), seed=0)
    sampler = synthetic_sampler(recipe.patch_size, recipe.batch_size, seed=1)
    _synchronize()

    def timed():
        train(model, strategy, sampler, replace(recipe, epochs=1, iters_per_epoch=steps), seed=0)
        _synchronize()

    return timed


def training_rate(role: str, recipe: Recipe, steps: int, width: float, warmup: int) -> float:
    """Slices/s of ``steps`` optimizer steps of one run, after its warm-up."""
    timed = _warmed_up(role, recipe, steps, width, warmup)
    start = time.perf_counter()
    timed()
    return steps * recipe.batch_size / (time.perf_counter() - start)


def inference_rate(device: str, bf16: bool, channels_last: bool, width: float, patch: int, repeats: int = 3) -> float:
    model = networks.build("unet2d_residual", width=width)
    volume = np.random.default_rng(0).random((patch, patch, 160), dtype=np.float32)
    predict_volume(model, volume, 32, device, bf16, channels_last)  # warm-up
    _synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        predict_volume(model, volume, 32, device, bf16, channels_last)
    _synchronize()
    return repeats * volume.shape[2] / (time.perf_counter() - start)


def _synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _concurrent_worker(role, recipe, steps, width, warmup, barrier, results):
    torch.set_num_threads(1)
    timed = _warmed_up(role, recipe, steps, width, warmup)
    barrier.wait(timeout=600)
    timed()
    results.put(time.perf_counter())


def concurrent_rate(n: int, role: str, recipe: Recipe, steps: int, width: float, warmup: int) -> float:
    """Aggregate slices/s of ``n`` runs trained at once, one process each (as ``mrishift.training.jobs`` does)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(n + 1), context.Queue()
    workers = [context.Process(target=_concurrent_worker, args=(role, recipe, steps, width, warmup, barrier, results))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=600)  # a worker that dies before the start breaks the barrier instead of hanging
    start = time.perf_counter()
    ends = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise RuntimeError(f"a benchmark worker failed with exit code {worker.exitcode}")
    return n * steps * recipe.batch_size / (max(ends) - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--roles", nargs="+", default=["source", "ft_first", "ft_last"], choices=list(ROLES),
                        help="ft_all computes what source training does")
    parser.add_argument("--switches", nargs="*", default=list(SWITCHES), choices=list(SWITCHES),
                        help="switch settings of the training table (empty: skip it)")
    parser.add_argument("--inference", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--concurrent", type=int, nargs="*", default=[1, 2, 4, 8],
                        help="runs at once on the device (empty: skip)")
    parser.add_argument("--concurrent-switches", nargs="+", default=["defaults", "defaults+compile"],
                        choices=list(SWITCHES))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"patch {args.patch}, batch {args.batch}, width {args.width:g}, {args.steps} timed steps")
    base = Recipe(epochs=1, iters_per_epoch=1, batch_size=args.batch, patch_size=args.patch, device=str(device),
                  **BASELINE)
    figures = {"device": name, "device_type": device.type, "torch": torch.__version__, "patch": args.patch,
               "batch": args.batch, "width": args.width, "training": {}, "inference": {}, "concurrent": {}}

    tables = []
    if args.switches:
        tables.append(lambda: training_table(args, base, figures))
    if args.inference:
        tables.append(lambda: inference_table(args, device, figures))
    for switches in args.concurrent_switches if args.concurrent else []:
        tables.append(lambda switches=switches: concurrent_table(args, replace(base, **SWITCHES[switches]), switches,
                                                                 figures))
    for table in tables:
        table()
        if args.json:  # after every table, so that a benchmark stopped at a time limit keeps what it measured
            write_json(args.json, figures)


def training_table(args, base: Recipe, figures: dict):
    print("\ntraining slices/s (× = speed-up over baseline in this run)")
    print(f"{'switches':>16} " + " ".join(f"{role:>17}" for role in args.roles))
    for switch in args.switches:
        rates = {}
        for role in args.roles:
            rates[role] = training_rate(role, replace(base, **SWITCHES[switch]), args.steps, args.width, args.warmup)
            figures["training"].setdefault(role, {})[switch] = rates[role]
        cells = []
        for role in args.roles:
            baseline = figures["training"][role].get("baseline")
            ratio = f"×{rates[role] / baseline:.2f}" if baseline else ""
            cells.append(f"{rates[role]:>10.1f} {ratio:>6}")
        print(f"{switch:>16} " + " ".join(cells))


def inference_table(args, device, figures: dict):
    print(f"\ninference slices/s (whole {args.patch} × {args.patch} × 160 volume, batch 32)")
    for bf16 in (False, True):
        for channels_last in (False, True):
            rate = inference_rate(str(device), bf16, channels_last, args.width, args.patch)
            key = f"{'bf16' if bf16 else 'fp32'}{'+channels_last' if channels_last else ''}"
            figures["inference"][key] = rate
            ratio = rate / figures["inference"]["fp32"]
            print(f"{key:>20} {rate:>10.1f} ×{ratio:.2f}")


def concurrent_table(args, recipe: Recipe, switches: str, figures: dict):
    print(f"\nfine-tuning runs at once (ft_all, one process each, switches: {switches})")
    print(f"{'runs':>5} {'slices/s':>10} {'per run':>9} {'speed-up':>8}")
    rates = figures["concurrent"].setdefault(switches, {})
    for n in args.concurrent:
        rates[str(n)] = concurrent_rate(n, "ft_all", recipe, args.steps, args.width, args.warmup)
        first = rates[str(args.concurrent[0])]
        print(f"{n:>5} {rates[str(n)]:>10.1f} {rates[str(n)] / n:>9.1f} ×{rates[str(n)] / first:>7.2f}")


if __name__ == "__main__":
    main()
