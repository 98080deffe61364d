"""Train a source model, an oracle fold, or fine-tune a source model on a target budget (rules train_source,
train_oracle, finetune): read the run's identity from snakemake, call mrishift.train."""

import json
from pathlib import Path

import numpy as np
import torch

from mrishift import models, strategies
from mrishift.logs import log_to
from mrishift.runs import load_cases, load_model, save_model, write_record
from mrishift.seeding import seed_hash
from mrishift.train import Recipe, SliceSampler, train

log = log_to(snakemake.log[0])
params, runtime = snakemake.params, snakemake.config["training"]
torch.set_num_threads(snakemake.threads)
recipe = Recipe(**json.loads(params.recipe), device=runtime["device"], bf16=runtime["bf16"],
                channels_last=runtime["channels_last"])
split = json.loads(Path(snakemake.input.splits).read_text())["domains"][params.domain]
identity = {"role": params.role, **dict(snakemake.wildcards.items()), "recipe": json.loads(params.recipe),
            "strategy": params.strategy, "hparams": json.loads(params.hparams)}
seed = seed_hash(*sorted((k, json.dumps(v, sort_keys=True)) for k, v in identity.items()))

if params.role == "source":
    cases, slices = split["source"]["train"], None
elif params.role == "oracle":
    cases, slices = split["oracle_folds"][int(snakemake.wildcards.fold)]["train"], None
else:
    budget = split["budgets"][snakemake.wildcards.budget]
    cases = budget["scans"]
    slices = [budget["slices"][c] for c in cases]
volumes = load_cases(cases)
slices = slices or [range(v[0].shape[2]) for v in volumes]
sampler = SliceSampler(volumes, slices, recipe.batch_size, recipe.patch_size, recipe.augment_p,
                       np.random.default_rng(seed))

if params.role == "finetune":
    model = load_model(snakemake.input.source_model)
else:
    torch.manual_seed(seed)
    model = models.build(params.arch, width=params.width)
strategy = strategies.build(params.strategy, **json.loads(params.hparams))
log.info("%s: %s on %d scans (%d slices), seed %d", params.role, dict(snakemake.wildcards.items()), len(cases),
         len(sampler.pool), seed)
checkpoint = Path(snakemake.params.checkpoint)
record = train(model, strategy, sampler, recipe, seed, checkpoint=checkpoint,
               identity=json.dumps(identity, sort_keys=True))
save_model(snakemake.output.model, model, params.arch, params.width)
write_record(snakemake.output.record, identity=identity, seed=seed, cases=cases, n_slices=len(sampler.pool), **record)
checkpoint.unlink(missing_ok=True)  # the final weights supersede it
