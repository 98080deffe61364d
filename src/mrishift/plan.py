"""What a config means before anything runs: its model variants, scans, arms and their pairs and budgets, every
training and test-time run, what each reads, and how the runs group into jobs — one object, ``Plan``, that the
workflow (``rules/common.smk``), the cost command (``mrishift plan``, ``mrishift.cost``) and the tests all ask,
without Snakemake and without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from mrishift.adaptation import registry, strategies, test_time
from mrishift.config import apply_overlay, validate_config
from mrishift.cost import bill, gpu_hours, width_cost  # noqa: F401  (bill, width_cost: importable from here as before)
from mrishift.data import protocol
from mrishift.data.cc359 import DOMAINS, case_id, subject_ids
from mrishift.data.splits import scan_roles
from mrishift.evaluation import similarity
from mrishift.models import architectures

# What one fine-tuning, scoring or test-time job covers (training.finetune_job): its key among a run's (source, target).
JOB_UNITS = {"pair": lambda s, t: (s, t), "target": lambda s, t: t, "strategy": lambda s, t: None}
Run = tuple[str, str, str, str]  # (source, target, budget, seed) of one fine-tuning run of an arm


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
    """The study one validated config means. Arms are named as the config names them (the ``{strategy}`` wildcard
    and every table's "strategy" column); test-time arms are "methods" (the ``{method}`` wildcard)."""

    config: dict

    def __post_init__(self):
        config, splits = self.config, self.config["splits"]
        self.domains = list(config["data"]["domains"])
        if config["data"]["source"] == "synthetic":
            count = config["data"]["synthetic"]["subjects_per_domain"]
            self.cases_by_domain = {d: subject_ids(d, count) for d in self.domains}
        else:
            self.cases_by_domain = {d: [case_id(i) for i in DOMAINS[d].ids] for d in self.domains}
        self.cases = [case for cases in self.cases_by_domain.values() for case in cases]
        # which scans each role reads, decided without reading an image (a budget's slice indices are not)
        self.scan_roles = {d: scan_roles(d, self.cases_by_domain[d], splits["seed"], splits["n_validation"],
                                         splits["n_folds"], splits["budgets"], splits["n_finetune_validation"])
                           for d in self.domains}
        self.variants = variants(config)
        self.seeds = [str(seed) for seed in config["training"]["seeds"]]
        self.folds = list(range(splits["n_folds"]))
        self.budgets = list(splits["budgets"])
        self.pairs = registry.chosen_pairs(splits["finetune_pairs"], self.domains)
        # fine-tuning arms: name -> {strategy: class (default: the name), budgets, sources, targets, hyper-parameters}
        self.arms = config["strategies"]
        self.strategies = list(self.arms)
        built = {arm: strategies.build_arm(arm, spec) for arm, spec in self.arms.items()}
        self.arm_descriptions = {arm: strategies.describe(strategy) for arm, strategy in built.items()}
        self.arms_from_scratch = {arm: d["from_scratch"] for arm, d in self.arm_descriptions.items()}
        self.arms_from_source = [arm for arm in self.arms if not self.arms_from_scratch[arm]]
        self.arms_using_source_data = {arm: strategy.uses_source_data for arm, strategy in built.items()}
        self.arm_pairs = {arm: strategies.arm_pairs(spec, self.pairs) for arm, spec in self.arms.items()}
        self.arm_budgets = {arm: strategies.arm_budgets(spec, self.budgets) for arm, spec in self.arms.items()}
        # test-time arms (budget 0): name -> {method: class (default: the name), sources, targets, hyper-parameters}
        self.test_time_arms = config["test_time"]
        self.methods = list(self.test_time_arms)
        self.test_time_methods = {arm: test_time.build_arm(arm, spec) for arm, spec in self.test_time_arms.items()}
        self.method_pairs = {arm: test_time.arm_pairs(spec, self.domains) for arm, spec in self.test_time_arms.items()}
        self.method_models = {arm: method.source_model  # "plain" or "normalized"
                              for arm, method in self.test_time_methods.items()}
        # the arms whose label-free loss before adapting is read against their plain source model's unadapted score
        self.loss_predictor_arms = [arm for arm, method in self.test_time_methods.items()
                                    if isinstance(method, test_time.GradientMethod) and method.source_model == "plain"]
        self.methods_reading_reference = {arm for arm, method in self.test_time_methods.items()
                                          if method.uses_reference}
        self.normalized_domains = [d for d in self.domains if any(
            d == source for arm, kind in self.method_models.items() if kind == "normalized"
            for source, _ in self.method_pairs[arm])]
        # the paper's reading (config study): its arms among those run (none listed or none run: every fine-tuning arm)
        self.paper_arms = [arm for arm in config["study"]["arms"] if arm in self.strategies + self.methods] \
            or self.strategies
        self.similarity_pairs = [pair for pair in similarity.analysed_pairs(config["evaluation"]["similarity"],
                                                                            self.domains) if pair in self.pairs]
        # the arms whose trained models are compared two by two (evaluation.model_similarity), in the config's order;
        # one an overlay's arms leave out is left out. Planned when two models can be compared: two arms, or two seeds
        self.model_similarity_arms = [arm for arm in config["evaluation"]["model_similarity"]["arms"]
                                      if arm in self.arms]
        if len(self.model_similarity_arms) < 2 and len(self.seeds) < 2:
            self.model_similarity_arms = []
        self.finetune_job = config["training"]["finetune_job"]
        # the steps at which the chosen pairs' fine-tunes keep their model (training.snapshots)
        snapshots = config["training"]["snapshots"]
        self.snapshot_steps = sorted(snapshots["steps"])
        self.snapshot_pairs = [pair for pair in registry.chosen_pairs(snapshots, self.domains) if pair in self.pairs]
        self.arms_training = [arm for arm, description in self.arm_descriptions.items() if description["trains"]]
        # network sizes (models.sizes): width among the variants at the architecture's own levels, levels at the width
        self.sizes = {name: {"family": spec["family"], "width": spec["width"],
                             "levels": spec["levels"] or architectures.default_levels(spec["arch"]),
                             "on_width_axis": spec["levels"] is None,
                             "on_levels_axis": spec["width"] == config["models"]["width"]}
                      for name, spec in self.variants.items()}
        self.check_snapshots()

    # --- scans -------------------------------------------------------------------------------------------------------
    def scan_set(self, domain: str, name: str) -> list[str]:
        """The scans of one named set of a domain (protocol.SCAN_SETS)."""
        return protocol.scan_set(self.scan_roles, domain, name)

    def finetune_scans(self, target: str, budget: str) -> list[str]:
        """The labelled target scans a budget fine-tunes on."""
        return protocol.finetune_scans(self.scan_roles, target, budget)

    # --- jobs and their runs -----------------------------------------------------------------------------------------
    def job_pairs(self, pairs: list[tuple[str, str]], source: str | None = None,
                  target: str | None = None) -> list[tuple[str, str]]:
        """The pairs among ``pairs`` one job covers (training.finetune_job): its pair, its target's, or all."""
        key = JOB_UNITS[self.finetune_job](source, target)
        return [(s, t) for s, t in pairs if JOB_UNITS[self.finetune_job](s, t) == key]

    def job_runs(self, arm: str, source: str | None = None, target: str | None = None) -> list[Run]:
        """(source, target, budget, seed) of the runs of one fine-tuning (or scoring) job of ``arm``: each of its
        budgets, every seed, for the job's pairs; ordered by pair, then budget, then seed."""
        return [(s, t, budget, seed) for s, t in self.job_pairs(self.arm_pairs[arm], source, target)
                for budget in self.arm_budgets[arm] for seed in self.seeds]

    def test_time_runs(self, method: str, source: str | None = None,
                       target: str | None = None) -> list[tuple[str, str, str]]:
        """(source, target, seed) of the source models one test-time job adapts; ordered by pair, then seed."""
        return [(s, t, seed) for s, t in self.job_pairs(self.method_pairs[method], source, target)
                for seed in self.seeds]

    def finetune_runs(self, from_source_only: bool = False) -> list[tuple[str, str, str, str, str]]:
        """(arm, source, target, budget, seed) of every fine-tuning run of the study (each variant has them all);
        ``from_source_only``: of the arms that start from a source model (what weight_change and similarity compare)."""
        return [(arm, s, t, budget, seed) for arm in self.strategies
                if not (from_source_only and self.arms_from_scratch[arm])
                for s, t in self.arm_pairs[arm] for budget in self.arm_budgets[arm] for seed in self.seeds]

    def similarity_runs(self) -> list[tuple[str, str, str, str, str]]:
        """The fine-tuning runs whose models the similarity analysis compares with their source models."""
        return [run for run in self.finetune_runs(from_source_only=True) if (run[1], run[2]) in self.similarity_pairs]

    def model_similarity_runs(self) -> list[tuple[str, str, str, str, str]]:
        """The fine-tuning runs whose models are compared with each other and with where they started: those of
        evaluation.model_similarity's arms on the similarity analysis's pairs."""
        return [run for run in self.finetune_runs()
                if run[0] in self.model_similarity_arms and (run[1], run[2]) in self.similarity_pairs]

    def snapshot_runs(self) -> list[tuple[str, str, str, str, str]]:
        """The fine-tuning runs that keep snapshots: those of training.snapshots' pairs whose arm trains (none
        without its steps)."""
        if not self.snapshot_steps:
            return []
        return [run for run in self.finetune_runs() if run[0] in self.arms_training
                and (run[1], run[2]) in self.snapshot_pairs]

    def check_snapshots(self) -> None:
        """Snapshots at steps every snapshot run takes. (Their held-out score needs splits.n_finetune_validation; a
        study that keeps the paper's test set has none, and gets the similarity and the embedding only.)"""
        if not self.snapshot_steps:
            return
        for variant_name in self.variants:
            for arm in dict.fromkeys(run[0] for run in self.snapshot_runs()):
                recipe = self.arm_recipe(variant_name, arm)
                total = recipe["epochs"] * recipe["iters_per_epoch"]
                if self.snapshot_steps[-1] > total:
                    raise ValueError(f"training.snapshots asks for step {self.snapshot_steps[-1]}, but {arm}'s runs "
                                     f"of variant {variant_name} take {total} steps")

    # --- recipes ------------------------------------------------------------------------------------------------------
    def recipe(self, variant_name: str, kind: str) -> dict:
        """The recipe of a variant's source/oracle (``kind`` "source") or fine-tuning ("finetune") runs: the
        configured one with the variant's augmentation and optimizer (Adam: training.adam's changes; a 3D network:
        training.volumetric's)."""
        training, spec = self.config["training"], self.variants[variant_name]
        settings = {**training[kind], "augment_p": spec["augment_p"], "optimizer": spec["optimizer"]}
        if spec["optimizer"] == "adam":
            settings.update({k: v for k, v in training["adam"][kind].items() if v is not None})
        if spec["dims"] == 3:
            settings.update(training["volumetric"][kind])
        return settings

    def arm_recipe(self, variant_name: str, arm: str) -> dict:
        """An arm's recipe: the fine-tuning one, or the source one for an arm trained from scratch."""
        return self.recipe(variant_name, "source" if self.arms_from_scratch[arm] else "finetune")

    def network(self, variant_name: str) -> dict:
        """What builds a variant's network besides its architecture: width, and resolution levels when the variant
        changes them (absent otherwise, so the study's own variants keep their params)."""
        spec = self.variants[variant_name]
        return {"width": spec["width"], **({"levels": spec["levels"]} if spec["levels"] else {})}

    # --- counts -------------------------------------------------------------------------------------------------------
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

    def job_keys(self, pairs: list[tuple[str, str]]) -> list:
        """The distinct jobs (training.finetune_job) that cover ``pairs``."""
        return list(dict.fromkeys(JOB_UNITS[self.finetune_job](s, t) for s, t in pairs))

    def jobs(self) -> dict[str, int]:
        """Jobs per rule of the rules that train or run a network (each a GPU job on a cluster)."""
        n_variants, n_seeds, n_domains = len(self.variants), len(self.seeds), len(self.domains)
        finetune = n_variants * sum(len(self.job_keys(pairs)) for pairs in self.arm_pairs.values())
        return {"train_source": n_variants * n_seeds * n_domains,
                "train_source_normalized": n_variants * n_seeds * len(self.normalized_domains),
                "train_oracle": n_variants * n_seeds * n_domains * len(self.folds),
                "finetune": finetune, "score_finetune": finetune,
                "score_oracle": n_variants * n_seeds * n_domains, "score_baseline": n_variants * n_seeds * n_domains,
                "adapt_score": n_variants * sum(len(self.job_keys(pairs)) for pairs in self.method_pairs.values()),
                "similarity": n_variants, "prediction_qc": n_variants,
                "model_similarity": n_variants if self.model_similarity_arms else 0,
                "snapshots": n_variants if self.snapshot_steps else 0}

    def gpu_hours(self, throughput: dict, switches: str = "defaults") -> pd.DataFrame:
        """GPU-hours per part of the study on a measured GPU (mrishift.cost.gpu_hours)."""
        return gpu_hours(self, throughput, switches)
