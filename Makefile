# Deckhand — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo lint test serve clean

setup: $(VENV)/.installed
	@scripts/install-system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

demo: setup
	@scripts/demo

# The lint gate: ruff's rule set (pyproject.toml) and mypy on core, store (with artifacts) and engine, both at zero.
# The layer rules are a test (tests/unit/test_layers.py), so they run with the suite.
lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Two processes, each taking whole test files (a file's fixtures stay in one process):
# much of the suite waits on machines and servers, so two halve the wall time.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile

serve: setup
	$(BIN)/deckhand serve

clean:
	rm -rf $(VENV) var .pytest_cache
