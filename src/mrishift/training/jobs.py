"""The runs of one training job (a source model, an oracle fold, or a fine-tuning job's runs): one after another, or
``runs_per_device`` at once, each in its own process sharing the job's device.

Where one small run leaves a GPU idle, a fine-tuning job may train several of its runs concurrently (docs/cluster.md "GPU
throughput": at the paper's batch 32 of 256² one run already fills an H100). One process per run keeps every run
exactly what it is alone: its own seed (from its identity, not the job's), batches, optimizer, checkpoint, record —
and on a CPU its own torch threads (``threads`` each), so the job uses ``threads × runs_per_device`` cores. The tests
check that the weights equal a sequential job's.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrishift.adaptation import strategies
from mrishift.data.scans import ScanFiles, load_cases
from mrishift.evaluation.scoring import ScanCache, validation_scores
from mrishift.logs import progress
from mrishift.models import networks
from mrishift.seeding import seed_hash
from mrishift.training import sampling
from mrishift.training.loop import Recipe, train
from mrishift.training.runs import load_model, load_saved, save_model, write_record

log = logging.getLogger("mrishift")

# What sets a run's random stream: its data and seed, not its strategy — every arm of one pair, budget and seed
# sees the same batches (the public code used one fixed seed for all runs), so paired comparisons are cleaner.
STREAM_KEYS = ("role", "variant", "domain", "fold", "source", "target", "budget", "seed")


@dataclass(frozen=True)
class Job:
    """What every run of a job shares."""

    role: str
    arch: str
    width: float
    arm: str
    hparams: dict
    recipe: Recipe
    validate_every: int = 0
    tolerance_mm: float = 1.0
    eval_batch_size: int = 32
    scans: ScanFiles = field(default_factory=dict)  # case -> (image, mask) files: the job's declared inputs
    levels: int | None = None  # the network's resolution levels; None: the architecture's own


@dataclass(frozen=True)
class Run:
    """One training run: its identity (which sets its seed), data, outputs and checkpoint."""

    identity: dict
    cases: list[str]
    model_path: str
    record_path: str
    checkpoint: str
    slices: list[list[int]] | None = None  # per case; None = every slice
    start_from: str | None = None  # a model file to fine-tune, else a fresh network
    validation: list[str] = field(default_factory=list)
    source_cases: list[str] = field(default_factory=list)  # for strategies that mix in source slices (all of them)
    snapshots: tuple[int, ...] = ()  # optimizer steps at which the model is kept (training.snapshots)

    @property
    def snapshot_folder(self) -> Path:
        """Where the snapshots go while the run trains: beside its checkpoint, which a killed job keeps (Snakemake
        deletes a failed job's outputs), so a resumed run finds those of the epochs it does not train again."""
        return Path(self.checkpoint).with_suffix(".snapshots")

    @property
    def seed(self) -> int:
        return seed_hash(*sorted((k, str(v)) for k, v in self.identity.items() if k in STREAM_KEYS))


def snapshot_path(model_path: str | Path, step: int) -> Path:
    """Where a finished run keeps its model at ``step``: ``snapshots/step<N>.pt`` beside its model file."""
    return Path(model_path).parent / "snapshots" / f"step{step}.pt"


def train_run(job: Job, run: Run) -> None:
    """Train one run to its model file and run record (resuming from its checkpoint when there is one); its
    snapshots, when it takes some, beside the model (``snapshot_path``)."""
    volumes = load_cases(run.cases, job.scans)
    slices = run.slices or [range(v[0].shape[2]) for v in volumes]
    dims = networks.dims(job.arch)
    sampler = sampling.sampler(dims, volumes, slices, job.recipe.batch_size, job.recipe.patch_size,
                               job.recipe.augment_p, np.random.default_rng(run.seed))
    strategy = strategies.build_arm(job.arm, job.hparams)
    source_optimizer = None
    arch = job.arch
    if run.start_from:
        model = load_model(run.start_from)
        if strategy.uses_source_optimizer:
            source_optimizer = load_saved(run.start_from).get("optimizer")
        torch.manual_seed(run.seed)  # what a strategy adds to the network (SpotTune's policy) starts from the run's seed
        model, arch = strategy.network(model, job.arch, job.width)
    else:
        torch.manual_seed(run.seed)
        model = networks.build(job.arch, width=job.width, **({"levels": job.levels} if job.levels else {}))
    if dims == 3:  # it validates and predicts with windows of the patch it trains on (nnU-Net's choice)
        model.window = tuple(job.recipe.patch_size)
    source = None
    if run.source_cases:
        source_volumes = load_cases(run.source_cases, job.scans)
        source = sampling.sampler(dims, source_volumes, [range(v[0].shape[2]) for v in source_volumes],
                                  job.recipe.batch_size, job.recipe.patch_size, job.recipe.augment_p,
                                  np.random.default_rng(seed_hash(run.seed, "source slices")))
        log.info("source slices mixed in: %d scans (%d slices)", len(run.source_cases), len(source.pool))
    log.info("%s: %s on %d scans (%d slices), seed %d", job.role,
             {k: v for k, v in run.identity.items() if k not in ("recipe", "hparams")}, len(run.cases),
             len(sampler.pool), run.seed)
    validate = None
    if run.validation:
        scans = ScanCache(job.scans)

        def validate(model):
            return validation_scores(model, run.validation, scans, job.tolerance_mm, job.eval_batch_size,
                                     job.recipe.device, job.recipe.bf16)
    def snapshot(step, model):
        save_model(run.snapshot_folder / f"step{step}.pt", model, arch, job.width)

    record = train(model, strategy, sampler, job.recipe, run.seed, checkpoint=run.checkpoint, source=source,
                   identity=json.dumps(run.identity, sort_keys=True), validate=validate,
                   validate_every=job.validate_every, source_optimizer=source_optimizer,
                   keep_optimizer=job.role == "source",  # what a fine-tune continuing its optimizer starts from
                   snapshot_steps=run.snapshots, snapshot=snapshot)
    save_model(run.model_path, model, arch, job.width, optimizer=record.pop("optimizer_state", None))
    for step in run.snapshots:  # into the job's output folder, once the run is done
        kept = snapshot_path(run.model_path, step)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.snapshot_folder / f"step{step}.pt", kept)
    write_record(run.record_path, identity=run.identity, arch=arch, seed=run.seed, cases=run.cases,
                 validation_cases=list(run.validation), n_slices=len(sampler.pool), **record)


