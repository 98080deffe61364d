"""What a job that reads trained models and runs them on a pair's scans has at hand (rules similarity,
model_similarity, snapshots): set up once from Snakemake's inputs and params, the same way in each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mrishift.data.scans import scan_files
from mrishift.evaluation.scoring import ScanCache
from mrishift.models.inputs import resolve_device


@dataclass
class ModelJob:
    made_by: dict  # what makes each kind of model (named when a model file is damaged)
    device: torch.device
    splits: dict  # the splits' domains
    test_budget: str  # every budget of a pair tests on the same scans: the first one's
    scans: ScanCache  # the scans among the job's inputs
    source_paths: dict  # (source, seed) -> the source model file among the inputs (params.sources' order)


def model_job(snakemake) -> ModelJob:
    """The job's models, scans and device, from the ``snakemake`` object of its script; sets its torch threads."""
    torch.set_num_threads(snakemake.threads)
    inputs, params = snakemake.input, snakemake.params
    return ModelJob(made_by=json.loads(params.made_by), device=resolve_device(snakemake.config["training"]["device"]),
                    splits=json.loads(Path(inputs.splits).read_text())["domains"],
                    test_budget=snakemake.config["splits"]["budgets"][0],
                    scans=ScanCache(scan_files(inputs.images, inputs.masks, inputs.scan_sets)),
                    source_paths={tuple(key): path for key, path in zip(params.sources, inputs.sources, strict=True)})
