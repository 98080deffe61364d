"""Score models on their test scans (rules score_oracle, score_baseline, score_finetune): one tidy table per job, one
row per model and test scan. Roles: oracle, baseline, finetune; and for forgetting, "source" (a source model on its
domain's held-out scans) and "forgetting" (a fine-tune on its source's held-out scans)."""

import json
from pathlib import Path

import torch

from mrishift.data import protocol
from mrishift.data.scans import scan_files
from mrishift.evaluation.scoring import ScanCache, score_models
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.training.runs import load_model

log = log_to(snakemake)
params, wildcards = snakemake.params, dict(snakemake.wildcards.items())
makers = json.loads(params.made_by)  # what makes each model a job reads (named when one is damaged)
torch.set_num_threads(snakemake.threads)
splits = json.loads(Path(snakemake.input.splits).read_text())["domains"]
runtime = snakemake.config

identity = {"variant": wildcards["variant"], "role": params.role, "strategy": wildcards.get("strategy", "none"),
            "source": wildcards.get("source", wildcards.get("domain")), "target": wildcards.get("target", ""),
            "budget": "", "seed": wildcards.get("seed", ""), "fold": ""}
if params.role == "oracle":  # each fold's model on its own test fold; together they cover the domain once
    domain = wildcards["domain"]
    jobs = [({**identity, "target": domain, "fold": str(k)}, model, protocol.oracle_test(splits, domain, k))
            for k, model in enumerate(snakemake.input.models)]
    # the domain's source model on the scans it never trained on: what fine-tuning from it may forget
    jobs.append(({**identity, "role": "source", "target": domain}, snakemake.input.source_model,
                 protocol.source_heldout(splits, domain)))
elif params.role == "baseline":  # every other domain's unadapted source model on every scan of this target
    target = wildcards["target"]
    jobs = [({**identity, "source": source, "target": target}, model, protocol.baseline_test(splits, source)[target])
            for source, model in zip(params.sources, snakemake.input.models, strict=True)]
else:  # each fine-tuned model on its pair's test scans (the same scans for every budget and strategy)
    runs = list(zip(json.loads(params.runs), params.models, strict=True))  # in the job folder among the inputs
    jobs = [({**identity, "source": source, "target": target, "budget": budget, "seed": seed}, model,
             protocol.finetune_test(splits, target, budget)) for (source, target, budget, seed), model in runs]
    # ... and on its source's held-out scans (role "forgetting": the same model, the other domain)
    jobs += [({**identity, "role": "forgetting", "source": source, "target": target, "budget": budget, "seed": seed},
              model, protocol.source_heldout(splits, source)) for (source, target, budget, seed), model in runs]

scans = ScanCache(scan_files(snakemake.input.images, snakemake.input.masks, snakemake.input.scan_sets),
                  runtime["evaluation"]["scan_cache_mb"])


def load(path, identity):
    return load_model(path, made_by=makers[identity["role"]])


write_table(snakemake.output.table,
            score_models(jobs, scans, load, params.tolerance_mm, runtime["evaluation"]["batch_size"],
                         runtime["training"]["device"], runtime["training"]["bf16"],
                         progress=lambda jobs: progress(jobs, params.role)))
