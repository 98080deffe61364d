# The study's statistics, tables and figures, from the collected scores and the trained models: our views, the
# paper's own (paper_view) and the published numbers beside ours (paper_vs_ours).

rule analyse:
    input:
        scores=result("scores/scores.tsv"),
    output:
        matrix=report(result("tables/{variant}/sdice_matrix.csv"), caption="../report/sdice_matrix_table.rst",
                      category="Tables", subcategory="{variant}"),
        matrix_md=result("tables/{variant}/sdice_matrix.md"),
        matrix_tex=result("tables/{variant}/sdice_matrix.tex"),
        gap_closed=report(result("tables/{variant}/gap_closed.csv"), caption="../report/gap_closed_table.rst",
                          category="Tables", subcategory="{variant}"),
        gap_closed_md=result("tables/{variant}/gap_closed.md"),
        gap_closed_tex=result("tables/{variant}/gap_closed.tex"),
        winners=report(result("tables/{variant}/winners.tsv"), caption="../report/winners_table.rst",
                       category="Tables", subcategory="{variant}"),
        per_scan=result("stats/{variant}/gap_closed_per_scan.tsv"),
        per_pair=result("stats/{variant}/gap_closed_per_pair.tsv"),
        gap_closed_intervals=result("stats/{variant}/gap_closed_intervals.tsv"),
        matrix_intervals=result("stats/{variant}/sdice_matrix_intervals.tsv"),
        summary=result("tables/{variant}/summary.json"),
        batchnorm=report(result("tables/{variant}/batchnorm.csv"), caption="../report/batchnorm_table.rst",
                         category="Tables", subcategory="{variant}"),
        batchnorm_md=result("tables/{variant}/batchnorm.md"),
        batchnorm_tex=result("tables/{variant}/batchnorm.tex"),
        batchnorm_tests=result("tables/{variant}/batchnorm_tests.tsv"),
    params:
        strategies=PLAN.strategies + PLAN.methods,  # the tables' and figures' row order
        arms=as_json(PLAN.arm_descriptions),
        arm_pairs=as_json(PLAN.arm_pairs),  # the pairs each fine-tuning arm ran on: paired tests compare where both did
        metric=config["study"]["metric"],
        significance=EVALUATION["significance_level"],
        tolerance_mm=EVALUATION["tolerance_mm"],
        min_gap=EVALUATION["min_gap"],
        bootstrap=EVALUATION["bootstrap"],
    log:
        "logs/analyse/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/analyse.py"


rule figures:
    input:
        scores=result("scores/scores.tsv"),
        per_pair=result("stats/{variant}/gap_closed_per_pair.tsv"),
        gap_closed_intervals=result("stats/{variant}/gap_closed_intervals.tsv"),
        matrix_intervals=result("stats/{variant}/sdice_matrix_intervals.tsv"),
        winners=result("tables/{variant}/winners.tsv"),
    output:
        batchnorm_png=report(result("figures/{variant}/batchnorm.png"), caption="../report/batchnorm.rst",
                             category="Figures", subcategory="{variant}"),
        batchnorm_pdf=result("figures/{variant}/batchnorm.pdf"),
        matrix_png=report(result("figures/{variant}/sdice_matrix.png"), caption="../report/sdice_matrix.rst",
                          category="Figures", subcategory="{variant}"),
        matrix_pdf=result("figures/{variant}/sdice_matrix.pdf"),
        gap_closed_png=report(result("figures/{variant}/gap_closed.png"), caption="../report/gap_closed.rst",
                              category="Figures", subcategory="{variant}"),
        gap_closed_pdf=result("figures/{variant}/gap_closed.pdf"),
        winners_png=report(result("figures/{variant}/winners.png"), caption="../report/winners.rst",
                           category="Figures", subcategory="{variant}"),
        winners_pdf=result("figures/{variant}/winners.pdf"),
    params:
        strategies=PLAN.strategies + PLAN.methods,  # the tables' and figures' row order
        arms=as_json(PLAN.arm_descriptions),
        significance=EVALUATION["significance_level"],
        tolerance_mm=EVALUATION["tolerance_mm"],
        bootstrap=EVALUATION["bootstrap"],
    log:
        "logs/figures/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/figures.py"


