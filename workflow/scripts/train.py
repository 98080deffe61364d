"""Train a source model, an oracle fold, or the fine-tuning runs of one job (rules train_source, train_oracle,
finetune): turn snakemake's wildcards and params into the job's runs, and train them (mrishift.training.jobs). A
fine-tuning job's runs save their models and records in its output folder, at the paths its params list."""

import json
import shutil
from pathlib import Path

from mrishift import usage
from mrishift.adaptation import strategies
from mrishift.data import protocol
from mrishift.data.scans import scan_files
from mrishift.logs import log_to
from mrishift.training.jobs import Job, Run, train_runs
from mrishift.training.loop import Recipe

log = log_to(snakemake)
params, config, inputs = snakemake.params, snakemake.config, snakemake.input
runtime = config["training"]
recipe = Recipe(**json.loads(params.recipe), device=runtime["device"], bf16=runtime["bf16"],
                channels_last=runtime["channels_last"], compile=runtime["compile"],
                data_on_device=runtime["data_on_device"], deterministic=runtime["deterministic"])
network = json.loads(params.network)  # width, and resolution levels when the variant changes them
job = Job(role=params.role, arch=params.arch, width=network["width"], arm=params.strategy,
          hparams=json.loads(params.hparams), recipe=recipe, validate_every=runtime["validate_every"],
          tolerance_mm=config["evaluation"]["tolerance_mm"], eval_batch_size=config["evaluation"]["batch_size"],
          scans=scan_files(inputs.images, inputs.masks, inputs.scan_sets), levels=network.get("levels"))
splits = json.loads(Path(inputs.splits).read_text())["domains"]
wildcards = dict(snakemake.wildcards.items())
common = {"role": params.role, **wildcards, "recipe": json.loads(params.recipe), "strategy": params.strategy,
          "hparams": json.loads(params.hparams)}
checkpoints = Path(params.checkpoints)
if params.role in ("source", "oracle"):
    data = (protocol.source_training(splits, wildcards["domain"]) if params.role == "source"
            else protocol.oracle_training(splits, wildcards["domain"], int(wildcards["fold"])))
    runs = [Run(common, data.cases, snakemake.output.model, snakemake.output.record, str(checkpoints / "run.pt"),
                validation=data.validation)]
else:  # the identity of a run is the same whichever job runs it, so its seed and weights are too
    mixes_source = strategies.build_arm(params.strategy, json.loads(params.hparams)).uses_source_data
    runs = []
    # a run that keeps snapshots lists its steps (training.snapshots); they belong to its identity, so a run asked for
    # other steps trains again instead of resuming from a checkpoint that took none
    for (source, target, budget, seed, *snapshots), source_model, model_path, record_path in zip(
            json.loads(params.runs), params.start_from, params.models, params.records, strict=True):
        data = protocol.finetune_training(splits, target, budget)
        steps = snapshots[0]["snapshots"] if snapshots else []
        runs.append(Run({**common, "source": source, "target": target, "budget": budget, "seed": seed,
                         **({"snapshots": steps} if steps else {})}, data.cases,
                        model_path, record_path, str(checkpoints / f"{source}_to_{target}_{budget}_seed{seed}.pt"),
                        slices=data.slices, start_from=source_model or None,
                        source_cases=protocol.source_training(splits, source).cases if mixes_source else [],
                        snapshots=tuple(steps)))

in_flight = min(runtime["runs_per_device"] if params.role == "finetune" else 1, len(runs))
train_runs(job, runs, in_flight, threads=max(1, snakemake.threads // in_flight), log_path=snakemake.log[0])
records = [json.loads(Path(run.record_path).read_text()) for run in runs]
usage.count("steps", sum(r["epochs"] * r["recipe"]["iters_per_epoch"] for r in records))  # resumed ones: all of them
# runs in their own processes: the job holds its own memory plus that many runs' (peak_rss_children_mb each)
usage.note(concurrent_children=in_flight if in_flight > 1 else 0,
           runs_gpu_peak_mb=max((r.get("gpu_peak_mb", 0) for r in records), default=0) or None)
# Checkpoints go only once every run of the job is saved: Snakemake deletes all outputs of an interrupted job,
# and a finished run's last checkpoint lets the rerun restore it without training again.
for run in runs:
    Path(run.checkpoint).unlink(missing_ok=True)
    shutil.rmtree(run.snapshot_folder, ignore_errors=True)
