"""Overlays of config/tiny.yaml that run every rule on one source→target pair, for the tests that cost a workflow
run of their own (SLURM, the kill test, the 3D network): each costs a fraction of the full tiny study's jobs."""

OVERLAY = """\
splits:
  finetune_pairs: {sources: [siemens_15], targets: [siemens_3]}
test_time:  # one arm reading an intensity reference and one a normalized source model
  bn_kl_normalizer: {sources: [siemens_15], targets: [siemens_3], iterations: 2}
  hist_match: {sources: [siemens_15], targets: [siemens_3]}
"""

# scores.tsv rows per role: oracle (3 domains × 4 scans), baseline (3 sources × every scan of the 2 other domains),
# the 3 source models on their held-out scan, siemens_15 → siemens_3's 8 fine-tunes (ft_all, ft_first, bn_stats at 2
# budgets, ft_first_bn_eval and scratch_target at 1) on its 2 test scans and on the source's held-out scan, 2 test-time
# arms on the 2 test scans
ROWS_PER_ROLE = {"oracle": 12, "baseline": 24, "source": 3, "finetune": 16, "forgetting": 8, "test_time": 4}

# Layered over OVERLAY: the pair's two domains alone, for the tests that start a job per rule and cannot share the
# tiny study's source models and oracles (SLURM: ~10 s of Snakemake and torch start-up a job; the kill test). A third
# domain adds 4 scans, a source model, 3 oracles and their scoring, and runs no rule the pair does not.
TWO_DOMAINS = """\
data:
  domains: [siemens_15, siemens_3]
evaluation:
  similarity: {sources: [siemens_15]}
"""

# the same on two domains: oracle (2 × 4 scans), baseline (2 sources × the other domain's 4 scans), 2 source models;
# the pair's rows as above
ROWS_PER_ROLE_TWO_DOMAINS = ROWS_PER_ROLE | {"oracle": 8, "baseline": 8, "source": 2}