# What fine-tuning forgets: each fine-tuned model and its source model on the source's held-out scans.
rule forgetting:
    input:
        scores=result("scores/scores.tsv"),
    output:
        table=report(result("tables/{variant}/forgetting.csv"), caption="../report/forgetting_table.rst",
                     category="Tables", subcategory="{variant}"),
        table_md=result("tables/{variant}/forgetting.md"),
        table_tex=result("tables/{variant}/forgetting.tex"),
        per_pair=result("stats/{variant}/forgetting_per_pair.tsv"),
        figure=report(result("figures/{variant}/forgetting.png"), caption="../report/forgetting.rst",
                      category="Figures", subcategory="{variant}"),
        figure_pdf=result("figures/{variant}/forgetting.pdf"),
    params:
        strategies=PLAN.strategies,  # the table's and figure's row order
        tolerance_mm=EVALUATION["tolerance_mm"],
    log:
        "logs/forgetting/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/forgetting.py"


rule convergence:
    input:
        records=lambda w: trained_files(w.variant, "record.json")[0],
    output:
        curves=result("tables/{variant}/convergence.tsv"),
        summary=report(result("tables/{variant}/convergence.md"), caption="../report/convergence_table.rst",
                       category="Tables", subcategory="{variant}"),
        figure=report(result("figures/{variant}/convergence.png"), caption="../report/convergence.rst",
                      category="Figures", subcategory="{variant}"),
        figure_pdf=result("figures/{variant}/convergence.pdf"),
    params:
        records=lambda w: trained_files(w.variant, "record.json")[1],  # in the folders among the inputs
    log:
        "logs/convergence/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/convergence.py"


# Network size (models.sizes, e.g. config/width-depth.yaml): gap closed per arm vs width and vs resolution levels,
# across the variants of each family; only planned when the study has more than one size.
rule size_effects:
    input:
        per_pair=expand(result("stats/{variant}/gap_closed_per_pair.tsv"), variant=PLAN.variants),
    output:
        figure=report(result("figures/size_effects.png"), caption="../report/size_effects.rst",
                      category="Figures", subcategory="network size"),
        figure_pdf=result("figures/size_effects.pdf"),
        table=result("stats/size_effects.tsv"),
    params:
        variants=list(PLAN.variants),
        sizes=as_json(PLAN.sizes),
        strategies=PLAN.strategies + PLAN.methods,
    log:
        "logs/size_effects.log",
    conda:
        ENV
    script:
        "../workflow/scripts/size_effects.py"


# Where fine-tuning moved the weights: each block's relative change from its source model, for every fine-tuned model.
rule weight_change:
    input:
        unpack(weight_change_models),
    output:
        table=result("stats/{variant}/weight_change.tsv"),
        figure=report(result("figures/{variant}/weight_change.png"), caption="../report/weight_change.rst",
                      category="Figures", subcategory="{variant}"),
        figure_pdf=result("figures/{variant}/weight_change.pdf"),
    params:
        runs=as_json(FINETUNE_RUNS_FROM_SOURCE),
        made_by=as_json(MADE_BY),
        models=lambda w: finetuned_models(w.variant, FINETUNE_RUNS_FROM_SOURCE),
        domains=PLAN.domains,
        seeds=PLAN.seeds,
        strategies=PLAN.arms_from_source,
    log:
        "logs/weight_change/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/weight_change.py"


# Where fine-tuning changed what the network computes: each block's activations against its source model's, on the
# pair's test slices (evaluation.similarity: which pairs, how many slices and positions).
rule similarity:
    input:
        unpack(similarity_inputs),
    output:
        table=result("stats/{variant}/similarity.tsv"),
        cka=report(result("figures/{variant}/similarity_cka.png"), caption="../report/similarity.rst",
                   category="Figures", subcategory="{variant}"),
        cka_pdf=result("figures/{variant}/similarity_cka.pdf"),
        pwcca=report(result("figures/{variant}/similarity_pwcca.png"), caption="../report/similarity.rst",
                     category="Figures", subcategory="{variant}"),
        pwcca_pdf=result("figures/{variant}/similarity_pwcca.pdf"),
        filters=report(result("figures/{variant}/filters.png"), caption="../report/filters.rst",
                       category="Figures", subcategory="{variant}"),
        filters_pdf=result("figures/{variant}/filters.pdf"),
        feature_maps=report(result("figures/{variant}/feature_maps.png"), caption="../report/feature_maps.rst",
                            category="Figures", subcategory="{variant}"),
        feature_maps_pdf=result("figures/{variant}/feature_maps.pdf"),
    params:
        runs=as_json(SIMILARITY_RUNS),
        made_by=as_json(MADE_BY),
        models=lambda w: finetuned_models(w.variant, SIMILARITY_RUNS),  # in the folders among the inputs
        sources=[[source, seed] for source in dict.fromkeys(s for s, _ in PLAN.similarity_pairs) for seed in PLAN.seeds],
        slices=EVALUATION["similarity"]["slices"],
        positions=EVALUATION["similarity"]["positions"],
        seed=EVALUATION["similarity"]["seed"],
        strategies=PLAN.arms_from_source,
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/similarity/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/similarity.py"


