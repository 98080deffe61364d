"""The study's protocol: which scans (and slices) each role trains on, validates on and is tested on, read from the
frozen splits (``mrishift.data.splits``). The workflow's scripts only adapt these answers to Snakemake's files.

* a source model trains on its domain's source split and validates on its validation scans;
* an oracle fold trains and validates inside its domain and is tested on its own test fold, so the folds together
  test every scan of the domain once;
* the baseline (a source model, unadapted) is tested on every scan of every other domain;
* a fine-tune trains on its budget's slices of its target's first fine-tuning scans and is tested on the target's
  test scans — the same scans for every budget and arm, none of which any budget trains on;
* a source model is also tested on its own domain's held-out scans (its validation scans, which no run trains on),
  and every fine-tune on its source's: how much of the source domain fine-tuning forgets;
* a test-time method (budget 0: no label) adapts to and is tested on those same test scans, one at a time; its
  source side is the quantile function of the source's training scans' intensities (``intensity_reference``).

Which *scans* each role reads needs no image (``mrishift.data.splits.scan_roles``), so the workflow asks these same
functions at parse time and declares exactly those files as each job's inputs. Where many jobs read the same scans
of a domain (every scoring job of a target reads all its test scans) they declare one *scan set* (``SCAN_SETS``)
instead, a folder holding exactly those scans: the full study would otherwise declare a million inputs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingData:
    cases: list[str]
    slices: list[list[int]] | None = None  # per case; None = every slice
    validation: list[str] | None = None  # scored every few epochs, never trained on

    @property
    def scans(self) -> list[str]:
        """Every scan the run reads: its training scans, then its validation scans."""
        return self.cases + (self.validation or [])


def source_training(splits: dict, domain: str) -> TrainingData:
    split = _domain(splits, domain)["source"]
    return TrainingData(split["train"], validation=split["validation"])


def oracle_training(splits: dict, domain: str, fold: int) -> TrainingData:
    split = _fold(splits, domain, fold)
    return TrainingData(split["train"], validation=split["validation"])


def finetune_training(splits: dict, target: str, budget: str) -> TrainingData:
    scans = finetune_scans(splits, target, budget)
    return TrainingData(scans, slices=[_budget(splits, target, budget)["slices"][case] for case in scans])


def finetune_scans(splits: dict, target: str, budget: str) -> list[str]:
    """The target scans a fine-tune at this budget trains on (its slices need the splits made from the images)."""
    return _budget(splits, target, budget)["scans"]


def oracle_test(splits: dict, domain: str, fold: int) -> list[str]:
    return _fold(splits, domain, fold)["test"]


def baseline_test(splits: dict, source: str) -> dict[str, list[str]]:
    """target domain -> every scan of it, for each domain other than ``source``."""
    _domain(splits, source)
    return {domain: split["cases"] for domain, split in splits.items() if domain != source}


def finetune_test(splits: dict, target: str, budget: str) -> list[str]:
    return _budget(splits, target, budget)["test"]


def finetune_validation(splits: dict, target: str) -> list[str]:
    """The target's scans a fine-tune's snapshots are scored on through training: neither trained on by any budget
    nor tested on (``splits.n_finetune_validation``; none by default)."""
    return _domain(splits, target).get("finetune_validation", [])


def source_heldout(splits: dict, source: str) -> list[str]:
    """The source domain's scans no run trains on — its source models' validation scans (mixed-batch strategies draw
    only the source training scans) — on which a source model and each fine-tune from it are scored for forgetting."""
    return _domain(splits, source)["source"]["validation"]


def test_time_test(splits: dict, target: str) -> list[str]:
    """The scans a test-time method adapts to and is scored on: the target's fine-tuning test scans."""
    return _domain(splits, target)["test"]


def intensity_reference(splits: dict, source: str) -> list[str]:
    """The scans whose pooled intensities a source's histogram reference summarises: its source training scans."""
    return source_training(splits, source).cases


# The scans of a domain that whole jobs read, by name: each job reading one reads every scan in it.
SCAN_SETS = {
    "all": "every scan (oracle scoring: its folds' test scans; the baseline, scored on every scan of its target)",
    "source": "a source model's training and validation scans",
    "source_train": "the source training scans (histogram reference; source slices mixed into fine-tuning batches)",
    "test": "the fine-tuning and test-time test scans (the same for every budget)",
    "heldout": "the source validation scans a fine-tune from this domain is scored on for forgetting",
    "fold<k>": "oracle fold k's training and validation scans",
}


def scan_set(splits: dict, domain: str, name: str) -> list[str]:
    """The scans of one scan set of a domain (``SCAN_SETS``), in the order the splits list them."""
    if name.startswith("fold") and name[4:].isdigit():
        return oracle_training(splits, domain, int(name[4:])).scans
    sets = {"all": lambda: _domain(splits, domain)["cases"], "source": lambda: source_training(splits, domain).scans,
            "source_train": lambda: source_training(splits, domain).cases,
            "test": lambda: test_time_test(splits, domain), "heldout": lambda: source_heldout(splits, domain)}
    if name not in sets:
        raise ValueError(f"{domain}: no scan set {name!r} (sets: {', '.join(SCAN_SETS)})")
    return sets[name]()


def _domain(splits: dict, domain: str) -> dict:
    if domain not in splits:
        raise ValueError(f"domain {domain!r} is not in the splits (domains: {sorted(splits)})")
    return splits[domain]


def _fold(splits: dict, domain: str, fold: int) -> dict:
    folds = _domain(splits, domain)["oracle_folds"]
    if not 0 <= fold < len(folds):
        raise ValueError(f"{domain}: oracle fold {fold} does not exist ({len(folds)} folds)")
    return folds[fold]


def _budget(splits: dict, target: str, budget: str) -> dict:
    budgets = _domain(splits, target)["budgets"]
    if budget not in budgets:
        raise ValueError(f"{target}: budget {budget!r} is not in the splits (budgets: {list(budgets)})")
    return budgets[budget]
