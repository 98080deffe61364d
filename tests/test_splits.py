import pytest

from mrishift.data import budget_slices, parse_budget
from mrishift.data.splits import Budget, make_splits


def test_budget_slices_exact_indices():
    assert budget_slices(64, 12) == [0, 12, 24, 36, 48, 60]
    assert budget_slices(270, 48) == [0, 48, 96, 144, 192, 240]
    assert budget_slices(5, 1) == [0, 1, 2, 3, 4]
    assert budget_slices(3, 36) == [0]
    for bad in [(0, 2), (10, 0), (10, -1), (2.5, 1)]:
        with pytest.raises(ValueError):
            budget_slices(*bad)


def test_parse_budget():
    assert parse_budget("3scans") == Budget("3scans", scans=3, every=1)
    assert (parse_budget("3scans").scans, parse_budget("3scans").every) == (3, 1)
    assert (parse_budget("1scan").scans, parse_budget("1scan").every) == (1, 1)
    assert (parse_budget("every24").scans, parse_budget("every24").every) == (1, 24)
    for bad in ["1scans", "3scan", "every0", "every", "0scans", "all"]:
        with pytest.raises(ValueError):
            parse_budget(bad)


CASES = {"siemens_15": [f"CC{i:04d}" for i in range(120, 128)], "ge_3": [f"CC{i:04d}" for i in range(300, 308)]}
SLICES = {c: 64 for cases in CASES.values() for c in cases}


def splits(budgets=("3scans", "1scan", "every12"), seed=7, cases=CASES):
    return make_splits(cases, SLICES, seed=seed, n_validation=1, n_folds=3, budgets=list(budgets))


def test_split_invariants():
    for domain, entry in splits()["domains"].items():
        cases = set(CASES[domain])
        train, val = set(entry["source"]["train"]), set(entry["source"]["validation"])
        assert train.isdisjoint(val) and train | val == cases and len(val) == 1
        tests = [set(f["test"]) for f in entry["oracle_folds"]]
        assert set().union(*tests) == cases and sum(map(len, tests)) == len(cases)
        for fold in entry["oracle_folds"]:
            train, val, test = set(fold["train"]), set(fold["validation"]), set(fold["test"])
            assert len(val) == 1 and train.isdisjoint(test) and val.isdisjoint(train | test)
            assert train | val | test == cases  # validation scans are held out of training, never out of testing
        order = entry["finetune_order"]
        assert len(order) == 3 and set(order).isdisjoint(entry["test"]) and set(order) | set(entry["test"]) == cases
        budgets = entry["budgets"]
        assert budgets["1scan"]["scans"] == order[:1] and budgets["3scans"]["scans"] == order[:3]  # nested prefix
        assert budgets["every12"]["scans"] == order[:1]
        assert budgets["every12"]["slices"] == {order[0]: [0, 12, 24, 36, 48, 60]}
        assert budgets["3scans"]["slices"][order[2]] == list(range(64))
        for budget in budgets.values():
            assert set(budget["test"]).isdisjoint(budget["scans"]) and budget["test"] == entry["test"]


def test_splits_depend_only_on_domain_and_seed():
    reference = splits()
    assert splits() == reference
    # Input order, other domains and the list of budgets do not move a domain's scans.
    shuffled = {"ge_3": CASES["ge_3"][::-1]}
    assert splits(cases=shuffled)["domains"]["ge_3"] == reference["domains"]["ge_3"]
    fewer = splits(budgets=("3scans",))["domains"]["siemens_15"]
    for key in ("source", "oracle_folds", "finetune_order", "test"):
        assert fewer[key] == reference["domains"]["siemens_15"][key]
    assert splits(seed=8)["domains"] != reference["domains"]


def test_splits_refuse_impossible_budgets():
    with pytest.raises(ValueError, match="no test scan"):
        splits(budgets=("8scans",))
