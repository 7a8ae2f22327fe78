# Everything needs only python3 on the machine: the first target that runs makes the venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HUB_ADMIN_TOKEN ?= demo-admin-token
export HUB_LOG_JSON ?= false

.PHONY: run test lint fmt typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: set up and start the whole demo system on embedded defaults (SQLite, in-process back-ends)
run: $(STAMP)
	$(BIN)/hub migrate
	$(BIN)/hub dev

## test: ruff, ruff format --check, mypy, and the whole test suite (embedded and real back-ends)
test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Serial by default. `make pytest PYTEST_ARGS="-n 2 --dist loadfile"` runs two xdist workers,
# a module each (a serial run leaves the second core mostly idle), but on 2026-12-03 one such
# run hung in the RabbitMQ bus tests (test_backend_events) for an hour, cause not yet found.
PYTEST_ARGS ?=
pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the proxy benchmark (wrk and nginx are installed if missing); figures go in README
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
