# Every target builds the project-local virtualenv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Quiet installs: no pip version nag, no warnings in `make demo` output.
PIP := $(BIN)/python -m pip install -qq --disable-pip-version-check

.PHONY: demo test lint sandbox bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python samples/demo.py

# Bytecode cached even where the environment turns it off (PYTHONDONTWRITEBYTECODE): each
# worker and each CLI subprocess would compile batchtag and rewrite the tests again.
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 2  # the machines have 2 cores

lint: $(STAMP)
	$(BIN)/ruff check batchtag tests benchmarks samples
	$(BIN)/ruff format --check batchtag tests benchmarks samples

sandbox: $(STAMP)
	$(BIN)/batchtag sandbox --port 8080

bench: $(STAMP)  # BENCH_QUICK=1: small sizes; `python -m benchmarks summary`: the saved table
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache .hypothesis
