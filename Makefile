# Every target sets up what it needs on a fresh machine (Python 3.11, no Docker, no services):
# a virtualenv with the project and its embedded PostgreSQL/Redis wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv services services-down test test-fast demo bench chaos lint lock hooks clean docs

help:
	@echo "make demo   - run the main job end to end (services, simulator, worker, beat, Flower)"
	@echo "make test   - run the whole test suite"
	@echo "make bench  - throughput/latency benchmarks"
	@echo "make chaos  - fault-injection run"
	@echo "make services / services-down - embedded PostgreSQL + Redis for development"
	@echo "make docs   - build the documentation site into site/ (mkdocs-material)"
	@echo "make lock   - regenerate requirements.lock (the Dockerfile's pinned, hashed install)"
	@echo "make hooks  - install the git pre-commit hook (ruff, from .pre-commit-config.yaml)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

services: $(STAMP)
	$(BIN)/einvoice dev services up

services-down: $(STAMP)
	$(BIN)/einvoice dev services down

# pytest's exit status 5 means "no tests ran": that is a failure here, not a pass.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(BIN)/einvoice demo $(DEMO_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

chaos: $(STAMP)
	$(BIN)/python scripts/chaos.py $(CHAOS_ARGS)

# --strict: a broken link or a page missing from the nav fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check einvoice workers tests scripts migrations celeryconfig.py
	$(BIN)/mypy

# The production dependencies of pyproject.toml (no extras) and the build backend, pinned with
# hashes. Resolved against PyPI alone: a machine's pip settings (local wheel folders, mirrors,
# constraints) must not leak into the lock. Versions already in the lock are kept while they
# still fit; `make lock LOCK_ARGS=--upgrade` moves everything to the newest.
lock: $(STAMP)
	env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
	    PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
	    --all-build-deps --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) \
	    --output-file requirements.lock pyproject.toml

hooks: $(STAMP)
	$(BIN)/pre-commit install

clean:
	-$(BIN)/einvoice dev services down --purge
	rm -rf $(VENV) .pytest_cache
