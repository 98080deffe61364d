"""Learning curves of every training run of one model variant, from the run records (rule convergence)."""

from mrishift.io import write_table, write_text
from mrishift.logs import log_to
from mrishift.reporting import plots
from mrishift.training.runs import convergence_summary, learning_curves

log = log_to(snakemake)
out = snakemake.output
curves = learning_curves(snakemake.params.records)  # in the inputs (fine-tunes: their job folders)
write_table(out.curves, curves)
summary = convergence_summary(curves)
write_text(out.summary, "Convergence: mean training loss of the first epoch and of the last fifth of the epochs, its "
           "relative change from the fifth before (near 0 = a plateau), and the mean validation surface Dice of source "
           f"and oracle runs, over runs.\n\n{summary.to_markdown(index=False, floatfmt='.3f')}\n")
plots.save(plots.convergence_figure(curves, f"{snakemake.wildcards.variant}: training curves (mean ± sd over runs)"),
           out.figure, out.figure_pdf)
log.info("%d runs, %d epoch rows\n%s", curves.run.nunique(), len(curves), summary.to_string())
