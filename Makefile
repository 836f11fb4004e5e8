# Deckhand — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test serve clean

setup: $(VENV)/.installed
	@scripts/install-system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

demo: setup
	@scripts/demo

test: setup
	$(BIN)/pytest -q

serve: setup
	$(BIN)/deckhand serve

clean:
	rm -rf $(VENV) var .pytest_cache
