# The two commands a newcomer needs: `make demo` and `make test`. Both work on a machine with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-fast lint typecheck bench up install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/asora demo

up: $(STAMP)
	$(BIN)/asora up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy api worker shared tests

test: lint typecheck
	$(BIN)/python -m pytest -p no:cacheprovider

# Everything that needs no worker and no stack of processes (real PostgreSQL and Redis, the API in process).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -m "not pipeline and not own_stack"

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_fifo_engine
	$(BIN)/python -m tests.benchmarks.bench_run_end_to_end
	$(BIN)/python -m tests.benchmarks.bench_reports

clean:
	rm -rf $(VENV) .asora .mypy_cache .ruff_cache .pytest_cache
