# Frontdesk. `make run` starts the bot locally; `make test` runs the whole suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE_DIR := tests/js
PLAYGROUND_PORT ?= 56150
PORT ?= 3978

.PHONY: run test lint format playground package clean help bench bench-data bench-profile

help:
	@echo "make run         start the bot in local mode (SQLite, demo rooms) on 127.0.0.1:$(PORT)"
	@echo "make playground  open Microsoft 365 Agents Playground against the running bot"
	@echo "make test        install everything and run lint plus the whole test suite"
	@echo "make lint        ruff and mypy"
	@echo "make package     build and validate appPackage.zip, the Teams app (needs MICROSOFT_APP_ID, PUBLIC_HOSTNAME)"
	@echo "make bench       benchmark against a stock botbuilder echo bot (BENCH_QUICK=1 for a short run)"
	@echo "make bench-data  generate the 1,000,000-row benchmark database once (bench/data/, PostgreSQL)"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the card renderer and Agents Playground tests"; exit 1; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

venv: $(VENV)/.installed
node: $(NODE_DIR)/node_modules/.installed

run: $(VENV)/.installed
	$(PY) app.py

playground: $(NODE_DIR)/node_modules/.installed
	@echo "Agents Playground on http://127.0.0.1:$(PLAYGROUND_PORT) -> bot at http://127.0.0.1:$(PORT)/api/messages"
	NODE_OPTIONS="--require $(CURDIR)/$(NODE_DIR)/bind-loopback.cjs" \
	  $(NODE_DIR)/node_modules/.bin/agentsplayground -e http://127.0.0.1:$(PORT)/api/messages -c msteams \
	  -p $(PLAYGROUND_PORT) --service-url http://127.0.0.1:$(PLAYGROUND_PORT)/_connector --disable-telemetry

# The Teams app package; the manifest's JSON schema comes from npm @microsoft/app-manifest.
package: $(VENV)/.installed node
	$(PY) -m manifest.build --output appPackage.zip

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(VENV)/.installed
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: $(VENV)/.installed
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory node; else echo "npm not found: Node-based tests will be skipped"; fi
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (not part of `make test`): results in bench/results/latest.json and latest.md.
bench: $(VENV)/.installed
	@test -f bench/data/generated.json || $(MAKE) --no-print-directory bench-data
	$(PY) -m bench.run $(BENCH_ARGS)

bench-data: $(VENV)/.installed
	$(PY) -m bench.bigdb generate

# Where the bot's CPU goes under load (needs py-spy: $(PY) -m pip install py-spy).
bench-profile: $(VENV)/.installed
	$(PY) -m bench.profile $(or $(SCENARIO),message)
