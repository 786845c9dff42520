# g2m — run `make help` for the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Raw benchmark files, if a local copy exists beside the checkout (read-only; copied into
# g2m's cache). Elsewhere this is empty and PyG downloads the files.
export G2M_DATA_DIR ?= $(wildcard $(abspath ../shared/datasets))
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup train test test-fast lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/.installed ## create .venv and install g2m (+dev tools); torch pinned to 2.13.0

train: setup ## run `python -m g2m.train` on its defaults (add overrides with ARGS="...")
	$(BIN)/python -m g2m.train $(ARGS)

test: setup ## run the whole test suite (real-data tests need G2M_DATA_DIR)
	$(BIN)/python -m pytest $(ARGS)

test-fast: setup ## the inner loop: the tests that run no whole pipeline and no real data (under a minute)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check g2m tests
	$(BIN)/ruff format --check g2m tests

format: setup ## ruff format and autofix
	$(BIN)/ruff format g2m tests
	$(BIN)/ruff check --fix g2m tests

clean: ## remove run outputs and caches (not the venv)
	rm -rf runs multirun outputs .pytest_cache .ruff_cache
