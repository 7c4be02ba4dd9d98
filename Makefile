# Two commands a new user needs: `make run` (install, then start the HTTP service and approvals page on the
# embedded defaults, printing its address and, on first start, demo API keys) and `make test` (install,
# then run the test suite). `make demo` walks one prod intent through the workflow in the terminal.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test check lint install bench clean

run: install
	$(BIN)/agentops serve --dev-keys

demo: install
	$(BIN)/agentops demo

test: install
	$(BIN)/python -m pytest -n auto

# The edit loop: format and lint, types, import layers, then the tests that need no server.
check: lint
	$(BIN)/python -m pytest -q -n auto $(CHECK_TESTS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

CHECK_TESTS := tests/test_guardrail.py tests/test_plan.py tests/test_approval.py tests/test_deploy.py tests/test_retrieve.py \
	tests/test_audit.py tests/test_plan_index.py tests/test_lifecycle.py tests/test_watch.py

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

bench: install
	$(BIN)/python bench/bench_workflow.py --runs 50
	$(BIN)/python bench/bench_retrieval.py
	$(BIN)/python bench/bench_intent.py
	$(BIN)/python bench/bench_http.py --seconds 10 --sustain 60
	$(BIN)/python bench/bench_floor.py --seconds 10

clean:
	rm -rf $(VENV) .agentops .pytest_cache
