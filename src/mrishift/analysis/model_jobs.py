"""What a job that reads trained models and runs them on a pair's scans has at hand (rules similarity,
model_similarity, snapshots), set up once from Snakemake's inputs and params: the models it may load, the scans, the
slices every model of a pair sees, their per-block activations, and where a fine-tuning run started."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from mrishift.data import protocol
from mrishift.data.scans import scan_files
from mrishift.evaluation.scoring import ScanCache
from mrishift.evaluation.similarity import block_activations, evenly_spaced
from mrishift.models.inputs import network_inputs, resolve_device
from mrishift.seeding import seed_hash
from mrishift.training.runs import initial_network, load_model, load_saved


def grouped(items: list, key) -> list[tuple[int, object]]:
    """``(index, item)`` of ``items`` with the items of one ``key`` together (groups in order of first appearance, items
    in their order): a job then holds one group's models and activations at a time, however many groups the study
    has, and puts its rows back in the items' order by index."""
    groups: dict = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    return [(index, items[index]) for indices in groups.values() for index in indices]


def in_run_order(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """Rows made in ``grouped`` order, each with its item's index under "run", back in the items' order (without it)."""
    frame = pd.DataFrame(rows, columns=None if columns is None else ["run", *columns])
    return frame.sort_values("run", kind="stable").drop(columns="run")


@dataclass
class ModelJob:
    made_by: dict  # what makes each kind of model (named when a model file is damaged)
    device: torch.device
    splits: dict  # the splits' domains
    scans: ScanCache  # the scans among the job's inputs
    source_paths: dict  # (source, seed) -> the source model file among the inputs (params.sources' order)
    slices: int  # evaluation.similarity: slices per pair, positions per block, the positions' seed
    positions: int
    seed: int

    def slices_of(self, cases: list[str], model) -> torch.Tensor:
        """``slices`` axial slices (padded to the model's stride), or a 3D model's sliding windows, evenly spaced
        through these scans (in order)."""
        return evenly_spaced([network_inputs(model, self.scans[case][0], self.device) for case in cases], self.slices)

    def test_slices(self, target: str, model) -> torch.Tensor:
        """The slices every model of a pair is compared on: ``slices_of`` the target's test scans (the same for every
        budget)."""
        return self.slices_of(protocol.test_time_test(self.splits, target), model)

    def activations(self, model, source: str, target: str, slices: torch.Tensor) -> dict:
        """The model's per-block activations on a pair's slices, at the positions every model of the pair is read."""
        return block_activations(model.to(self.device), slices, self.positions, seed_hash(self.seed, source, target))

    def load(self, path: str, kind: str = "finetune") -> torch.nn.Module:
        """A model the job reads: a fine-tuned one, or ``kind`` "source"."""
        return load_model(path, made_by=self.made_by[kind])

    def start(self, from_scratch: bool, source: str, seed: str, model_path: str, record_path: str):
        """Where a fine-tuning run started: its source model, or (``from_scratch``) the seeded random initialisation
        of its network, rebuilt from its saved model and its record's seed."""
        if from_scratch:
            return initial_network(load_saved(model_path, made_by=self.made_by["finetune"]),
                                   json.loads(Path(record_path).read_text())["seed"])
        return self.load(self.source_paths[(source, seed)], "source")


def model_job(snakemake) -> ModelJob:
    """The job's models, scans and device, from the ``snakemake`` object of its script; sets its torch threads."""
    torch.set_num_threads(snakemake.threads)
    inputs, params = snakemake.input, snakemake.params
    return ModelJob(made_by=json.loads(params.made_by), device=resolve_device(snakemake.config["training"]["device"]),
                    splits=json.loads(Path(inputs.splits).read_text())["domains"],
                    scans=ScanCache(scan_files(inputs.images, inputs.masks, inputs.scan_sets),
                                              snakemake.config["evaluation"]["scan_cache_mb"]),
                    source_paths={tuple(key): path for key, path in zip(params.sources, inputs.sources, strict=True)},
                    slices=params.slices, positions=params.positions, seed=params.seed)
