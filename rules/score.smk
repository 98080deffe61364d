# Scoring: per-scan scores of the oracle, the baseline, every fine-tuned model and every test-time arm, collected into
# one table. The tolerance reaches every scoring job as a param, so changing it rescores without retraining.

rule score_oracle:
    input:
        unpack(scans_read(sets_of=in_domain_test_sets)),
        models=expand(ORACLE_MODEL, fold=PLAN.folds, allow_missing=True),
        source_model=SOURCE_MODEL,  # on its own held-out scans: the reference of forgetting
    output:
        table=ORACLE_SCORES,
    params:
        role="oracle",
        tolerance_mm=EVALUATION["tolerance_mm"],
        made_by=as_json(MADE_BY),
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/score_oracle/{variant}/{domain}/seed{seed}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/score.py"


use rule score_oracle as score_baseline with:
    input:
        unpack(scans_read(sets_of=baseline_test_sets)),
        models=baseline_models,
    output:
        table=BASELINE_SCORES,
    params:
        role="baseline",
        made_by=as_json(MADE_BY),
        sources=baseline_sources,
        tolerance_mm=EVALUATION["tolerance_mm"],
    log:
        "logs/score_baseline/{variant}/to_{target}/seed{seed}.log",


use rule score_oracle as score_finetune with:
    input:
        unpack(scans_read(sets_of=finetune_score_sets)),
        runs=FINETUNED_RUNS,
    output:
        table=FINETUNE_SCORES,
    params:
        role="finetune",
        made_by=as_json(MADE_BY),
        runs=lambda w: as_json(job_runs(w)),
        models=finetuned_run_files(FINETUNED_MODEL, job_runs),
        tolerance_mm=EVALUATION["tolerance_mm"],
    log:
        f"logs/score_finetune/{{variant}}/{FINETUNE_JOB_ID}.log",


# Test-time adaptation (budget 0): each volume of a pair's test scans adapted, with no label, from its source
# model, then scored; one job per arm and pair or per arm (training.finetune_job), every seed.
rule adapt_score:
    input:
        unpack(scans_read(sets_of=lambda w: [(target, "test") for _, target, _ in test_time_runs(w)])),
        models=test_time_models,
        references=test_time_references,
    output:
        table=TEST_TIME_SCORES,
    params:
        runs=lambda w: as_json(test_time_runs(w)),
        made_by=as_json(MADE_BY),
        hparams=lambda w: as_json(test_time.run_settings(PLAN.test_time_arms[w.method])),
        tolerance_mm=EVALUATION["tolerance_mm"],
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        f"logs/adapt_score/{{variant}}/{TEST_TIME_JOB_ID}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/adapt_score.py"


# What histogram matching keeps of a source domain: the quantiles of its training scans' pooled intensities.
rule intensity_reference:
    input:
        unpack(scans_read(sets_of=lambda w: [(w.domain, "source_train")])),
    output:
        reference=INTENSITY_REFERENCE,
    log:
        "logs/intensity_reference/{domain}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/intensity_reference.py"


rule collect_scores:
    input:
        tables=score_tables(),
    output:
        scores=report(result("scores/scores.tsv"), caption="../report/scores.rst", category="Tables"),
    log:
        "logs/collect_scores.log",
    conda:
        ENV
    script:
        "../workflow/scripts/collect_scores.py"
