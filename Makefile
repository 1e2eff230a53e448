# Every target sets up .venv itself, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
# torch 2.13.0 CPU is on this project's machines' disk; GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data/synthetic
SUBJECTS ?= 35
DEMO_DATA ?= data/demo
DEMO_SUBJECTS ?= 20

.PHONY: install test test-all demo data bench lint clean ablation

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -m "not slow" -q

test-all: install
	$(BIN)/python -m pytest -q

data: install
	$(BIN)/python -m mutual_seg.data.synthetic --out $(DATA) --subjects $(SUBJECTS) --seed 0

# The demo set is generated once (a re-run with the same arguments resumes or skips), then the demo trains and tests.
demo: install
	$(BIN)/python -m mutual_seg.data.synthetic --out $(DEMO_DATA) --subjects $(DEMO_SUBJECTS) --seed 0
	$(BIN)/python -m mutual_seg.run experiment=demo data.layout.root=$(DEMO_DATA)

# The ablation study (README, "The ablation study"): inputs x fusions at equal parameters x modality dropout,
# 5 folds x 3 seeds, on the synthetic generator and its shifted variant, then the paired table.
# QUICK=1: the same grid on small data and short training (2 CPU cores). ABLATION_ARGS: more, e.g. "--cells core".
ablation: install
	$(BIN)/python experiments/ablation.py $(if $(QUICK),--quick) $(ABLATION_ARGS)

bench: install data
	$(BIN)/python benchmarks/loader_speed.py --data $(DATA)

lint: install
	$(BIN)/ruff check mutual_seg tests

clean:
	rm -rf $(VENV) outputs multirun .cache
