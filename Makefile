# Two commands matter: `make demo` and `make test`. Both set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench crash check clean setup

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/icefloe demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/mypy src/icefloe --ignore-missing-imports

bench: $(STAMP)
	$(BIN)/python -m bench

crash: $(STAMP)
	$(BIN)/python -m bench.crash --trials 100

clean:
	rm -rf $(VENV) .pytest_cache .bench