# Similarity between trained models (the transfer-learning FCN study's Tables VII and VIII): every two models of
# evaluation.model_similarity's arms per pair and budget, and each model's similarity to where it started.
rule model_similarity:
    input:
        unpack(model_similarity_inputs),
    output:
        pairs=result("stats/{variant}/model_similarity_pairs.tsv"),
        initial=result("stats/{variant}/model_similarity_initial.tsv"),
        table=report(result("tables/{variant}/model_similarity.csv"), caption="../report/model_similarity.rst",
                     category="Tables", subcategory="{variant}"),
        table_md=result("tables/{variant}/model_similarity.md"),
        table_tex=result("tables/{variant}/model_similarity.tex"),
        tests=result("tables/{variant}/model_similarity_tests.tsv"),
        reuse=report(result("tables/{variant}/feature_reuse.csv"), caption="../report/feature_reuse.rst",
                     category="Tables", subcategory="{variant}"),
        reuse_md=result("tables/{variant}/feature_reuse.md"),
        reuse_tex=result("tables/{variant}/feature_reuse.tex"),
    params:
        runs=as_json(MODEL_SIMILARITY_RUNS),
        models=lambda w: finetuned_models(w.variant, MODEL_SIMILARITY_RUNS),  # in the folders among the inputs
        records=lambda w: finetuned_models(w.variant, MODEL_SIMILARITY_RUNS, FINETUNED_RECORD),  # their seeds
        sources=[list(key) for key in sources_started_from(MODEL_SIMILARITY_RUNS)],
        arms=PLAN.model_similarity_arms,
        scratch_arms=[arm for arm in PLAN.model_similarity_arms if PLAN.arms_from_scratch[arm]],
        made_by=as_json(MADE_BY),
        slices=EVALUATION["similarity"]["slices"],
        positions=EVALUATION["similarity"]["positions"],
        seed=EVALUATION["similarity"]["seed"],
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/model_similarity/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/model_similarity.py"


# Fine-tuning runs through training, from the models they kept at training.snapshots' steps: similarity to where
# each started and the held-out score per step, a t-SNE of bottleneck features (the first pair and seed).
rule snapshots:
    input:
        unpack(snapshot_inputs),
    output:
        similarity=result("stats/{variant}/snapshot_similarity.tsv"),
        scores=result("stats/{variant}/snapshot_scores.tsv"),
        similarity_png=report(result("figures/{variant}/snapshot_similarity.png"), caption="../report/snapshots.rst",
                              category="Figures", subcategory="{variant}"),
        similarity_pdf=result("figures/{variant}/snapshot_similarity.pdf"),
        scores_png=report(result("figures/{variant}/snapshot_scores.png"), caption="../report/snapshots.rst",
                          category="Figures", subcategory="{variant}"),
        scores_pdf=result("figures/{variant}/snapshot_scores.pdf"),
        tsne_png=report(result("figures/{variant}/snapshot_tsne.png"), caption="../report/snapshots.rst",
                        category="Figures", subcategory="{variant}"),
        tsne_pdf=result("figures/{variant}/snapshot_tsne.pdf"),
    params:
        runs=as_json(SNAPSHOT_RUNS),
        models=lambda w: finetuned_models(w.variant, SNAPSHOT_RUNS),  # in the folders among the inputs
        records=lambda w: finetuned_models(w.variant, SNAPSHOT_RUNS, FINETUNED_RECORD),  # their seeds
        sources=[list(key) for key in sources_started_from(SNAPSHOT_RUNS)],
        steps=PLAN.snapshot_steps,
        arms=PLAN.strategies,
        scratch_arms=[arm for arm in PLAN.strategies if PLAN.arms_from_scratch[arm]],
        made_by=as_json(MADE_BY),
        slices=EVALUATION["similarity"]["slices"],
        positions=EVALUATION["similarity"]["positions"],
        seed=EVALUATION["similarity"]["seed"],
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/snapshots/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/snapshots.py"


