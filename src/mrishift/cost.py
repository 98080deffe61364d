"""The bill before the run: the GPU-hours of a study plan (``mrishift.plan.Plan``) on a measured GPU.

GPU-hours are counted from the config: the optimizer steps of every training run and the slices every model predicts
(validation during training, then scoring), divided by the slices/s that ``bench/gpu_throughput.py`` measured under
one switch setting (``bench/measured/*.json``). Assumptions, printed with the bill: real CC359 at 1 mm, ~270 axial
slices per scan (../shared/PROTOCOL.md); on the synthetic default the scans are the config's, but the rates are still
the 256² GPU's (a bill for a cluster run, not for the demo). A fine-tuning arm costs what its trainable layers cost
(all layers: the source rate; first / last layers: their measured rates; a class the benchmark did not measure: the
all-layer rate, or for one that runs more than the network (spottune) that rate divided by its CPU-measured
slowdown; an arm that does not train: one forward pass over its budget). The vanilla and 3D U-Nets are costed at the
residual U-Net's rate (not measured there: the 3D rows are a lower bound). A network wider than the measured one
(width 1) costs width² as much (its convolutions' FLOPs; at the paper's batch one width-1 run already fills an H100),
a narrower one width 1's rate (a small network does not fill the GPU: a lower bound). GPU time only: the surface-distance
metrics run on the CPU beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from mrishift.data.splits import parse_budget

if TYPE_CHECKING:
    from mrishift.plan import Plan

SLICES_PER_SCAN = 270  # CC359 at 1 mm (../shared/PROTOCOL.md)
MEASURED_WIDTH = 1.0  # bench/gpu_throughput.py measures the paper's network
SCANS_PER_DOMAIN = 60
RATE_OF_CLASS = {"ft_all": "source", "ft_first": "ft_first", "ft_last": "ft_last"}
SLOWER_THAN_ALL = {"spottune": 2.5}  # bench/train_speed.py on a CPU: spottune's step costs ~2.5 ft_all steps
BF16_SWITCHES = {"bf16", "all_but_compile", "all"}  # bench/gpu_throughput.py's switch settings that train in bf16


def gpu_hours(plan: Plan, throughput: dict, switches: str = "defaults") -> pd.DataFrame:
    """GPU-hours per part of ``plan``'s study on the GPU ``throughput`` describes (bench/gpu_throughput.py's JSON):
    columns part, runs (or models, or volumes), million slices, GPU-hours."""
    training, splits = plan.config["training"], plan.config["splits"]
    rates = {role: figures[switches] for role, figures in throughput["training"].items()}
    inference = throughput["inference"]["bf16+channels_last" if switches in BF16_SWITCHES else "fp32+channels_last"]
    per_variant = len(plan.variants) * len(plan.seeds)
    domains, folds = len(plan.domains), len(plan.folds)
    budgets = [parse_budget(b) for b in splits["budgets"]]
    test_scans = SCANS_PER_DOMAIN - max(b.scans for b in budgets)

    def slices_of(recipe):
        return recipe["epochs"] * recipe["iters_per_epoch"] * recipe["batch_size"]

    def validation_slices(recipe):
        return splits["n_validation"] * SLICES_PER_SCAN * recipe["epochs"] // training["validate_every"]

    rows = []
    source = training["source"]
    for part, runs in (("train_source", per_variant * domains), ("train_oracle", per_variant * domains * folds),
                       ("train_source_normalized", per_variant * len(plan.normalized_domains))):
        train_s, val_s = slices_of(source), validation_slices(source)
        rows.append((part, runs, runs * (train_s + val_s), runs * (train_s / rates["source"] + val_s / inference)))
    finetuned = 0
    for arm, description in plan.arm_descriptions.items():
        arm_budgets = [parse_budget(b) for b in plan.arm_budgets[arm]]
        runs = per_variant * len(plan.arm_pairs[arm]) * len(arm_budgets)
        if description["trains"]:
            rate = rates[RATE_OF_CLASS.get(description["class"], "source")] / SLOWER_THAN_ALL.get(
                description["class"], 1.0)
            work = slices_of(training["source" if description["from_scratch"] else "finetune"])
        else:  # one forward pass over the budget's slices (bn_stats), at the inference rate
            rate = inference
            work = sum(b.scans * SLICES_PER_SCAN // b.every for b in arm_budgets) / len(arm_budgets)
        rows.append((f"finetune {arm}", runs, runs * work, runs * work / rate))
        finetuned += runs
    scored = {"score_oracle": (per_variant * domains * folds, SCANS_PER_DOMAIN / folds),
              "score_baseline": (per_variant * domains, (domains - 1) * test_scans),
              "score_finetune": (finetuned, test_scans)}
    for part, (models, scans) in scored.items():
        slices = models * scans * SLICES_PER_SCAN
        rows.append((part, models, slices, slices / inference))
    for arm, method in plan.test_time_methods.items():  # per test volume: the method's passes over its slices
        training_passes, inference_passes = method.passes()
        volumes = per_variant * len(plan.method_pairs[arm]) * test_scans
        slices = volumes * SLICES_PER_SCAN
        rows.append((f"adapt_score {arm}", volumes, slices * (training_passes + inference_passes),
                     slices * (training_passes / rates["source"] + inference_passes / inference)))
    table = pd.DataFrame(rows, columns=["part", "runs", "slices", "seconds"])
    # every variant runs the whole study: each part's time is the mean width cost over the variants times theirs
    table["seconds"] *= sum(width_cost(v["width"]) for v in plan.variants.values()) / len(plan.variants)
    return table.assign(mslices=table.slices / 1e6, gpu_hours=table.seconds / 3600)[
        ["part", "runs", "mslices", "gpu_hours"]]


# Disk, measured on config/rehearsal.yaml's data stages (2026-12-05; all 359 scans of the synthetic CC359 on CC359's
# grids, `mrishift usage`): a scan resampled to 1 mm is 24.97 MiB on average (image and mask, nii.gz; 14.5 MiB for
# Siemens 1.5T, already at 1 mm, to 41.3 MiB for Siemens 3T, interpolated from 1.33 mm) and its scaled image 26.40 MiB;
# on another grid a scan's files scale with its voxel count. Real scans compress differently (their noise is not the
# generator's).
PREPROCESSED_BYTES_AT_1MM = (24.97 + 26.40) * 2**20


def disk_gb(plan: Plan) -> pd.DataFrame:
    """The disk a study's files take (GB) per part: preprocessed scans, the models every run keeps (a source model
    also its optimizer's state, as its training leaves it for the fine-tunes), the snapshots. A model file's size is
    what ``save_model`` writes for the variant's network (one written per variant to a temporary folder). Scores and
    figures are MBs; checkpoints are transient (one per run in training, deleted once its job is done)."""
    import tempfile
    from pathlib import Path

    from mrishift.models import networks
    from mrishift.training.runs import save_model

    spacing = plan.config["preprocess"]["spacing_mm"]
    scans_gb = len(plan.cases) * PREPROCESSED_BYTES_AT_1MM / (spacing[0] * spacing[1] * spacing[2]) / 1e9
    model_gb = {}
    with tempfile.TemporaryDirectory() as folder:  # each variant's model file, written as a run writes it
        for name, spec in plan.variants.items():
            path = Path(folder) / f"{name}.pt"
            save_model(path, networks.build(spec["arch"], **plan.network(name)), spec["arch"], spec["width"])
            model_gb[name] = path.stat().st_size / 1e9
    runs = plan.runs()
    copies = runs.role.isin(["source", "source_normalized"]).map({True: 2, False: 1})  # + momentum (SGD; Adam: 2)
    models_gb = float((runs.variant.map(model_gb) * copies).sum())
    snapshots = len(plan.snapshot_runs()) * len(plan.snapshot_steps)  # of each variant
    return pd.DataFrame([("preprocessed scans", len(plan.cases), scans_gb), ("models", len(runs), models_gb),
                         ("snapshots", snapshots * len(plan.variants), snapshots * sum(model_gb.values()))],
                        columns=["part", "files", "gb"])


def width_cost(width: float) -> float:
    """GPU time of a network of ``width`` relative to the measured one (see the module's docstring)."""
    return max(1.0, width / MEASURED_WIDTH) ** 2


def bill(plan: Plan, throughput: dict, switches: str, name: str) -> str:
    """The text ``mrishift plan`` prints: runs per role and arm, GPU jobs per rule, GPU-hours per part."""
    runs = plan.runs()
    lines = [f"{name}: {len(plan.variants)} model variant(s) ({', '.join(plan.variants)}), {len(plan.seeds)} seed(s), "
             f"{len(plan.domains)} domains, {len(plan.pairs)} fine-tuning pairs, budgets "
             f"{', '.join(plan.config['splits']['budgets'])}", "", "runs per role and arm (all variants and seeds):"]
    counts = runs.fillna({"arm": "-"}).groupby(["role", "arm"], sort=False).size()
    lines += [f"  {role:<18} {arm:<22} {count:>8,}" for (role, arm), count in counts.items()]
    lines += [f"  {'total':<41} {len(runs):>8,}", "", "GPU jobs per rule:"]
    jobs = plan.jobs()
    lines += [f"  {rule:<41} {count:>8,}" for rule, count in jobs.items() if count]
    lines += [f"  {'total':<41} {sum(jobs.values()):>8,}", ""]
    hours = gpu_hours(plan, throughput, switches)
    lines.append(f"GPU-hours on {throughput['device']} ({switches}; 1 mm CC359, 270 slices a scan):")
    lines += [f"  {r.part:<32} {r.runs:>8,} {r.mslices:>9.1f} Mslices {r.gpu_hours:>8.1f} h" for r in hours.itertuples()]
    lines.append(f"  {'total':<32} {'':>8} {hours.mslices.sum():>9.1f} Mslices {hours.gpu_hours.sum():>8.1f} h")
    disk = disk_gb(plan)
    lines += ["", "Disk (results/ and resources/; the raw download besides):"]
    lines += [f"  {r.part:<32} {r.files:>8,} files {r.gb:>9.1f} GB" for r in disk.itertuples()]
    lines.append(f"  {'total':<32} {'':>14} {disk.gb.sum():>9.1f} GB")
    return "\n".join(lines)
