# Params are scalars or lists, never dicts: Snakemake compares dict params in key order, so a reordered
# config file would rerun everything.
# Data stages: raw scans (synthetic or your CC359 copy) → integrity check → resample → scale → splits.


rule synthesize_cc359:
    output:
        directory("resources/synthetic_cc359"),
    params:
        domains=PLAN.domains,
        subjects_per_domain=config["data"]["synthetic"]["subjects_per_domain"],
        native_spacing_mm=config["data"]["synthetic"]["native_spacing_mm"],
        geometry=config["data"]["synthetic"]["geometry"],
        shift_strength=config["data"]["synthetic"]["shift_strength"],
        deformation_mm=config["data"]["synthetic"]["deformation_mm"],
        seed=config["data"]["synthetic"]["seed"],
    threads: 8  # subjects written in parallel (scaled down to the cores there are); the files do not depend on it
    log:
        "logs/synthesize_cc359.log",
    conda:
        ENV
    script:
        "../workflow/scripts/synthesize_cc359.py"


rule fetch_cc359:
    output:
        directory("resources/cc359"),
    params:
        paths=config["data"]["cc359"]["paths"],
        require_complete=config["data"]["cc359"]["require_complete"],
        plan_only=config["data"]["cc359"]["plan_only"],
        domains=PLAN.domains,
    log:
        "logs/fetch_cc359.log",
    conda:
        ENV
    script:
        "../workflow/scripts/fetch_cc359.py"


rule check_integrity:
    input:
        RAW_DATASET,
    output:
        result("data/integrity.tsv"),
    params:
        cases=PLAN.cases,
    log:
        "logs/check_integrity.log",
    conda:
        ENV
    script:
        "../workflow/scripts/check_integrity.py"


rule resample:
    input:
        report=result("data/integrity.tsv"),
        dataset=RAW_DATASET,
    output:
        image=result("data/resampled/{case}_image.nii.gz"),
        mask=result("data/resampled/{case}_mask.nii.gz"),
    params:
        spacing_mm=config["preprocess"]["spacing_mm"],
        image_interpolation=config["preprocess"]["image_interpolation"],
    log:
        "logs/resample/{case}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/resample.py"


rule scale_intensity:
    input:
        result("data/resampled/{case}_image.nii.gz"),
    output:
        result("data/preprocessed/{case}_image.nii.gz"),
    params:
        clip_percentiles=config["preprocess"]["clip_percentiles"],
    log:
        "logs/scale_intensity/{case}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/scale_intensity.py"


rule make_splits:
    input:
        report=result("data/integrity.tsv"),
        images=expand(result("data/preprocessed/{case}_image.nii.gz"), case=PLAN.cases),
    output:
        result("data/splits.json"),
    params:
        domains=PLAN.domains,
        cases=PLAN.cases,
        seed=config["splits"]["seed"],
        n_validation=config["splits"]["n_validation"],
        n_folds=config["splits"]["n_folds"],
        budgets=config["splits"]["budgets"],
        n_finetune_validation=config["splits"]["n_finetune_validation"],
    log:
        "logs/make_splits.log",
    conda:
        ENV
    script:
        "../workflow/scripts/make_splits.py"


# Visual QC of the data: each domain's first scan, raw and preprocessed, with its reference mask's contour.
rule data_qc:
    input:
        report=result("data/integrity.tsv"),
        dataset=RAW_DATASET,
        image=lambda w: result(f"data/preprocessed/{PLAN.cases_by_domain[w.domain][0]}_image.nii.gz"),
        mask=lambda w: result(f"data/resampled/{PLAN.cases_by_domain[w.domain][0]}_mask.nii.gz"),
    output:
        figure=report(DATA_QC, caption="../report/data_qc.rst", category="Data QC", labels={"domain": "{domain}"}),
    params:
        case=lambda w: PLAN.cases_by_domain[w.domain][0],
        spacing_mm=config["preprocess"]["spacing_mm"],
        slices_per_plane=3,
    log:
        "logs/data_qc/{domain}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/data_qc.py"


# A scan set (mrishift.data.protocol.SCAN_SETS): the scans of one role of a domain in one folder, hard-linked (copied where
# links cannot be made), for the jobs that read all of them; one declared input instead of ~120 per scoring job.
rule scan_set:
    input:
        unpack(lambda w: scan_files_of(PLAN.scan_set(w.domain, w.set))),
    output:
        directory(SCAN_SET),
    log:
        "logs/scan_set/{domain}/{set}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/scan_set.py"
