# Config validation, case lists and wildcard constraints shared by every rule file.
import json
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from mrishift.config import validate_config
from mrishift.data.cc359 import DOMAINS, case_id
from mrishift.data.synthetic import subject_ids

validate_config(config)  # fills defaults; stops the parse with a message naming any bad key

ENV = "../envs/mrishift.yaml"
DOMAIN_NAMES = list(config["data"]["domains"])
if config["data"]["source"] == "synthetic":
    RAW_DATASET = "resources/synthetic_cc359"
    CASES = [
        c for d in DOMAIN_NAMES for c in subject_ids(d, config["data"]["synthetic"]["subjects_per_domain"])
    ]
else:
    RAW_DATASET = "resources/cc359"
    CASES = [case_id(i) for d in DOMAIN_NAMES for i in DOMAINS[d].ids]


ARCHS = list(config["models"]["architectures"])
STRATEGIES = list(config["strategies"])
BUDGETS = list(config["splits"]["budgets"])
SEEDS = list(config["training"]["seeds"])
PAIRS = [(s, t) for s in DOMAIN_NAMES for t in DOMAIN_NAMES if s != t]
FOLDS = list(range(config["splits"]["n_folds"]))


wildcard_constraints:
    case="|".join(CASES),
    arch="|".join(ARCHS),
    domain="|".join(DOMAIN_NAMES),
    source="|".join(DOMAIN_NAMES),
    target="|".join(DOMAIN_NAMES),
    strategy="|".join(STRATEGIES),
    budget="|".join(BUDGETS),
    seed=r"\d+",
    fold=r"\d+",


def as_json(value):
    """Sorted JSON: a param that only changes when the value changes (dict params compare in key order)."""
    return json.dumps(value, sort_keys=True)


def trained_models():
    sources = expand("results/models/{arch}/source/{domain}/model.pt", arch=ARCHS, domain=DOMAIN_NAMES)
    oracles = expand("results/models/{arch}/oracle/{domain}/fold{fold}/model.pt", arch=ARCHS, domain=DOMAIN_NAMES,
                     fold=FOLDS)
    finetuned = [
        f"results/models/{arch}/finetune/{strategy}/{source}_to_{target}/{budget}/seed{seed}/model.pt"
        for arch in ARCHS for strategy in STRATEGIES for source, target in PAIRS for budget in BUDGETS
        for seed in SEEDS
    ]
    return sources + oracles + finetuned


def final_outputs():
    return ["results/data/integrity.tsv", "results/data/splits.json", *trained_models()]
