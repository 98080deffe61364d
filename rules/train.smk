# Training: source models per domain, oracle folds, and fine-tuning per (arm, budget) over pairs and seeds.
# Recipes reach the scripts as sorted JSON strings (stable params → exactly the affected jobs rerun); runtime
# switches (device, bf16, channels_last, compile, data_on_device, threads, runs_per_device) are read from the config
# and do not rerun anything.

rule train_source:
    input:
        unpack(scans_read(sets_of=source_training_sets)),
    output:
        model=SOURCE_MODEL,
        record=SOURCE_RECORD,
    params:
        role="source",
        arch=variant_arch,
        network=variant_network,
        domain="{domain}",
        recipe=recipe("source"),
        strategy=source_strategy,
        hparams=as_json({}),
        checkpoints=result("checkpoints/{variant}/source/{domain}/seed{seed}"),
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/train_source/{variant}/{domain}/seed{seed}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/train.py"


use rule train_source as train_oracle with:
    input:
        unpack(scans_read(sets_of=oracle_training_sets)),
    output:
        model=ORACLE_MODEL,
        record=ORACLE_RECORD,
    params:
        role="oracle",
        arch=variant_arch,
        network=variant_network,
        domain="{domain}",
        recipe=recipe("source"),
        strategy=source_strategy,
        hparams=as_json({}),
        checkpoints=result("checkpoints/{variant}/oracle/{domain}/fold{fold}/seed{seed}"),
    log:
        "logs/train_oracle/{variant}/{domain}/fold{fold}/seed{seed}.log",


# A source model with a normalizer CNN in front, trained jointly on the same batches (the same run identity as its
# plain source model): what the test-time method bn_kl_normalizer adapts; trained only for the domains it adapts.
use rule train_source as train_source_normalized with:
    output:
        model=NORMALIZED_SOURCE_MODEL,
        record=NORMALIZED_SOURCE_RECORD,
    params:
        role="source",
        arch=lambda w: variant_arch(w) + architectures.NORMALIZED,
        network=variant_network,
        domain="{domain}",
        recipe=recipe("source"),
        strategy=source_strategy,
        hparams=as_json({}),
        checkpoints=result("checkpoints/{variant}/source_normalized/{domain}/seed{seed}"),
    log:
        "logs/train_source_normalized/{variant}/{domain}/seed{seed}.log",


# A fine-tuning job trains the runs of one arm at every budget it runs, every seed, for one pair or all of its pairs
# (training.finetune_job): on a CPU the ~3 s of process start-up would otherwise cost more than a small budget's
# training. Each run has its own seed (from its identity, not the job's), model, record and checkpoint; the job's
# single output is the folder holding them, so the full study declares 2,340 fine-tuning outputs, not 112,320.
rule finetune:
    input:
        unpack(scans_read(finetune_training_scans, finetune_training_sets)),
        source_models=finetune_source_models,
    output:
        runs=directory(FINETUNED_RUNS),
    params:
        role="finetune",
        arch=variant_arch,
        network=variant_network,
        runs=lambda w: as_json(job_run_params(w)),
        models=finetuned_run_files(FINETUNED_MODEL, job_runs),
        records=finetuned_run_files(FINETUNED_RECORD, job_runs),
        start_from=finetune_starts,
        recipe=lambda w: as_json(PLAN.arm_recipe(w.variant, w.strategy)),
        strategy="{strategy}",
        hparams=lambda w: as_json(strategies.run_settings(PLAN.arms[w.strategy])),
        checkpoints=result(f"checkpoints/{{variant}}/finetune/{FINETUNE_JOB_ID}"),
    threads: finetune_threads
    priority: 10  # before scoring jobs when both are ready: the last fine-tune is the critical path
    resources:
        gpu=1,
    log:
        f"logs/finetune/{{variant}}/{FINETUNE_JOB_ID}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/train.py"