def train_runs(job: Job, runs: list[Run], runs_per_device: int = 1, threads: int = 1,
               log_path: str | None = None) -> None:
    """Train every run of a job; ``runs_per_device > 1`` trains that many at once, each in its own process (``python -m
    mrishift.training.jobs``) with ``threads`` torch threads, appending to the job's log. The first failing run stops
    the job (the others are killed; their checkpoints stay) with an error naming the run."""
    in_flight = min(runs_per_device, len(runs))
    if in_flight <= 1:
        torch.set_num_threads(threads)
        for run in progress(runs, job.role):
            train_run(job, run)
        return
    log.info("training %d runs, %d at a time in their own processes (%d threads each)", len(runs), in_flight, threads)
    waiting, running = list(runs), {}
    bar = progress(None, job.role, total=len(runs))
    with tempfile.TemporaryDirectory() as scratch, open(log_path or os.devnull, "a") as output:
        try:
            while waiting or running:
                while waiting and len(running) < in_flight:
                    run = waiting.pop(0)
                    spec = Path(scratch) / f"run{len(runs) - len(waiting)}.pkl"
                    spec.write_bytes(pickle.dumps((job, run, threads)))
                    output.flush()
                    process = subprocess.Popen([sys.executable, "-m", "mrishift.training.jobs", str(spec)],
                                               stdout=output, stderr=subprocess.STDOUT)
                    running[process] = run
                time.sleep(0.2)
                for process in [p for p in running if p.poll() is not None]:
                    run = running.pop(process)
                    if process.returncode != 0:
                        raise RuntimeError(f"run {run.identity} failed (exit code {process.returncode}); "
                                           f"its traceback is in {log_path or 'its output'}")
                    bar.update(1)
        finally:
            for process in running:
                process.kill()
                process.wait()
    bar.close()


def _train_one_process(spec: str) -> None:
    """A run of a job that trains several at once: ``python -m mrishift.training.jobs SPEC`` (written by train_runs)."""
    job, run, threads = pickle.loads(Path(spec).read_bytes())
    torch.set_num_threads(threads)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s [%(process)d] %(message)s")
    train_run(job, run)


if __name__ == "__main__":
    _train_one_process(sys.argv[1])
