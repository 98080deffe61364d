# mrishift: which U-Net layers to fine-tune when a brain-MRI segmentation network meets a new scanner.
# What runs in which order; how each step works lives in src/mrishift/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


# Cheap jobs run in the main Snakemake process, never queued on a cluster.
localrules:
    make_splits,
    scan_set,
    collect_scores,
    analyse,
    figures,
    paper_view,
    paper_vs_ours,
    forgetting,
    size_effects,
    convergence,
    test_time_loss,
    all,


include: "rules/common.smk"
include: "rules/inputs.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/score.smk"
include: "rules/analyse.smk"


rule all:
    input:
        final_outputs(),
    default_target: True


onstart:
    # Before the first submission (never in a dry run): a cluster profile with its site placeholders stops here,
    # naming each key, instead of failing job by job.
    if workflow.executor_plugin.name == "slurm":
        from mrishift.cluster import refuse_placeholders

        refuse_placeholders(workflow.dag.needrun_jobs())
