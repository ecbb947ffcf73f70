# Every target creates the virtualenv and installs what it needs; a fresh clone needs nothing else.
PYTHON ?= python3.11
VENV ?= .venv
# CPU build by default. GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.flywheel-installed
PYTEST_ARGS ?=

.PHONY: install test test-unit test-e2e lint format demo dev up down status clean bench checkov

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required: set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]" --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

# checkov (the deploy kit's IaC scan, tests/unit/deploy/test_checkov.py) in a virtualenv of its own: its pinned
# requirements would downgrade packages of $(VENV). Installed once; the stamp makes later runs a no-op.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

test: install checkov
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# No server, under a minute: the unit tests not marked slow (`make test` runs those too).
test-unit: install checkov
	$(BIN)/python -m pytest -q -ra tests/unit -m "not slow" $(PYTEST_ARGS)

# The Dagster UI in headless Chromium (tests/e2e, a few minutes; not in `make test`). Installs Debian's chromium
# and chromedriver when missing (needs root; otherwise: sudo apt-get install -y chromium chromium-driver, or set
# CHROMIUM / CHROMEDRIVER to your own binaries). Screenshots and page sources go to test-output/e2e/.
test-e2e: install
	@if ! { command -v chromium || [ -n "$$CHROMIUM" ]; } >/dev/null || ! { command -v chromedriver || [ -n "$$CHROMEDRIVER" ]; } >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
		else echo "chromium and chromedriver are missing: run 'sudo apt-get install -y chromium chromium-driver' (Debian/Ubuntu), or set CHROMIUM and CHROMEDRIVER"; exit 1; fi; \
	fi
	FLYWHEEL_E2E=1 $(BIN)/python -m pytest -q -ra tests/e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Side-by-side measurements; each writes benchmarks/results/<name>.json and .md (takes several minutes).
bench: install
	$(BIN)/python -m pip install -q -e ".[bench]" --config-settings editable_mode=compat
	for b in produce lakefs ingest history stack training optimize drift serving online; do $(BIN)/python -m benchmarks.$${b}_bench || exit 1; done
	$(BIN)/python -m benchmarks.results_md

demo: install
	$(BIN)/python -m pipelines.devstack.demo

dev: install
	$(BIN)/flywheel up --with-dagster
	@echo "Dagster UI and the stack are running; 'make down' stops them."

up: install
	$(BIN)/flywheel up

down: install
	$(BIN)/flywheel down

status: install
	$(BIN)/flywheel status

clean:
	-$(BIN)/flywheel down 2>/dev/null
	rm -rf .flywheel
