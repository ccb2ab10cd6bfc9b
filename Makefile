# One command set for people and CI (DESIGN.md). Only python3 (3.11+) and make are assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?=
PORT ?=
MARKETPLACES ?= onlinesim,smshub,grizzly,herosms
PYTEST_ARGS ?=

.PHONY: demo test check bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/simgate demo --marketplaces $(MARKETPLACES) $(if $(DURATION),--duration $(DURATION),) $(if $(PORT),--port $(PORT),)

# pytest exits 5 when it collected nothing; that must not pass as green, and it doesn't:
# any non-zero status fails the target.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
