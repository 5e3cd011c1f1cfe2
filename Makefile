# Two commands: `make run` starts AuthBridge on SQLite, `make test` runs every check and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check install clean bench bench-refresh bench-refresh-layers bench-scale bench-variants image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/authbridge run

check: $(STAMP)
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest --cov

# The container image (Dockerfile); needs a Docker daemon. Without one, tests/test_container.py runs the same steps.
image:
	@docker info >/dev/null 2>&1 || { echo "make image needs a running Docker daemon"; exit 1; }
	docker build -t authbridge:$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) -t authbridge:latest .

# Proxy and token endpoint vs a reference proxy (pinned, 3 passes): ends with `target ...` lines.
bench: $(STAMP)
	$(BIN)/python benchmarks/proxy.py --write docs/performance.md

# 10,000 tokens due at once on PostgreSQL (AUTHBRIDGE_BENCH_POSTGRES_URL, default the local server).
BENCH_PG ?= $(or $(AUTHBRIDGE_BENCH_POSTGRES_URL),postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)
bench-refresh: $(STAMP)
	$(BIN)/python benchmarks/refresh_storm.py --postgres $(BENCH_PG)

# The storm's floor, then the product's claim, store and token call swapped in one at a time: the margin two cores leave.
bench-refresh-layers: $(STAMP)
	$(BIN)/python benchmarks/refresh_floor.py --table --postgres $(BENCH_PG)

# GET /connections over 100,000 connections on PostgreSQL, and the refresher scan's plan.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py --postgres $(BENCH_PG)

bench-variants: $(STAMP)
	$(BIN)/python benchmarks/proxy_variants.py --signed

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
