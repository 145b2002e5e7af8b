# Shortcuts for the commands in README.md and CONTRIBUTING.md; each target is one of them.
# `make install` once on a fresh Debian machine, then `make test-fast` while working.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?= -q
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test-fast test lint format bench bench-transcription demo

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

install: ## PostgreSQL, chromium, livekit-server, the venv with the test extra, transcription models
	bash .ci/install-dev.sh $(VENV)

test-fast: ## The inner loop: no Synapse, no speech models (target: under a minute)
	$(PYTHON) -m pytest $(PYTEST_ARGS) -m "not synapse and not models"

test: install ## The README's test command: install what is missing, then every test
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: ## ruff check, ruff format --check and mypy, as .ci/run does
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

format: ## Sort imports and format the code in place
	$(PYTHON) -m ruff check --select I --fix .
	$(PYTHON) -m ruff format .

bench: ## Latency, real livekit-server and double (BENCH_ARGS="--rounds 20 --json out.json")
	$(PYTHON) bench/visio_bench.py $(BENCH_ARGS)

bench-transcription: ## Transcription RTF and memory (BENCH_ARGS="--minutes 1 5 --language fr")
	$(PYTHON) bench/transcription_bench.py $(BENCH_ARGS)

demo: ## A throwaway local Synapse with the bridge (and livekit-server when installed)
	$(PYTHON) -m appservice.cli demo
