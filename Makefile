# make run: install into .venv and run the pipeline on the embedded server; make test: install and test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A portable llama.cpp build (no -march=native), so the cached wheel runs on any x86-64.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: install run test dry-run lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/snakemake --profile profiles/local data/generated/code/filtered.jsonl

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

dry-run: install
	$(BIN)/snakemake -n data/generated/code/filtered.jsonl

lint: install
	$(BIN)/ruff check evoselfcode tests bench
	$(BIN)/ruff format --check evoselfcode tests bench

clean:
	rm -rf data/shards data/generated logs benchmarks .snakemake .evoselfcode
