"""Train a source model, an oracle fold, or the fine-tuning runs of one job (rules train_source, train_oracle,
finetune): read the runs' identities from snakemake, call mrishift.train once per run."""

import json
from pathlib import Path

import numpy as np
import torch

from mrishift import models, strategies
from mrishift.logs import log_to, progress
from mrishift.runs import load_cases, load_model, save_model, write_record
from mrishift.seeding import seed_hash
from mrishift.train import Recipe, SliceSampler, train

log = log_to(snakemake.log[0])
params, runtime = snakemake.params, snakemake.config["training"]
torch.set_num_threads(snakemake.threads)
recipe = Recipe(**json.loads(params.recipe), device=runtime["device"], bf16=runtime["bf16"],
                channels_last=runtime["channels_last"])
splits = json.loads(Path(snakemake.input.splits).read_text())["domains"]
wildcards = dict(snakemake.wildcards.items())


def run(identity: dict, cases: list[str], slices, model_path: str, record_path: str, checkpoint: Path,
        start_from: str | None = None):
    """One training run; its seed is a hash of everything that defines it."""
    seed = seed_hash(*sorted((k, json.dumps(v, sort_keys=True)) for k, v in identity.items()))
    volumes = load_cases(cases)
    slices = slices or [range(v[0].shape[2]) for v in volumes]
    sampler = SliceSampler(volumes, slices, recipe.batch_size, recipe.patch_size, recipe.augment_p,
                           np.random.default_rng(seed))
    if start_from:
        model = load_model(start_from)
    else:
        torch.manual_seed(seed)
        model = models.build(params.arch, width=params.width)
    strategy = strategies.build(params.strategy, **json.loads(params.hparams))
    log.info("%s: %s on %d scans (%d slices), seed %d", params.role,
             {k: v for k, v in identity.items() if k not in ("recipe", "hparams")}, len(cases), len(sampler.pool), seed)
    record = train(model, strategy, sampler, recipe, seed, checkpoint=checkpoint,
                   identity=json.dumps(identity, sort_keys=True))
    save_model(model_path, model, params.arch, params.width)
    write_record(record_path, identity=identity, seed=seed, cases=cases, n_slices=len(sampler.pool), **record)


common = {"role": params.role, **wildcards, "recipe": json.loads(params.recipe), "strategy": params.strategy,
          "hparams": json.loads(params.hparams)}
checkpoints = Path(params.checkpoints)
if params.role == "source":
    cases = splits[wildcards["domain"]]["source"]["train"]
    runs = [(common, cases, None, snakemake.output.model, snakemake.output.record, None, checkpoints / "run.pt")]
elif params.role == "oracle":
    cases = splits[wildcards["domain"]]["oracle_folds"][int(wildcards["fold"])]["train"]
    runs = [(common, cases, None, snakemake.output.model, snakemake.output.record, None, checkpoints / "run.pt")]
else:  # the identity of a run is the same whichever job runs it, so its seed and weights are too
    source_models = {Path(path).parent.name: path for path in snakemake.input.source_models}
    runs = []
    for (source, target, budget), model_path, record_path in zip(
            json.loads(params.runs), snakemake.output.model, snakemake.output.record, strict=True):
        entry = splits[target]["budgets"][budget]
        runs.append(({**common, "source": source, "target": target, "budget": budget}, entry["scans"],
                     [entry["slices"][c] for c in entry["scans"]], model_path, record_path, source_models[source],
                     checkpoints / f"{source}_to_{target}_{budget}.pt"))

for identity, cases, slices, model_path, record_path, start_from, checkpoint in progress(runs, params.role):
    run(identity, cases, slices, model_path, record_path, checkpoint, start_from)
# Checkpoints go only once every run of the job is saved: Snakemake deletes all outputs of an interrupted job,
# and a finished run's last checkpoint lets the rerun restore it without training again.
for *_, checkpoint in runs:
    checkpoint.unlink(missing_ok=True)
