"""Score models on their test scans (rules score_oracle, score_baseline, score_finetune): one tidy table per model,
one row per test scan."""

import json
from pathlib import Path

import pandas as pd
import torch

from mrishift import protocol
from mrishift.evaluate import IDENTITY_COLUMNS, SCORE_COLUMNS, ScanCache, score_scans
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.runs import load_model, scan_files

log = log_to(snakemake.log[0])
params, wildcards = snakemake.params, dict(snakemake.wildcards.items())
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
    outputs = [snakemake.output.table] * len(jobs)
elif params.role == "baseline":  # the unadapted source model on every scan of every other domain
    jobs = [({**identity, "target": domain}, snakemake.input.models[0], cases)
            for domain, cases in protocol.baseline_test(splits, identity["source"]).items()]
    outputs = [snakemake.output.table] * len(jobs)
else:  # each fine-tuned model on its pair's test scans (the same scans for every budget and strategy)
    jobs = [({**identity, "source": source, "target": target, "budget": budget, "seed": seed}, model,
             protocol.finetune_test(splits, target, budget))
            for (source, target, budget, seed), model in zip(json.loads(params.runs), snakemake.input.models,
                                                             strict=True)]
    outputs = list(snakemake.output.table)

MADE_BY = {"oracle": "train_oracle", "baseline": "train_source", "finetune": "finetune"}  # the rule each model is from
scans = ScanCache(scan_files(snakemake.input.images, snakemake.input.masks))
tables: dict[str, list] = {}
for (row_identity, model_path, cases), output in zip(progress(jobs, params.role), outputs, strict=True):
    log.info("%s on %d scans", model_path, len(cases))
    model = load_model(model_path, made_by=MADE_BY[params.role])
    table = score_scans(model, cases, scans, params.tolerance_mm, runtime["evaluation"]["batch_size"],
                        runtime["training"]["device"], runtime["training"]["bf16"])
    tables.setdefault(output, []).append(table.assign(**row_identity)[IDENTITY_COLUMNS + SCORE_COLUMNS])
for output, parts in tables.items():
    write_table(output, pd.concat(parts, ignore_index=True))
