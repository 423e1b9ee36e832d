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

.PHONY: help setup repro test lint format pytest nbval bench audit clean lock ci-metrics lab \
	dashboard-screenshot

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# requirements.lock pins every package of learnops and its dev extras, with hashes, except torch:
# torch==2.13.0 (CPU) is installed by plain pip (a machine's own CPU wheel; PyPI's is a CUDA
# build with another hash), after the lock, whose pins already satisfy torch's own requirements.
LOCK := requirements.lock
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "learnops needs Python 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$$(sed -n 's/^pip==\([^ ]*\).*/\1/p' $(LOCK))"
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (learnops)" >/dev/null
	touch $(STAMP)

# `make lock` re-resolves with uv (a resolver only: it never installs anything here), keeping the
# pins already in the lock unless pyproject.toml needs others; `make lock UPGRADE=1` takes the
# newest releases. The local torch CPU wheel (pip's find-links) gives torch's own requirements, so
# that PyPI's CUDA packages stay out. Then environment.yml is rewritten from the lock.
UV_VERSION := 0.13.9
LOCK_TOOLS := build/lock-tools
TORCH_LINKS ?= $(or $(PIP_FIND_LINKS),$(wildcard /opt/wheels))
lock: ## Re-resolve requirements.lock (pins + hashes) from pyproject.toml; rewrite environment.yml
	test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && \
		$(LOCK_TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		$(if $(TORCH_LINKS),--find-links $(TORCH_LINKS)) $(if $(UPGRADE),--upgrade) \
		--no-emit-package torch --custom-compile-command "make lock" -o $(LOCK)
	@! grep -E '^(nvidia-(cu|nccl|nvjitlink|nvtx|nvshmem)|cuda-|triton==)' $(LOCK) || \
		{ echo "$(LOCK) holds CUDA packages: torch's CPU wheel was not found (pip find-links)"; exit 1; }
	$(PYTHON) scripts/sync_environment.py $(LOCK) environment.yml

setup: $(STAMP) ## Create .venv (torch==2.13.0 CPU, learnops editable, Jupyter kernel python3)

repro: setup ## Set up, then run the whole pipeline (dvc repro) on the simulated default data
	$(BIN)/dvc repro

test: setup lint pytest nbval ## Set up, then run ruff, pytest and nbval on the notebooks

lint: setup ## ruff check + format check
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

pytest: setup ## Unit, data and model tests
	$(BIN)/pytest

nbval: setup ## Execute every notebook in order on CI-size params (scratch copy in build/nbval)
	rm -rf $(NBVAL_DIR) && mkdir -p $(NBVAL_DIR)
	cp -r notebooks $(NBVAL_DIR)/notebooks && cp params.ci.yaml $(NBVAL_DIR)/params.yaml
	cd $(NBVAL_DIR) && env -u LEARNOPS_DB_URL $(BIN)/pytest -p no:cacheprovider --nbval-lax \
		--rootdir=. -o addopts="" notebooks

# JupyterLab on the repository with the project's kernel (python3, installed into .venv by setup).
# A notebook run there with no params_path reads the repository's params.yaml (the file dvc repro
# uses). It runs until stopped (Ctrl-C); LAB_ARGS adds options, e.g. LAB_ARGS="--no-browser --port 8899".
# As root (a container), JupyterLab needs --allow-root, which is then added.
lab: setup ## Start JupyterLab on notebooks/ with the project kernel (runs until Ctrl-C)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --ServerApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

bench: setup ## Benchmarks (numbers land in benchmarks/results/)
	for b in benchmarks/[!_]*.py; do $(BIN)/python $$b || exit 1; done

audit: setup ## Security audit: bandit over src/, pip-audit over requirements.lock (needs PyPI's JSON API)
	$(BIN)/bandit -r src -q
	$(BIN)/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off

ci-metrics: setup ## Rerun the CI-size pipeline and rewrite the reference tests/data/ci_metrics.json
	$(BIN)/python tests/test_reproducible.py --write tests/data/ci_metrics.json

# tests/test_dashboard_browser.py saves its screenshot under pytest's tmp dir; this runs it with
# LEARNOPS_SCREENSHOT_DIR set, so the screenshot also replaces reports/dashboard.png (the README's).
dashboard-screenshot: setup ## Refresh reports/dashboard.png (the browser test; needs /usr/bin/chromium)
	LEARNOPS_SCREENSHOT_DIR=$(CURDIR)/reports $(BIN)/pytest -p no:cacheprovider -q -s \
		tests/test_dashboard_browser.py

clean: ## Remove build outputs (keeps .venv and data)
	rm -rf build .pytest_cache .ruff_cache
