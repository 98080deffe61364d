"""An overlay of config/tiny.yaml that runs every rule on one source→target pair (for the tests that run the study
through SLURM or kill it: each costs a fraction of the full tiny study's jobs)."""

OVERLAY = """\
splits:
  finetune_pairs: {sources: [siemens_15], targets: [siemens_3]}
test_time:  # one arm reading an intensity reference and one a normalized source model
  bn_kl_normalizer: {sources: [siemens_15], targets: [siemens_3], iterations: 2}
  hist_match: {sources: [siemens_15], targets: [siemens_3]}
"""

# scores.tsv rows per role: oracle (3 domains × 4 scans), baseline (3 sources × every scan of the 2 other domains),
# the 3 source models on their held-out scan, siemens_15 → siemens_3's 7 fine-tunes (ft_all, ft_first, bn_stats at 2
# budgets, ft_first_bn_eval at 1) on its 2 test scans and on the source's held-out scan, 2 test-time arms on the 2
# test scans
ROWS_PER_ROLE = {"oracle": 12, "baseline": 24, "source": 3, "finetune": 14, "forgetting": 7, "test_time": 4}
