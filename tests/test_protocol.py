"""Which scans each role trains, validates and is tested on (mrishift.data.protocol), on splits of two small domains."""

import pytest

from mrishift.data import protocol
from mrishift.data.splits import make_splits, scan_roles

CASES = {"siemens_15": [f"CC{i:04d}" for i in range(120, 128)], "ge_3": [f"CC{i:04d}" for i in range(300, 306)]}
SLICES = {c: 40 for cases in CASES.values() for c in cases}
SPLITS = make_splits(CASES, SLICES, seed=7, n_validation=1, n_folds=3, budgets=["2scans", "every12"])["domains"]


def test_source_model_trains_on_its_domain_minus_validation():
    for domain, cases in CASES.items():
        data = protocol.source_training(SPLITS, domain)
        assert data.slices is None and len(data.validation) == 1
        assert sorted(data.cases + data.validation) == cases and not set(data.cases) & set(data.validation)


def test_oracle_folds_test_every_scan_once_and_never_train_on_it():
    for domain, cases in CASES.items():
        tested = []
        for fold in range(3):
            data, test = protocol.oracle_training(SPLITS, domain, fold), protocol.oracle_test(SPLITS, domain, fold)
            assert not set(test) & set(data.cases + data.validation)
            assert sorted(test + data.cases + data.validation) == cases
            tested += test
        assert sorted(tested) == cases
    with pytest.raises(ValueError, match="ge_3: oracle fold 3 does not exist"):
        protocol.oracle_training(SPLITS, "ge_3", 3)


def test_baseline_is_tested_on_every_scan_of_every_other_domain():
    assert protocol.baseline_test(SPLITS, "siemens_15") == {"ge_3": CASES["ge_3"]}
    with pytest.raises(ValueError, match="domain 'philips_3' is not in the splits"):
        protocol.baseline_test(SPLITS, "philips_3")


def test_finetunes_train_on_the_budget_and_share_test_scans_they_never_saw():
    order = SPLITS["ge_3"]["finetune_order"]
    two = protocol.finetune_training(SPLITS, "ge_3", "2scans")
    assert two.cases == order[:2] and two.slices == [list(range(40))] * 2 and two.validation is None
    sparse = protocol.finetune_training(SPLITS, "ge_3", "every12")
    assert sparse.cases == order[:1] and sparse.slices == [[0, 12, 24, 36]]
    test = protocol.finetune_test(SPLITS, "ge_3", "2scans")
    assert test == protocol.finetune_test(SPLITS, "ge_3", "every12") == sorted(set(CASES["ge_3"]) - set(order[:2]))
    with pytest.raises(ValueError, match="ge_3: budget '3scans' is not in the splits"):
        protocol.finetune_test(SPLITS, "ge_3", "3scans")


def test_forgetting_is_measured_on_the_source_scans_no_run_trains_on():
    for domain, cases in CASES.items():
        heldout = protocol.source_heldout(SPLITS, domain)
        assert len(heldout) == 1 and heldout == protocol.source_training(SPLITS, domain).validation
        assert heldout[0] in cases and heldout[0] not in protocol.source_training(SPLITS, domain).cases
    with pytest.raises(ValueError, match="domain 'philips_3' is not in the splits"):
        protocol.source_heldout(SPLITS, "philips_3")


def test_the_workflow_knows_each_jobs_scans_before_any_image_is_read():
    """scan_roles (parse time, no image) and the splits file (made from the images) name the same scans for every
    role, so the inputs a job declares are the scans it reads."""
    roles = {d: scan_roles(d, cases, seed=7, n_validation=1, n_folds=3, budgets=["2scans", "every12"])
             for d, cases in CASES.items()}
    for domain in CASES:
        assert protocol.source_training(roles, domain).scans == protocol.source_training(SPLITS, domain).scans
        assert sorted(protocol.source_training(roles, domain).scans) == sorted(CASES[domain])  # train + validation
        for fold in range(3):
            assert protocol.oracle_training(roles, domain, fold) == protocol.oracle_training(SPLITS, domain, fold)
            assert protocol.oracle_test(roles, domain, fold) == protocol.oracle_test(SPLITS, domain, fold)
        for budget in ("2scans", "every12"):
            assert protocol.finetune_scans(roles, domain, budget) == protocol.finetune_training(SPLITS, domain,
                                                                                                 budget).cases
            assert protocol.finetune_test(roles, domain, budget) == protocol.finetune_test(SPLITS, domain, budget)
        assert "slices" not in roles[domain]["budgets"]["every12"]  # those need the images
    assert len(protocol.finetune_scans(roles, "ge_3", "every12")) == 1


def test_each_scan_set_holds_exactly_the_scans_its_readers_read():
    """A scan set is declared by jobs that read all of it: each set equals the role it stands for, written out here
    from the splits' own entries."""
    ge = SPLITS["ge_3"]
    assert protocol.scan_set(SPLITS, "ge_3", "all") == CASES["ge_3"]
    assert sorted(protocol.scan_set(SPLITS, "ge_3", "source")) == CASES["ge_3"]  # train + validation
    assert protocol.scan_set(SPLITS, "ge_3", "source_train") == ge["source"]["train"]
    assert protocol.scan_set(SPLITS, "ge_3", "heldout") == ge["source"]["validation"]
    assert protocol.scan_set(SPLITS, "ge_3", "test") == ge["test"] == protocol.finetune_test(SPLITS, "ge_3", "every12")
    for fold in range(3):
        assert protocol.scan_set(SPLITS, "ge_3", f"fold{fold}") == (ge["oracle_folds"][fold]["train"]
                                                                    + ge["oracle_folds"][fold]["validation"])
    assert set(protocol.scan_set(SPLITS, "ge_3", "test")).isdisjoint(ge["finetune_order"])
    with pytest.raises(ValueError, match="ge_3: no scan set 'train'"):
        protocol.scan_set(SPLITS, "ge_3", "train")
    with pytest.raises(ValueError, match="ge_3: oracle fold 5 does not exist"):
        protocol.scan_set(SPLITS, "ge_3", "fold5")
