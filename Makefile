# Floe: the two set-up commands are `make run` (local stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_LOCAL := $(VENV)/.installed-local
STAMP_DEV := $(VENV)/.installed-dev

# The tenant `make package` and `make deploy` work on: tenants/<TENANT>.toml (STAGE= is the older name).
TENANT ?= $(or $(STAGE),dev)
ifeq ($(strip $(TENANT)),)
$(error TENANT is empty: name a file of tenants/, e.g. make package TENANT=dev)
endif
BUILD := build/$(TENANT)

.PHONY: run test lint typecheck bench tenants package deploy clean

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

# Every tenant's stage and policy files in .chalice/, from tenants/*.toml and the dev stage (see docs/deploy.md).
tenants: $(STAMP_DEV)
	$(PY) -m chalicelib.tenants generate

# build/<tenant>/sam.json + deployment.zip: the tenant's stage is generated first. Needs no AWS credentials;
# the template does not depend on the region, Chalice only insists that one is configured.
package: $(STAMP_DEV)
	$(PY) -m chalicelib.tenants generate $(TENANT)
	rm -rf $(BUILD)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-$${AWS_REGION:-eu-west-1}} \
	$(VENV)/bin/chalice package --stage $(TENANT) --merge-template infra/resources.json $(BUILD)

# Stack floe-<tenant> with the AWS CLI; stops first, with what to do, without credentials or an artifact bucket.
deploy: $(STAMP_DEV)
	$(PY) -m chalicelib.tenants deploy $(TENANT) --check
	$(MAKE) --no-print-directory package TENANT=$(TENANT)
	$(PY) -m chalicelib.tenants deploy $(TENANT) --template $(BUILD)/sam.json

clean:
	rm -rf $(VENV) build local-data
