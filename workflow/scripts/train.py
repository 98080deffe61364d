"""Train a source model, an oracle fold, or the fine-tuning runs of one job (rules train_source, train_oracle,
finetune): read the runs' identities from snakemake, call mrishift.train once per run."""

import json
from pathlib import Path

import numpy as np
import torch

from mrishift import models, strategies
from mrishift.evaluate import ScanCache, validation_scores
from mrishift.logs import log_to, progress
from mrishift.runs import load_cases, load_model, save_model, write_record
from mrishift.seeding import seed_hash
from mrishift.train import Recipe, SliceSampler, train

log = log_to(snakemake.log[0])
params, config = snakemake.params, snakemake.config
runtime = config["training"]
torch.set_num_threads(snakemake.threads)
recipe = Recipe(**json.loads(params.recipe), device=runtime["device"], bf16=runtime["bf16"],
                channels_last=runtime["channels_last"])
splits = json.loads(Path(snakemake.input.splits).read_text())["domains"]
wildcards = dict(snakemake.wildcards.items())
scans = ScanCache()

# What sets a run's random stream: its data and seed, not its strategy — every arm of one pair, budget and seed
# sees the same batches (the public code used one fixed seed for all runs), so paired comparisons are cleaner.
STREAM_KEYS = ("role", "variant", "domain", "fold", "source", "target", "budget", "seed")


def run(identity: dict, cases: list[str], slices, model_path: str, record_path: str, checkpoint: Path,
        start_from: str | None = None, validation: list[str] = ()):
    seed = seed_hash(*sorted((k, str(v)) for k, v in identity.items() if k in STREAM_KEYS))
    volumes = load_cases(cases)
    slices = slices or [range(v[0].shape[2]) for v in volumes]
    sampler = SliceSampler(volumes, slices, recipe.batch_size, recipe.patch_size, recipe.augment_p,
                           np.random.default_rng(seed))
    if start_from:
        model = load_model(start_from)
    else:
        torch.manual_seed(seed)
        model = models.build(params.arch, width=params.width)
    strategy = strategies.build_arm(params.strategy, json.loads(params.hparams))
    log.info("%s: %s on %d scans (%d slices), seed %d", params.role,
             {k: v for k, v in identity.items() if k not in ("recipe", "hparams")}, len(cases), len(sampler.pool), seed)
    validate = None
    if validation:
        def validate(model):
            return validation_scores(model, validation, scans, config["evaluation"]["tolerance_mm"],
                                     config["evaluation"]["batch_size"], runtime["device"], runtime["bf16"])
    record = train(model, strategy, sampler, recipe, seed, checkpoint=checkpoint,
                   identity=json.dumps(identity, sort_keys=True), validate=validate,
                   validate_every=runtime["validate_every"])
    save_model(model_path, model, params.arch, params.width)
    write_record(record_path, identity=identity, seed=seed, cases=cases, validation_cases=list(validation),
                 n_slices=len(sampler.pool), **record)


common = {"role": params.role, **wildcards, "recipe": json.loads(params.recipe), "strategy": params.strategy,
          "hparams": json.loads(params.hparams)}
checkpoints = Path(params.checkpoints)
if params.role == "source":
    split = splits[wildcards["domain"]]["source"]
    runs = [(common, split["train"], None, snakemake.output.model, snakemake.output.record, checkpoints / "run.pt",
             None, split["validation"])]
elif params.role == "oracle":
    fold = splits[wildcards["domain"]]["oracle_folds"][int(wildcards["fold"])]
    runs = [(common, fold["train"], None, snakemake.output.model, snakemake.output.record, checkpoints / "run.pt",
             None, fold["validation"])]
else:  # the identity of a run is the same whichever job runs it, so its seed and weights are too
    source_models = {Path(path).parents[1].name: path for path in snakemake.input.source_models}
    runs = []
    for (source, target, budget), model_path, record_path in zip(
            json.loads(params.runs), snakemake.output.model, snakemake.output.record, strict=True):
        entry = splits[target]["budgets"][budget]
        runs.append(({**common, "source": source, "target": target, "budget": budget}, entry["scans"],
                     [entry["slices"][c] for c in entry["scans"]], model_path, record_path,
                     checkpoints / f"{source}_to_{target}_{budget}.pt", source_models[source], ()))

for identity, cases, slices, model_path, record_path, checkpoint, start_from, validation in progress(runs, params.role):
    run(identity, cases, slices, model_path, record_path, checkpoint, start_from, validation)
# Checkpoints go only once every run of the job is saved: Snakemake deletes all outputs of an interrupted job,
# and a finished run's last checkpoint lets the rerun restore it without training again.
for run_entry in runs:
    run_entry[5].unlink(missing_ok=True)