# What the scores look like: each arm's best, median and worst scan at each budget (and the baseline's and oracle's),
# redrawn by the model scored on it, with both contours and where surface Dice loses.
rule prediction_qc:
    input:
        unpack(prediction_qc_inputs),
    output:
        figures=report(directory(PREDICTION_QC), patterns=["{arm}/{budget}.png"], caption="../report/prediction_qc.rst",
                       category="Prediction QC", subcategory="{arm}", labels={"variant": "{variant}", "arm": "{arm}",
                                                                               "budget": "{budget}"}),
        examples=PREDICTION_QC_EXAMPLES,
    params:
        model_patterns=lambda w: as_json({"finetune": FINETUNED_MODEL, "oracle": ORACLE_MODEL,  # a function: kept
                                          "source_plain": SOURCE_MODEL, "source_normalized": NORMALIZED_SOURCE_MODEL}),
        test_time=as_json({arm: test_time.run_settings(spec) for arm, spec in PLAN.test_time_arms.items()}),
        tolerance_mm=EVALUATION["tolerance_mm"],
        exclude=EVALUATION["prediction_qc"]["exclude"],
        made_by=as_json(MADE_BY),
    threads: config["training"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/prediction_qc/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/prediction_qc.py"


# The test-time loss as a predictor of failure (the test-time BN-statistics study's Fig. 8): each adapted scan's
# loss at the source model against its unadapted score, Spearman's rho with a bootstrap interval; planned when an arm
# has such a loss.
rule test_time_loss:
    input:
        scores=result("scores/scores.tsv"),
        tables=loss_predictor_tables,
    output:
        table=report(result("tables/{variant}/test_time_loss.csv"), caption="../report/test_time_loss_table.rst",
                     category="Tables", subcategory="{variant}"),
        table_md=result("tables/{variant}/test_time_loss.md"),
        table_tex=result("tables/{variant}/test_time_loss.tex"),
        per_scan=result("stats/{variant}/test_time_loss_per_scan.tsv"),
        figure=report(result("figures/{variant}/test_time_loss.png"), caption="../report/test_time_loss.rst",
                      category="Figures", subcategory="{variant}"),
        figure_pdf=result("figures/{variant}/test_time_loss.pdf"),
    params:
        metric=config["study"]["metric"],
        tolerance_mm=EVALUATION["tolerance_mm"],
        bootstrap=EVALUATION["bootstrap"],
    log:
        "logs/test_time_loss/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/test_time_loss.py"


# The study as its paper reads it (config study: its arms and metric; mrishift.analysis.paper_view): gap closed of
# every pair, winners among the paper's arms with the sign test on per-scan gap closed, and the absolute-score table.
rule paper_view:
    input:
        scores=result("scores/scores.tsv"),
    output:
        gap_closed=report(result("tables/{variant}/paper_gap_closed.csv"), caption="../report/paper_view.rst",
                          category="Tables", subcategory="{variant}"),
        gap_closed_md=result("tables/{variant}/paper_gap_closed.md"),
        gap_closed_tex=result("tables/{variant}/paper_gap_closed.tex"),
        scores=report(result("tables/{variant}/paper_scores.csv"), caption="../report/paper_view.rst",
                      category="Tables", subcategory="{variant}"),
        scores_md=result("tables/{variant}/paper_scores.md"),
        scores_tex=result("tables/{variant}/paper_scores.tex"),
        per_pair=result("stats/{variant}/paper_gap_closed_per_pair.tsv"),
        winners=result("tables/{variant}/paper_winners.tsv"),
        winner_counts=result("tables/{variant}/paper_winner_counts.tsv"),
        winners_png=report(result("figures/{variant}/paper_winners.png"), caption="../report/paper_view.rst",
                           category="Figures", subcategory="{variant}"),
        winners_pdf=result("figures/{variant}/paper_winners.pdf"),
        gap_closed_png=report(result("figures/{variant}/paper_gap_closed.png"), caption="../report/paper_view.rst",
                              category="Figures", subcategory="{variant}"),
        gap_closed_pdf=result("figures/{variant}/paper_gap_closed.pdf"),
    params:
        arms=PLAN.paper_arms,
        metric=config["study"]["metric"],
        significance=EVALUATION["significance_level"],
        tolerance_mm=EVALUATION["tolerance_mm"],
        min_gap=EVALUATION["min_gap"],
        bootstrap=EVALUATION["bootstrap"],
    log:
        "logs/paper_view/{variant}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/paper_view.py"


# The published numbers beside ours, and the paper's claims with our evidence (study.paper;
# mrishift.analysis.published).
rule paper_vs_ours:
    input:
        scores=result("scores/scores.tsv"),
    output:
        table=result("tables/paper_vs_ours.tsv"),
        markdown=report(result("tables/paper_vs_ours.md"), caption="../report/paper_vs_ours.rst",
                        category="Tables", subcategory="paper vs ours"),
    params:
        paper=config["study"]["paper"],
        variants=as_json(PLAN.variants),
        arms=PLAN.paper_arms,
        significance=EVALUATION["significance_level"],
        bootstrap=EVALUATION["bootstrap"],
        synthetic=config["data"]["source"] == "synthetic",
    log:
        "logs/paper_vs_ours.log",
    conda:
        ENV
    script:
        "../workflow/scripts/paper_vs_ours.py"
