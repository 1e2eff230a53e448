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

.PHONY: install test test-all demo data bench lint clean ablation reproduce-table1 reproduce-table2 docs

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
	$(BIN)/python -m mutual_seg.data.synthetic --out $(DATA) --subjects $(SUBJECTS) --seed 0 $(SYNTH_ARGS)

# The demo set is generated once (a re-run with the same arguments resumes or skips), then the demo trains and tests.
demo: install
	$(BIN)/python -m mutual_seg.data.synthetic --out $(DEMO_DATA) --subjects $(DEMO_SUBJECTS) --seed 0
	$(BIN)/python -m mutual_seg.run experiment=demo data.layout.root=$(DEMO_DATA)

# The ablation study (docs/ablation.md): inputs x fusions at equal parameters x modality dropout,
# 5 folds x 3 seeds, on the synthetic generator and its shifted variant, then the paired table.
# QUICK=1: FLAIR, T2w, FLAIR+T2w x every fusion, dropout and four inputs x {early, mutual}: 11 cells x 5 folds x
# 3 seeds x 2 generators, short training, two jobs at a time (within 1 h on 2 CPU cores).
# ABLATION_ARGS: more options, e.g. ABLATION_ARGS="--cells core --seeds 0,1,2,3,4 trainer=gpu".
ablation: install
	$(BIN)/python experiments/ablation.py $(if $(QUICK),--quick) $(ABLATION_ARGS)

# Speed and memory beside MONAI's BasicUNet (benchmarks/RESULTS.md). QUICK=1: within 10 min on 2 CPU cores.
# MONAI is a benchmark extra only; it needs torch>=2.8 and numpy, so pip keeps the torch already installed.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: install $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench.py $(if $(QUICK),--quick)

# The paper's Table 1 / Table 2: the Hydra sweep of conf/experiment/table{1,2}[_quick].yaml, then mutual-seg-report.
# DATA_DIR=<UCSF-PDGM tree>: the paper's astrocytoma cohort; otherwise the synthetic set $(DATA) (made first if
# absent). QUICK=1: the reduced budget (table*_quick.yaml) on a half-resolution synthetic set, $(DATA)_quick
# (QUICK_SHAPE voxels over the same field of view: 2 mm instead of 1 mm). ARGS: extra Hydra overrides.
QUICK_SHAPE ?= 120 120 78
REPRO_OUT ?= outputs/reproduce
REPRO_SET = $(if $(QUICK),$(DATA)_quick,$(DATA))
REPRO_DATA = $(if $(DATA_DIR),data=ucsf_pdgm_astrocytoma data.layout.root=$(DATA_DIR),data.layout.root=$(REPRO_SET))
REPRO_STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
REPORT_table1 :=
REPORT_table2 = --compare flair flair_t2w $(if $(DATA_DIR),--exclude UCSF-PDGM-0255)

reproduce-table1 reproduce-table2: reproduce-%: install
	$(if $(DATA_DIR),,$(BIN)/python -m mutual_seg.data.synthetic --out $(REPRO_SET) --subjects $(SUBJECTS) --seed 0 \
		$(if $(QUICK),--shape $(QUICK_SHAPE)) $(SYNTH_ARGS))
	$(BIN)/python -m mutual_seg.run -m experiment=$*$(if $(QUICK),_quick) $(REPRO_DATA) \
		hydra.sweep.dir=$(REPRO_OUT)/$*$(if $(QUICK),_quick)/$(REPRO_STAMP) $(ARGS)
	$(BIN)/python -m mutual_seg.report $(REPRO_OUT)/$*$(if $(QUICK),_quick)/$(REPRO_STAMP) $(REPORT_$*)

# The documentation site (mkdocs.yml, docs/) into site/; --strict: any warning (a broken link, a missing page,
# an API object that does not import) fails the build. The docs extra installs once into .venv.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: install $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# ruff, then the layering contracts of pyproject.toml's [tool.importlinter] (docs/architecture.md, "Contracts").
lint: install
	$(BIN)/ruff check mutual_seg tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) outputs multirun .cache site
