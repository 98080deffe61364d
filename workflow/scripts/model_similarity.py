"""Similarity between trained models (rule model_similarity; mrishift.analysis.model_similarity): per pair and budget,
every two of the compared arms' models (two seeds of an arm, or two arms) per block on the pair's test slices — the
transfer-learning FCN study's Table VII — and each model's similarity to where it started, whose difference between
a transfer arm and a scratch arm is its feature reuse (Table VIII)."""

import json
from itertools import combinations

import pandas as pd

from mrishift import usage
from mrishift.analysis import model_similarity
from mrishift.analysis.model_jobs import model_job
from mrishift.evaluation.similarity import MEASURES, block_similarity
from mrishift.evaluation.similarity import model_similarity as between_models
from mrishift.io import write_table
from mrishift.logs import log_to, progress
from mrishift.reporting import tables

log = log_to(snakemake)
params, out, variant = snakemake.params, snakemake.output, snakemake.wildcards.variant
job = model_job(snakemake)
runs = list(zip(json.loads(params.runs), params.models, params.records, strict=True))
groups = {}  # (source, target, budget) -> [(arm, seed, model, record)]: one group's activations are held at a time
for (arm, source, target, run_budget, seed), path, record in runs:
    groups.setdefault((source, target, run_budget), []).append((arm, seed, path, record))


pairs, initial = [], []
for (source, target, run_budget), members in progress(list(groups.items()), "model pairs"):
    slices, of_model, starts = None, {}, {}
    for arm, seed, path, record in members:
        model = job.load(path)
        if slices is None:  # one architecture per variant: the first model's inputs serve every model of the pair
            slices = job.test_slices(target, model)
        of_model[(arm, seed)] = job.activations(model, source, target, slices)
        usage.count("models")
        scratch = arm in params.scratch_arms
        started = (arm, seed) if scratch else seed  # a source model's activations serve every model of its seed
        if started not in starts:
            starts[started] = job.activations(job.start(scratch, source, seed, path, record), source, target, slices)
        start = starts[started]
        initial += [{"variant": variant, "source": source, "target": target, "budget": run_budget, "strategy": arm,
                     "seed": seed, "start": "random initialisation" if arm in params.scratch_arms else "source model",
                     **row} for row in block_similarity(start, of_model[(arm, seed)])]
    for (arm_a, seed_a), (arm_b, seed_b) in combinations(sorted(of_model, key=lambda k: params.arms.index(k[0])), 2):
        pairs += [{"variant": variant, "source": source, "target": target, "budget": run_budget, "arm_a": arm_a,
                   "seed_a": seed_a, "arm_b": arm_b, "seed_b": seed_b, **row}
                  for row in between_models(of_model[(arm_a, seed_a)], of_model[(arm_b, seed_b)])]
pairs = pd.DataFrame(pairs, columns=["variant", "source", "target", "budget", "arm_a", "seed_a", "arm_b", "seed_b",
                                     "block", "depth", *MEASURES])
initial = pd.DataFrame(initial, columns=["variant", "source", "target", "budget", "strategy", "seed", "start",
                                         "block", "depth", *MEASURES])
write_table(out.pairs, pairs)
write_table(out.initial, initial)
log.info("%d model pairs and %d models of %d pairs and budgets", len(pairs) // max(pairs.block.nunique(), 1),
         len(initial) // max(initial.block.nunique(), 1), len(groups))

names = {"pwcca": "PWCCA (the study's RSIM)", "cka": "linear CKA"}  # MEASURES' keys
texts, numbers, reuse, tests = [], [], [], []
for measure in MEASURES:
    text, number = model_similarity.similarity_table(pairs, measure)
    texts.append(pd.concat({names[measure]: text}, names=["measure"]))
    numbers.append(number.assign(measure=measure))
    reuse.append(model_similarity.feature_reuse(initial, measure, params.scratch_arms).assign(measure=measure))
    tests.append(model_similarity.comparison_tests(pairs, measure).assign(measure=measure))
tables.write_table(pd.concat(texts).reset_index().set_index("measure"), out.table.removesuffix(".csv"),
                   f"{variant}: similarity between two trained models per block on their pair's test slices, mean ± "
                   "std over model pairs (two seeds of one arm, or two arms) of every analysed pair (the FCN study's "
                   "Table VII; PWCCA averaged over both directions; the last block of each stage, every block in the "
                   "CSV).",
                   numbers=pd.concat(numbers))
reuse = pd.concat(reuse, ignore_index=True)
shown = ["measure", "budget", "pair", "transfer", "scratch", *model_similarity.stage_blocks(list(reuse.columns[4:-1]))]
tables.write_table(reuse[shown].set_index("measure").round(3), out.reuse.removesuffix(".csv"),
                   f"{variant}: feature reuse per block — a transfer arm's mean similarity to its source model minus a "
                   "scratch arm's to its random initialisation, over seeds, on the pair's test slices (the FCN "
                   "study's Table VIII; the last block of each stage, every block in the CSV).",
                   numbers=reuse.set_index(["measure", "budget", "pair", "transfer", "scratch"]))
write_table(out.tests, pd.concat(tests, ignore_index=True))
log.info("Table VII:\n%s\nfeature reuse:\n%s", pd.concat(texts).to_string(), reuse.to_string())
