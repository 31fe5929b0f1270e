# Floe: the two set-up commands are `make run` (local stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_LOCAL := $(VENV)/.installed-local
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint typecheck bench package clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_LOCAL): requirements.txt requirements-local.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-local.txt
	touch $@

$(STAMP_DEV): requirements.txt requirements-local.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(STAMP_LOCAL)

run: $(STAMP_LOCAL)
	$(PY) -m chalicelib.local

test: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP_DEV)
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) build local-data
