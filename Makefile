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

# Two xdist workers, each taking a whole module at a time (module fixtures start processes
# once; a serial run leaves the second core mostly idle). `make pytest PYTEST_ARGS=` runs serially.
PYTEST_ARGS ?= -n 2 --dist loadfile
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
