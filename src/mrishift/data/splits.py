"""Train/validation/test splits, oracle folds and target-data budgets, frozen to one JSON artefact.

Splits are made on *sorted* case ids with permutations seeded by ``seed_hash(seed, domain, purpose)``, so
they depend only on (domain, seed) — never on a strategy, an architecture or a budget. That is what makes the
paired sign tests between strategies valid: every strategy is tested on exactly the same scans.

Per domain:
* ``source``: the scans a source model trains on and the validation scans it monitors;
* ``oracle_folds``: k-fold cross-validation inside the domain (union of test folds = every scan); each fold's
  training scans minus ``n_validation`` validation scans (monitoring only, as the public code's ``single_cv``);
* ``finetune_order``: the target scans fine-tuning may use, in order; a budget of n scans takes the first n
  (a nested prefix 1 ⊂ 2 ⊂ 3), a slice budget ``every{k}`` takes slices 0, k, 2k, … of the first scan;
* ``finetune_validation`` (only with ``n_finetune_validation`` > 0): the next scans of the fine-tuning order, which no
  budget trains on and which are not tested on — a fine-tune's held-out score through training (its snapshots);
* ``test``: every other scan of the domain, none of which any budget can fine-tune on. It is the same for all
  budgets, so scores are comparable across budgets as well as across strategies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mrishift.seeding import seed_hash

ZERO_BUDGET = "0"  # the budget of test-time adaptation: no labelled target data (never a fine-tuning budget)
_BUDGET = re.compile(r"^(?:(?P<scans>[1-9]\d*)scans?|every(?P<every>[1-9]\d*))$")


@dataclass(frozen=True)
class Budget:
    name: str
    scans: int  # how many fine-tuning scans (a prefix of the domain's finetune_order)
    every: int  # take every k-th axial slice of those scans, from index 0 (1 = all slices)


def parse_budget(name: str) -> Budget:
    """``"3scans"``/``"1scan"`` → all slices of the first n fine-tuning scans; ``"every12"`` → every 12th slice of
    the first scan."""
    match = _BUDGET.match(name)
    if not match:
        raise ValueError(f"budget {name!r} is neither '<n>scans' (e.g. '3scans', '1scan') nor 'every<k>' (e.g. 'every12')")
    if match["scans"]:
        scans = int(match["scans"])
        if name != (f"{scans}scan" if scans == 1 else f"{scans}scans"):
            raise ValueError(f"budget {name!r}: write '1scan' or '<n>scans' with n > 1")
        return Budget(name, scans, 1)
    return Budget(name, 1, int(match["every"]))


def budget_slices(n_slices: int, every: int) -> list[int]:
    """Indices of every ``every``-th axial slice of a scan with ``n_slices`` slices, starting from index 0."""
    if isinstance(n_slices, bool) or not isinstance(n_slices, (int, np.integer)) or n_slices < 1:
        raise ValueError(f"n_slices must be a positive integer, got {n_slices!r}")
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    return list(range(0, int(n_slices), int(every)))


def _permutation(cases: list[str], *seed_parts) -> list[str]:
    rng = np.random.default_rng(seed_hash(*seed_parts))
    ordered = sorted(cases)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def scan_roles(domain: str, cases: list[str], seed: int, n_validation: int, n_folds: int, budgets: list[str],
               n_finetune_validation: int = 0) -> dict:
    """The scans of each role in one domain — ``domain_splits`` without the slice indices, which need the scans'
    sizes. It reads no image, so the workflow knows at parse time which scans each job reads."""
    parsed = [parse_budget(b) for b in budgets]
    n_finetune = max(b.scans for b in parsed)
    n_cases = len(cases)
    if len(set(cases)) != n_cases:
        raise ValueError(f"{domain}: duplicate case ids in {cases}")
    if n_validation >= n_cases:
        raise ValueError(f"{domain}: {n_validation} validation scans leave no training scan out of {n_cases}")
    if n_finetune + n_finetune_validation >= n_cases:
        raise ValueError(f"{domain}: a budget needs {n_finetune} fine-tuning scans and {n_finetune_validation} are "
                         f"held out for fine-tunes' validation, leaving no test scan out of {n_cases}")
    if not 2 <= n_folds <= n_cases:
        raise ValueError(f"{domain}: {n_folds} oracle folds need between 2 and {n_cases} scans per fold count")

    source_order = _permutation(cases, seed, domain, "source")
    validation, train = sorted(source_order[:n_validation]), sorted(source_order[n_validation:])
    oracle_order = _permutation(cases, seed, domain, "oracle")
    folds = []
    for test in np.array_split(np.array(oracle_order), n_folds):
        rest = [c for c in oracle_order if c not in test]
        if len(rest) <= n_validation:
            raise ValueError(f"{domain}: an oracle fold keeps {len(rest)} scans, too few for {n_validation} validation "
                             "scans and one training scan")
        folds.append({"train": sorted(rest[n_validation:]), "validation": sorted(rest[:n_validation]),
                      "test": sorted(test.tolist())})
    finetune_permutation = _permutation(cases, seed, domain, "finetune")
    finetune_order = finetune_permutation[:n_finetune]
    held_out = sorted(finetune_permutation[n_finetune:n_finetune + n_finetune_validation])
    test = sorted(c for c in cases if c not in finetune_order and c not in held_out)
    return {
        "cases": sorted(cases),
        "source": {"train": train, "validation": validation},
        "oracle_folds": folds,
        "finetune_order": finetune_order,
        **({"finetune_validation": held_out} if held_out else {}),  # absent by default: splits.json as before
        "test": test,
        "budgets": {b.name: {"scans": finetune_order[: b.scans], "every": b.every, "test": test} for b in parsed},
    }


def domain_splits(domain: str, cases: list[str], n_slices: dict[str, int], seed: int, n_validation: int,
                  n_folds: int, budgets: list[str], n_finetune_validation: int = 0) -> dict:
    """Splits of one domain; see the module docstring for the meaning of each entry."""
    splits = scan_roles(domain, cases, seed, n_validation, n_folds, budgets, n_finetune_validation)
    for entry in splits["budgets"].values():
        entry["slices"] = {scan: budget_slices(n_slices[scan], entry["every"]) for scan in entry["scans"]}
        entry["test"] = entry.pop("test")  # key order as before: scans, every, slices, test
    return splits


def make_splits(cases_by_domain: dict[str, list[str]], n_slices: dict[str, int], seed: int, n_validation: int,
                n_folds: int, budgets: list[str], n_finetune_validation: int = 0) -> dict:
    return {
        "seed": seed,
        "n_validation": n_validation,
        "n_folds": n_folds,
        "budgets": list(budgets),
        "domains": {
            domain: domain_splits(domain, cases, n_slices, seed, n_validation, n_folds, budgets, n_finetune_validation)
            for domain, cases in cases_by_domain.items()
        },
    }


def budget_order(budgets) -> list[str]:
    """Budgets from the least to the most target data (scans ÷ slice step); ``0`` (test-time: no label) first."""
    return sorted(set(budgets), key=lambda b: 0 if b == ZERO_BUDGET else parse_budget(b).scans / parse_budget(b).every)
