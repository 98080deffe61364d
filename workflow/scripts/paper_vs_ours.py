"""The published numbers beside ours, and the paper's claims with our evidence (rule paper_vs_ours)."""

import json

from mrishift.analysis import paper_view, published
from mrishift.evaluation.scoring import read_scores
from mrishift.io import write_table, write_text
from mrishift.logs import log_to

log = log_to(snakemake)
params, out = snakemake.params, snakemake.output
paper = published.paper(params.paper)
if paper is None:
    table, note = paper_view.no_paper()
    title = "Paper vs ours: no paper chosen (config study.paper)"
else:
    table, note = paper_view.paper_vs_ours(paper.key, read_scores(snakemake.input.scores), json.loads(params.variants),
                                           params.arms, params.significance, params.bootstrap, params.synthetic)
    title = f"Paper vs ours — {paper.title}"
write_table(out.table, table)
write_text(out.markdown, paper_view.markdown(table, title, note))
log.info("%d rows", len(table))
