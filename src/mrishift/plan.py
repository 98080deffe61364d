"""What a config means before anything runs: its model variants, every training and scoring run, the GPU jobs they
group into, and their cost on a measured GPU — asked without Snakemake (``mrishift plan``) and by the workflow
(``rules/common.smk`` takes its variants from here).

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

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from mrishift import architectures, registry, strategies, test_time
from mrishift.config import apply_overlay, validate_config
from mrishift.data.splits import parse_budget

SLICES_PER_SCAN = 270  # CC359 at 1 mm (../shared/PROTOCOL.md)
MEASURED_WIDTH = 1.0  # bench/gpu_throughput.py measures the paper's network
SCANS_PER_DOMAIN = 60
RATE_OF_CLASS = {"ft_all": "source", "ft_first": "ft_first", "ft_last": "ft_last"}
SLOWER_THAN_ALL = {"spottune": 2.5}  # bench/train_speed.py on a CPU: spottune's step costs ~2.5 ft_all steps
BF16_SWITCHES = {"bf16", "all_but_compile", "all"}  # bench/gpu_throughput.py's switch settings that train in bf16
JOB_UNITS = {"pair": lambda s, t: (s, t), "target": lambda s, t: t, "strategy": lambda s, t: None}


def load_config(overlays: list[str | Path], default: str | Path = "config/config.yaml",
                plan_only: bool = True) -> dict:
    """The config Snakemake would run: ``default`` (the Snakefile's configfile) with each overlay layered in order,
    its arms and budgets replacing the default's (config.apply_overlay), validated with defaults filled in;
    ``plan_only``: a real-CC359 config needs no data to be planned (as config/plan-only.yaml)."""
    from snakemake.utils import update_config  # Snakemake's own key-by-key merge of each --configfile

    config = (yaml.safe_load(Path(default).read_text()) or {}) if Path(default).exists() else {}
    for path in overlays:
        overlay = yaml.safe_load(Path(path).read_text()) or {}
        update_config(config, overlay)
        apply_overlay(config, overlay)
    if plan_only:
        config.setdefault("data", {}).setdefault("cc359", {})["plan_only"] = True
    return validate_config(config)


def variant(config: dict, arch: str, size: dict, augment_p: float, frozen: bool, optimizer: str) -> tuple[str, dict]:
    """One model variant: an architecture of one size (models.sizes), trained without or with augmentation
    (models.augment_p), its source and oracle models whole or with the encoder frozen at its random initialisation
    (models.frozen_random_encoder: strategy ft_decoder), with SGD or Adam (models.optimizers). The plain variant is
    named after its architecture."""
    family = arch + ("" if augment_p == 0 else f"_aug{augment_p:g}") + ("_frozen_random_encoder" if frozen else "")
    family += "" if optimizer == "sgd" else f"_{optimizer}"
    name = family.replace(arch, arch + architectures.size_suffix(size), 1)
    return name, {"arch": arch, "width": size.get("width", config["models"]["width"]), "levels": size.get("levels"),
                  "augment_p": augment_p, "source_strategy": "ft_decoder" if frozen else "ft_all",
                  "optimizer": optimizer, "family": family,  # family: the variant whatever its size
                  "dims": architectures.dims(arch)}


def variants(config: dict) -> dict[str, dict]:
    """Every model variant of the study: each runs the whole study (source, oracle, fine-tuning, scoring)."""
    models = config["models"]
    return dict(variant(config, arch, size, p, frozen, optimizer) for arch in models["architectures"]
                for size in models["sizes"] for p in models["augment_p"] for frozen in models["frozen_random_encoder"]
                for optimizer in models["optimizers"])


@dataclass
class Plan:
    """The runs and GPU jobs of one validated config."""

    config: dict

    def __post_init__(self):
        config = self.config
        self.domains = list(config["data"]["domains"])
        self.variants = variants(config)
        self.seeds = [str(seed) for seed in config["training"]["seeds"]]
        self.folds = list(range(config["splits"]["n_folds"]))
        self.pairs = registry.chosen_pairs(config["splits"]["finetune_pairs"], self.domains)
        budgets = config["splits"]["budgets"]
        self.arm_pairs = {arm: strategies.arm_pairs(spec, self.pairs) for arm, spec in config["strategies"].items()}
        self.arm_budgets = {arm: strategies.arm_budgets(spec, budgets) for arm, spec in config["strategies"].items()}
        self.method_pairs = {arm: test_time.arm_pairs(spec, self.domains) for arm, spec in config["test_time"].items()}
        self.normalized_domains = [d for d in self.domains if any(
            d == source for arm, spec in config["test_time"].items()
            if test_time.build_arm(arm, spec).source_model == "normalized" for source, _ in self.method_pairs[arm])]

    def runs(self) -> pd.DataFrame:
        """One row per training run and per test-time adaptation of a pair: variant, role, arm, source, target,
        budget, fold, seed."""
        one_chain = [dict(role="source", source=d) for d in self.domains]
        one_chain += [dict(role="source_normalized", source=d) for d in self.normalized_domains]
        one_chain += [dict(role="oracle", source=d, target=d, fold=f) for d in self.domains for f in self.folds]
        one_chain += [dict(role="finetune", arm=arm, source=s, target=t, budget=b)
                      for arm, pairs in self.arm_pairs.items() for s, t in pairs for b in self.arm_budgets[arm]]
        one_chain += [dict(role="test_time", arm=arm, source=s, target=t, budget="0")
                      for arm, pairs in self.method_pairs.items() for s, t in pairs]
        rows = [dict(run, variant=name, seed=seed) for name in self.variants for seed in self.seeds
                for run in one_chain]  # each variant and seed trains the whole chain
        return pd.DataFrame(rows, columns=["variant", "role", "arm", "source", "target", "budget", "fold", "seed"])

    def jobs(self) -> dict[str, int]:
        """Jobs per rule of the rules that train or run a network (each a GPU job on a cluster); one fine-tuning,
        scoring or test-time job covers one arm's runs of one pair, one target or all pairs (training.finetune_job),
        every budget and seed."""
        unit = JOB_UNITS[self.config["training"]["finetune_job"]]
        n_variants, n_seeds, n_domains = len(self.variants), len(self.seeds), len(self.domains)
        finetune = n_variants * sum(len({unit(s, t) for s, t in pairs}) for pairs in self.arm_pairs.values())
        return {"train_source": n_variants * n_seeds * n_domains,
                "train_source_normalized": n_variants * n_seeds * len(self.normalized_domains),
                "train_oracle": n_variants * n_seeds * n_domains * len(self.folds),
                "finetune": finetune, "score_finetune": finetune,
                "score_oracle": n_variants * n_seeds * n_domains, "score_baseline": n_variants * n_seeds * n_domains,
                "adapt_score": n_variants * sum(len({unit(s, t) for s, t in pairs})
                                                for pairs in self.method_pairs.values()),
                "similarity": n_variants, "prediction_qc": n_variants}

    def gpu_hours(self, throughput: dict, switches: str = "defaults") -> pd.DataFrame:
        """GPU-hours per part of the study on the GPU ``throughput`` describes (bench/gpu_throughput.py's JSON):
        columns part, runs (or models, or volumes), million slices, GPU-hours."""
        training, splits = self.config["training"], self.config["splits"]
        rates = {role: figures[switches] for role, figures in throughput["training"].items()}
        inference = throughput["inference"]["bf16+channels_last" if switches in BF16_SWITCHES else "fp32+channels_last"]
        per_variant = len(self.variants) * len(self.seeds)
        domains, folds = len(self.domains), len(self.folds)
        budgets = [parse_budget(b) for b in splits["budgets"]]
        test_scans = SCANS_PER_DOMAIN - max(b.scans for b in budgets)

        def slices_of(recipe):
            return recipe["epochs"] * recipe["iters_per_epoch"] * recipe["batch_size"]

        def validation_slices(recipe):
            return splits["n_validation"] * SLICES_PER_SCAN * recipe["epochs"] // training["validate_every"]

        rows = []
        source = training["source"]
        for part, runs in (("train_source", per_variant * domains), ("train_oracle", per_variant * domains * folds),
                           ("train_source_normalized", per_variant * len(self.normalized_domains))):
            train_s, val_s = slices_of(source), validation_slices(source)
            rows.append((part, runs, runs * (train_s + val_s), runs * (train_s / rates["source"] + val_s / inference)))
        finetuned = 0
        for arm, spec in self.config["strategies"].items():
            description = strategies.describe_arm(arm, spec)
            arm_budgets = [parse_budget(b) for b in self.arm_budgets[arm]]
            runs = per_variant * len(self.arm_pairs[arm]) * len(arm_budgets)
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
        for arm, spec in self.config["test_time"].items():  # per test volume: the method's passes over its slices
            training_passes, inference_passes = test_time.build_arm(arm, spec).passes()
            volumes = per_variant * len(self.method_pairs[arm]) * test_scans
            slices = volumes * SLICES_PER_SCAN
            rows.append((f"adapt_score {arm}", volumes, slices * (training_passes + inference_passes),
                         slices * (training_passes / rates["source"] + inference_passes / inference)))
        table = pd.DataFrame(rows, columns=["part", "runs", "slices", "seconds"])
        # every variant runs the whole study: each part's time is the mean width cost over the variants times theirs
        table["seconds"] *= sum(width_cost(v["width"]) for v in self.variants.values()) / len(self.variants)
        return table.assign(mslices=table.slices / 1e6, gpu_hours=table.seconds / 3600)[
            ["part", "runs", "mslices", "gpu_hours"]]


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
    hours = plan.gpu_hours(throughput, switches)
    lines.append(f"GPU-hours on {throughput['device']} ({switches}; 1 mm CC359, 270 slices a scan):")
    lines += [f"  {r.part:<32} {r.runs:>8,} {r.mslices:>9.1f} Mslices {r.gpu_hours:>8.1f} h" for r in hours.itertuples()]
    lines.append(f"  {'total':<32} {'':>8} {hours.mslices.sum():>9.1f} Mslices {hours.gpu_hours.sum():>8.1f} h")
    return "\n".join(lines)
