# learnops — the two commands: `make repro` (setup + full pipeline) and `make test` (setup + all tests).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
NBVAL_DIR := build/nbval
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# no MPLBACKEND here: the report kernels must use matplotlib's inline backend (figures in HTML)
unexport MPLBACKEND

.PHONY: help setup repro test lint format pytest nbval bench audit clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "learnops needs Python 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (learnops)" >/dev/null
	touch $(STAMP)

setup: $(STAMP) ## Create .venv (torch==2.13.0 CPU, learnops editable, Jupyter kernel python3)

repro: setup ## Set up, then run the whole pipeline (dvc repro) on the simulated default data
	$(BIN)/dvc repro

test: setup lint pytest nbval ## Set up, then run ruff, pytest and nbval on the notebooks

lint: setup ## ruff check + format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

pytest: setup ## Unit, data and model tests
	$(BIN)/pytest

nbval: setup ## Execute every notebook in order on CI-size params (scratch copy in build/nbval)
	rm -rf $(NBVAL_DIR) && mkdir -p $(NBVAL_DIR)
	cp -r notebooks $(NBVAL_DIR)/notebooks && cp params.ci.yaml $(NBVAL_DIR)/params.yaml
	cd $(NBVAL_DIR) && env -u LEARNOPS_DB_URL $(BIN)/pytest -p no:cacheprovider --nbval-lax \
		--rootdir=. -o addopts="" notebooks

bench: setup ## Benchmarks (numbers land in benchmarks/results/)
	for b in benchmarks/[!_]*.py; do $(BIN)/python $$b || exit 1; done

audit: setup ## Security audit: bandit over src/, pip-audit over the installed packages
	$(BIN)/bandit -r src -q
	$(BIN)/pip-audit --local --skip-editable --progress-spinner off

clean: ## Remove build outputs (keeps .venv and data)
	rm -rf build .pytest_cache .ruff_cache
