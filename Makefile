# Two commands a new user needs: `make run` (install, then walk a prod intent through the workflow on
# the embedded defaults) and `make test` (install, then run the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install bench clean

run: install
	$(BIN)/agentops demo

test: install
	$(BIN)/python -m pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

bench: install
	$(BIN)/python bench/bench_workflow.py --runs 50
	$(BIN)/python bench/bench_retrieval.py

clean:
	rm -rf $(VENV) .agentops .pytest_cache
