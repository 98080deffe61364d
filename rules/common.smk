# Config validation, case lists and wildcard constraints shared by every rule file.
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


wildcard_constraints:
    case="|".join(CASES),


def final_outputs():
    return ["results/data/integrity.tsv", "results/data/splits.json"]
