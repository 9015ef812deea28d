# Two commands matter: `make demo` and `make test`. Both set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench crash crash-postgres check clean setup

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

# the same 100 kills with the ledger and the catalog in a fresh PostgreSQL database (127.0.0.1:5432,
# or ICEFLOE_BENCH_PG=postgresql://user@host:port), plus one connection drop mid-run
crash-postgres: $(STAMP)
	$(BIN)/python -m bench.crash --trials 100 --postgres

clean:
	rm -rf $(VENV) .pytest_cache .bench
