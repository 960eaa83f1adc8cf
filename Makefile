# Everything runs from a project-local virtualenv; `make sync` and `make test` create it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install sync demo test lint bench dashboard clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# An editable install leaves the modules uncompiled; where PYTHONDONTWRITEBYTECODE is set every
	@# command would compile them again. Stale files are ignored by Python, never used.
	$(BIN)/python -m compileall -q tracker dashboard > /dev/null
	touch $@

install: $(BIN)/.installed

## Set up and pull every MS trial from ClinicalTrials.gov and the EU's CTIS into ./data/trials.db (SQLite).
sync: install
	$(BIN)/tracker sync --registry all

## No network needed: load a small real sample shipped with the package into ./data/demo.db and open the dashboard.
demo: install
	$(BIN)/tracker --database-url sqlite:///data/demo.db demo

## Run the whole test suite (SQLite always; PostgreSQL and chromium tests when available).
test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Benchmarks against the 3,616-study snapshot (DATA=PATH to use another copy); QUICK=1 for a short run.
DATA ?= ../shared/data/ctgov_ms_2025-09-25.jsonl.gz
bench: install
	@test -f "$(DATA)" || { echo "make bench needs the snapshot ctgov_ms_2025-09-25.jsonl.gz at $(DATA) (or DATA=PATH)"; exit 2; }
	$(BIN)/python benchmarks/bench_commands.py --data "$(DATA)" $(if $(QUICK),--quick,)
	$(BIN)/python benchmarks/bench_sync.py --data "$(DATA)"
	$(BIN)/python benchmarks/bench_classify.py --data "$(DATA)"
	$(BIN)/python benchmarks/bench_dashboard.py --data "$(DATA)"
	$(BIN)/python benchmarks/bench_export_digest.py --data "$(DATA)"

dashboard: install
	$(BIN)/tracker dashboard

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
