# One command set for people and CI (DESIGN.md). Only python3 (3.11+) and make are assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?=
PORT ?=
MARKETPLACES ?= onlinesim,smshub,grizzly,herosms
PYTEST_ARGS ?=
JOBS ?= 2

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

# Two phases: everything but the tests marked `serial` on JOBS processes (pytest-xdist; each
# test has its own database, files and ports; the end-to-end ones one at a time, conftest.py),
# then the serial ones alone (they restart the shared PostgreSQL). pytest exits 5 when it collected nothing; that fails the first phase,
# and the second only tolerates it (PYTEST_ARGS may name files without a serial test).
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
