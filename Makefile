# make run: install into .venv and run the pipeline on the embedded server; make test: install and test
# (the workflow on a single-node SLURM too, which needs root: SKIP_SLURM=1 leaves that part out).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A portable llama.cpp build (no -march=native), so the cached wheel runs on any x86-64.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: install install-echo chromium sandbox run test test-slurm dry-run lint clean report

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev,cluster]'
	touch $@

# llama-cpp-python, for scoring's prompt log-probs (the tests use it): compiled once, then from pip's wheel cache.
$(BIN)/.installed-echo: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[echo]'
	touch $@

install: $(BIN)/.installed

install-echo: $(BIN)/.installed-echo

# Headless Chromium for the report test (it opens report.html); only where it is missing and apt-get exists.
chromium:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || scripts/install-chromium.sh

# Debian's bubblewrap, which runs generated code in a sandbox (execution.sandbox: bwrap, the default).
sandbox:
	@command -v bwrap >/dev/null || scripts/install-bubblewrap.sh

# make run DESCS=my.txt: your own descriptions (.txt, one per line, or JSONL) on the local model, into data/own/my/;
# CONFIG=my.yaml adds your settings over configs/local.yaml (alone: the sample descriptions, into data/own/my/).
DESCS ?=
CONFIG ?=
OWN_NAME = $(basename $(notdir $(or $(DESCS),$(CONFIG))))
OWN_DIR = data/own/$(OWN_NAME)
COMMA := ,
OWN_IO = io='{$(if $(DESCS),input_desc_path: "$(DESCS)"$(COMMA) )shards_dir: "$(OWN_DIR)/shards", \
	out_names_dir: "$(OWN_DIR)/names", out_code_dir: "$(OWN_DIR)/code", logs_dir: "$(OWN_DIR)/logs"}'
# a --configfile replaces the profile's, so configs/local.yaml is named again before yours
OWN = $(strip $(if $(CONFIG),--configfile configs/local.yaml $(CONFIG)) $(if $(OWN_NAME),--config $(OWN_IO)))
REPORT = $(if $(OWN_NAME),$(OWN_DIR)/report.html,report.html)
# the run's closing summary then says `make report` with these variables, the next command that works for it
run report: export EVOSELFCODE_MAKE_VARS = $(strip $(if $(DESCS),DESCS=$(DESCS)) $(if $(CONFIG),CONFIG=$(CONFIG)))

# The default target: the records, metrics, timing and plots of the README's output table, and the dataset folder.
run: install sandbox
	$(BIN)/snakemake --profile profiles/local $(OWN)

# Lint first, then one pytest run, so its closing line counts every test; SLURM is up for it and stopped whatever happens.
test: install install-echo chromium sandbox lint
	trap scripts/slurm-down.sh EXIT; { [ "$(SKIP_SLURM)" = 1 ] || scripts/slurm-up.sh; } && \
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

# Starts SLURM on this machine (scripts/slurm-up.sh: root, Debian) and stops it again whatever happens.
test-slurm: install
	trap scripts/slurm-down.sh EXIT; scripts/slurm-up.sh && PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -m slurm

# The quick start's data plus the plots, collected into report.html (with DESCS= or CONFIG=: into data/own/NAME/report.html).
report: install sandbox
	$(BIN)/snakemake --profile profiles/local $(OWN)
	$(BIN)/snakemake --profile profiles/local $(OWN) --report $(REPORT)

dry-run: install
	$(BIN)/snakemake -n data/generated/code/filtered.jsonl

# ruff's lint and format check, and Snakemake's lint of the workflow (its accepted findings: scripts/lint-workflow.py).
lint: install
	$(BIN)/ruff check evoselfcode tests bench scripts
	$(BIN)/ruff format --check evoselfcode tests bench scripts
	$(BIN)/python scripts/lint-workflow.py

clean:
	rm -rf data/shards data/generated data/quickstart logs benchmarks .snakemake .evoselfcode
