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
	$(PY) -m pytest -q -n auto

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP_DEV)
	$(PY) -m tests.bench

# build/sam.json + build/deployment.zip of one stage (dev, or `make package STAGE=<tenant>`); see docs/deploy.md.
# The template does not depend on the region; Chalice only insists that one is configured.
package: $(STAMP_DEV)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-$${AWS_REGION:-eu-west-1}} \
	$(VENV)/bin/chalice package --stage $(or $(STAGE),dev) --merge-template infra/resources.json build/

clean:
	rm -rf $(VENV) build local-data
