# Training: source models per domain, oracle folds, and fine-tuning per (strategy, pair, budget, seed).
# Recipes reach the scripts as sorted JSON strings (stable params → exactly the affected jobs rerun); runtime
# switches (device, bf16, channels_last, threads) are read from the config and do not rerun anything.
TRAINING_INPUTS = {
    "splits": "results/data/splits.json",
    "images": expand("results/data/preprocessed/{case}_image.nii.gz", case=CASES),
}


rule train_source:
    input:
        **TRAINING_INPUTS,
    output:
        model="results/models/{arch}/source/{domain}/model.pt",
        record="results/models/{arch}/source/{domain}/record.json",
    params:
        role="source",
        arch="{arch}",
        width=config["models"]["width"],
        domain="{domain}",
        recipe=as_json(config["training"]["source"]),
        strategy="ft_all",
        hparams=as_json({}),
        checkpoint="results/checkpoints/{arch}/source/{domain}.pt",
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/train_source/{arch}/{domain}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/train.py"


rule train_oracle:
    input:
        **TRAINING_INPUTS,
    output:
        model="results/models/{arch}/oracle/{domain}/fold{fold}/model.pt",
        record="results/models/{arch}/oracle/{domain}/fold{fold}/record.json",
    params:
        role="oracle",
        arch="{arch}",
        width=config["models"]["width"],
        domain="{domain}",
        recipe=as_json(config["training"]["source"]),
        strategy="ft_all",
        hparams=as_json({}),
        checkpoint="results/checkpoints/{arch}/oracle/{domain}/fold{fold}.pt",
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/train_oracle/{arch}/{domain}/fold{fold}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/train.py"


rule finetune:
    input:
        **TRAINING_INPUTS,
        source_model="results/models/{arch}/source/{source}/model.pt",
    output:
        model="results/models/{arch}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/model.pt",
        record="results/models/{arch}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/record.json",
    params:
        role="finetune",
        arch="{arch}",
        width=config["models"]["width"],
        domain="{target}",
        recipe=as_json(config["training"]["finetune"]),
        strategy="{strategy}",
        hparams=lambda w: as_json(config["strategies"][w.strategy]),
        checkpoint="results/checkpoints/{arch}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}.pt",
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/{arch}/{strategy}/{source}_to_{target}/{budget}/seed{seed}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/train.py"
