# The two commands a newcomer needs: `make demo` and `make test`. Both work on a machine with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-fast lint typecheck bench soak up install clean

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

# Everything that needs no worker and no stack of processes (real PostgreSQL and Redis, the API in process), on
# every core, with the smaller search budgets of tests/tier.py. Schemathesis' conformance tests run on their own
# after it: their per-operation items do not survive pytest-xdist's distribution. Bytecode is written even where
# the environment says PYTHONDONTWRITEBYTECODE: otherwise each of the three processes compiles the project and
# rewrites every test module's asserts anew (about 3 s of CPU each, measured; __pycache__ is ignored by git).
CONFORMANCE := tests/api/test_openapi_conformance.py
FAST_ENV := ASORA_TEST_TIER=fast PYTHONDONTWRITEBYTECODE=
test-fast: $(STAMP)
	$(FAST_ENV) $(BIN)/python -m pytest -p no:cacheprovider -m "not pipeline and not own_stack" \
		-n auto --dist loadfile --ignore=$(CONFORMANCE)
	$(FAST_ENV) $(BIN)/python -m pytest -p no:cacheprovider $(CONFORMANCE)

# The quick sizes where the full figure takes more than ~10 minutes here; tests/benchmarks/README.md has the
# full commands (bench_pipeline --jobs 10000, bench_api_memory --requests 100000).
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_fifo_engine
	$(BIN)/python -m tests.benchmarks.bench_run_end_to_end
	$(BIN)/python -m tests.benchmarks.bench_reports
	$(BIN)/python -m tests.benchmarks.bench_repost
	@command -v wrk >/dev/null || { echo "wrk is needed for the HTTP benchmarks: apt-get install -y wrk"; exit 1; }
	$(BIN)/python -m tests.benchmarks.bench_intake
	$(BIN)/python -m tests.benchmarks.bench_http_floor
	$(BIN)/python -m tests.benchmarks.bench_pipeline --jobs 3000
	$(BIN)/python -m tests.benchmarks.bench_job_cost
	$(BIN)/python -m tests.benchmarks.bench_large_run_ratio
	$(BIN)/python -m tests.benchmarks.bench_api_memory --requests 30000 --every 3000 --from-request 9000

# The fault scenarios (tests/faults/) SOAK_N times over (default 20), each pass in a fresh database with fresh
# processes; prints the table of scenario, invariant, runs and violations, and writes bench-results/soak.json.
SOAK_N ?= 20
# ...then schemathesis over the whole schema as two tenants and the operator (tests/hostile/walk.py).
HOSTILE_REQUESTS ?= 5000
soak: $(STAMP)
	$(BIN)/python -m tests.faults.soak --runs $(SOAK_N)
	$(BIN)/python -m tests.hostile.walk --requests $(HOSTILE_REQUESTS)

clean:
	rm -rf $(VENV) .asora .mypy_cache .ruff_cache .pytest_cache
