"""The full study (config/paper.yaml): planning time and jobs per rule, and its GPU-hours from measured throughput.

    .venv/bin/python bench/plan_paper.py                                   # plan + estimate from the H100 figures
    .venv/bin/python bench/plan_paper.py --throughput my_gpu.json --switches defaults+compile --no-plan

Planning runs `snakemake -n --configfile config/paper.yaml config/plan-only.yaml` in a scratch directory (so no
earlier results count: everything is planned) and prints the wall time and the jobs per rule.

The estimate counts, from the config, the optimizer steps of every training run and the slices every model
predicts (validation during training, then scoring), and divides by the slices/s that bench/gpu_throughput.py
measured (``--throughput``, its ``--json`` output) under one switch setting (``--switches``: the config's
defaults, i.e. fp32 + channels_last + device-held batches, unless told otherwise). Assumptions, printed with the
table: CC359 at 1 mm has 60 scans per domain of about 270 axial slices (../shared/PROTOCOL.md); a fine-tuning arm
costs what its trainable layers cost (all layers → the source-training rate, first / last layers → their measured
rates; a class the benchmark did not measure → the all-layer rate, an upper bound, or for a class that runs more
than the network (spottune) the all-layer rate divided by its CPU-measured slowdown; arms that do not train → one
forward pass over the budget); the vanilla and the 3D U-Net are costed at the residual U-Net's rate, as if they
trained on the same slices (not measured: a 3D step of 7 patches of 64³ holds 0.87× the voxels of 32 slices of 256²
at 3× the multiply-adds per voxel, so the 3D rows are a lower bound). GPU time only: surface-distance metrics run on
the CPU beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from gpu_throughput import SWITCHES  # bench/ is on the path when this file runs as a script

from mrishift import strategies, test_time
from mrishift.config import validate_config
from mrishift.data.splits import parse_budget

ROOT = Path(__file__).resolve().parents[1]
SCANS_PER_DOMAIN, SLICES_PER_SCAN = 60, 270  # CC359 at 1 mm (../shared/PROTOCOL.md)
RATE_OF_CLASS = {"ft_all": "source", "ft_first": "ft_first", "ft_last": "ft_last"}
# A class slower per step than all layers, by its CPU-measured factor (bench/train_speed.py, not measured on a GPU):
# spottune runs a frozen copy and a policy network beside the network (0.38× ft_all at the demo's size, 0.40× at the
# paper's width with 80-pixel patches).
SLOWER_THAN_ALL = {"spottune": 2.5}
ORIGINAL_COST = "DART20: 'about 4 hours' per 100-epoch training on a V100, the study on the order of 750 V100-hours"


def plan() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                   workdir, "--cores", "1", "--configfile", str(ROOT / "config/paper.yaml"),
                   str(ROOT / "config/plan-only.yaml")]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    table = result.stdout.split("Job stats:")[1].split("\n\n")[0]
    print(table.strip())
    print(f"planned in {seconds:.1f} s (snakemake -n, this machine)\n")


def gpu_hours(config: dict, throughput: dict, switches: str) -> list[tuple[str, int, float, float]]:
    """(what, runs or models, million slices, GPU-hours) per part of the study."""
    training, splits = config["training"], config["splits"]
    rates = {role: figures[switches] for role, figures in throughput["training"].items()}
    bf16 = SWITCHES[switches].get("bf16", False)
    inference = throughput["inference"]["bf16+channels_last" if bf16 else "fp32+channels_last"]
    variants = len(config["models"]["architectures"]) * len(config["models"]["augment_p"])
    seeds, domains, folds = len(training["seeds"]), len(config["data"]["domains"]), splits["n_folds"]
    pairs, budgets = domains * (domains - 1), [parse_budget(b) for b in splits["budgets"]]
    test_scans = SCANS_PER_DOMAIN - max(b.scans for b in budgets)

    def slices_of(recipe):
        return recipe["epochs"] * recipe["iters_per_epoch"] * recipe["batch_size"]

    def validation_slices(recipe):
        return splits["n_validation"] * SLICES_PER_SCAN * recipe["epochs"] // training["validate_every"]

    rows = []
    source = training["source"]
    for role, runs in (("train_source", variants * seeds * domains), ("train_oracle", variants * seeds * domains * folds)):
        train_s, val_s = slices_of(source), validation_slices(source)
        rows.append((role, runs, runs * (train_s + val_s) / 1e6,
                     runs * (train_s / rates["source"] + val_s / inference) / 3600))
    finetuned = 0
    for arm, spec in config["strategies"].items():
        description = strategies.describe_arm(arm, spec)
        arm_budgets = [parse_budget(b) for b in strategies.arm_budgets(spec, splits["budgets"])]
        runs = variants * seeds * pairs * len(arm_budgets)
        if description["trains"]:
            rate = rates[RATE_OF_CLASS.get(description["class"], "source")] / SLOWER_THAN_ALL.get(
                description["class"], 1.0)
            work = slices_of(training["finetune"])
        else:  # one forward pass over the budget's slices (bn_stats), at the inference rate
            rate = inference
            work = sum(b.scans * SLICES_PER_SCAN // b.every for b in arm_budgets) / len(arm_budgets)
        rows.append((f"finetune {arm}", runs, runs * work / 1e6, runs * work / rate / 3600))
        finetuned += runs
    scored = {"score_oracle": (variants * seeds * domains * folds, SCANS_PER_DOMAIN / folds),
              "score_baseline": (variants * seeds * domains, (domains - 1) * test_scans),
              "score_finetune": (finetuned, test_scans)}
    for rule, (models, scans) in scored.items():
        slices = models * scans * SLICES_PER_SCAN
        rows.append((rule, models, slices / 1e6, slices / inference / 3600))
    for arm, spec in config["test_time"].items():  # per test volume: the method's passes over its slices
        training_passes, inference_passes = test_time.build_arm(arm, spec).passes()
        volumes = variants * seeds * len(test_time.arm_pairs(spec, config["data"]["domains"])) * test_scans
        slices = volumes * SLICES_PER_SCAN
        rows.append((f"adapt_score {arm}", volumes, slices * (training_passes + inference_passes) / 1e6,
                     slices * (training_passes / rates["source"] + inference_passes / inference) / 3600))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config/paper.yaml")
    parser.add_argument("--throughput", type=Path, default=ROOT / "bench/measured/h100-2026-11-22.json")
    parser.add_argument("--switches", default="defaults", help="a switch setting of the throughput file")
    parser.add_argument("--plan", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.plan:
        plan()
    config = yaml.safe_load(args.config.read_text())
    config.setdefault("data", {}).setdefault("cc359", {})["plan_only"] = True  # as config/plan-only.yaml: no data
    config = validate_config(config)
    throughput = json.loads(args.throughput.read_text())
    rows = gpu_hours(config, throughput, args.switches)
    print(f"GPU-hours of {args.config.name} on {throughput['device']} ({args.switches}; {args.throughput.name})")
    print(f"{'part':>28} {'runs/models':>11} {'Mslices':>9} {'GPU-h':>8}")
    for what, count, mslices, hours in rows:
        print(f"{what:>28} {count:>11,} {mslices:>9.1f} {hours:>8.1f}")
    print(f"{'total':>28} {'':>11} {sum(r[2] for r in rows):>9.1f} {sum(r[3] for r in rows):>8.1f}")
    print(f"({ORIGINAL_COST}; assumptions: bench/plan_paper.py's docstring)")


if __name__ == "__main__":
    main()
