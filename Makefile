# `make demo` and `make test` work on a fresh clone with only python3, pip and make:
# they create .venv and install the pinned versions in constraints.txt themselves.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: install demo test lint typecheck unit e2e bench chaos clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install -q uv
	$(UV) pip install -q --python $(PY) --compile-bytecode -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m prefect_nanobanana.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check prefect_nanobanana tests benchmarks
	$(VENV)/bin/ruff format --check prefect_nanobanana tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q -m "not e2e"

e2e: $(STAMP)
	$(VENV)/bin/pytest -q -m e2e

test: lint typecheck $(STAMP)
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run.py

chaos: $(STAMP)
	$(PY) benchmarks/chaos.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
