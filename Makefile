# Two commands: `make run` starts AuthBridge on SQLite, `make test` runs every check and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check install clean bench image

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

bench: $(STAMP)
	$(BIN)/python benchmarks/proxy.py --write docs/performance.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
