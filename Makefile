# `make demo` and `make test` work on a fresh machine: they create .venv/ and install the pinned deps first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean-results results-page

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "mrishift needs Python 3.11, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# One progress line per finished job on the console (VERBOSE=1: Snakemake's own output); the full log in logs/.
demo: $(STAMP)
ifdef VERBOSE
	$(BIN)/snakemake --profile profiles/local
else
	$(BIN)/mrishift run-workflow --log logs/workflow.log -- $(BIN)/snakemake --profile profiles/local
endif
	$(BIN)/snakemake --profile profiles/local --report results/report.html > logs/report.log 2>&1 \
		|| { tail -n 30 logs/report.log; exit 1; }
	@$(BIN)/mrishift headline --results results --report results/report.html

# The results page of the last `make demo` (docs/results/demo.md and its figures), generated from results/ with the
# commit, date, the wall time you give (WALL="27.9 min") and a CPU benchmark figure measured now (ft_all steps/s).
results-page: $(STAMP)
	$(BIN)/mrishift results-page --wall "$(WALL)" --calibration "$$($(BIN)/python bench/train_speed.py --patch 64 \
		--batch 8 --threads 1 --width 0.5 --steps 30 --strategies ft_all | awk '$$4 == "ft_all" {print $$5 " ft_all steps/s"}')"

# Two workers, a test file each at a time (the workflow test files share one tiny study, built by the first to ask);
# then the SLURM tests alone: their own small study, a job per rule through sbatch, is bound by each job's start-up
# on the CPUs, and beside the tiny study it took 337 s instead of 259. Both phases run; either failing fails.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slurm"; status=$$?; \
	$(BIN)/python -m pytest -m slurm && exit $$status

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results resources logs .snakemake
