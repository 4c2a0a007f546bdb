# Privacy Lifecycle — developer entry points.  See README.md.
#
#   make test    install (once), lint (ruff) and run the test suite   PYTEST_ARGS="-k foo -x"
#   make format  ruff format + ruff check --fix
#   make demo    embedded defaults + demo world + every DAG once, then a summary
#   make up      Airflow UI (api-server, scheduler, dag-processor, triggerer)
#   make cluster the production shape on this machine: PostgreSQL, Celery workers on
#                Redis, the FAB auth manager and its roles; the demo world seeded
#   make down    stop everything `make demo` / `make up` started
#   make clean   make down, then remove var/ (databases, mails, logs, Airflow home)
#
# Ports (override in the environment): LIFECYCLE_S3_PORT=5055,
# LIFECYCLE_SMTP_PORT=1025, LIFECYCLE_API_PORT=8080.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PY := $(VENV)/bin/python
# the interpreter that creates the venv: python3.11, else python3
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
STAMP := $(VENV)/.requirements.stamp
DEVENV := $(PY) -m lifecycle.devenv
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (each module runs whole on one worker; 0: no workers)
TEST_WORKERS ?= 2
# where devenv keeps its state (LIFECYCLE_VAR_DIR overrides, as in devenv itself)
VAR := $(or $(LIFECYCLE_VAR_DIR),$(CURDIR)/var)

.PHONY: help venv test lint format demo up cluster down clean distclean status env migrate

help:
	@sed -n '3,13p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

# --- the virtualenv ---------------------------------------------------------------
# Reinstalls only when requirements.txt or pyproject.toml changes (the stamp is newer otherwise):
# the pinned lock, then this project in editable mode (include/ on the path, the plugin's entry point).
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "need python3.11 (or python3) on PATH" >&2; exit 1; fi
	@if [ ! -x "$(PY)" ]; then \
	    echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version 2>&1))"; \
	    $(PYTHON) -m venv "$(VENV)"; \
	fi
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt
	@# an older venv put include/ on the path with a .pth file of its own: the editable install does that now
	@rm -f "$$($(PY) -c 'import site; print(site.getsitepackages()[0])')/privacy_lifecycle.pth"
	$(PY) -m pip install --disable-pip-version-check --progress-bar off --no-deps -e .
	@$(PY) -c 'import lifecycle' || { echo "lifecycle is not importable from $(VENV)" >&2; exit 1; }
	@touch "$@"

# --- tests ---------------------------------------------------------------------------
test: venv lint
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# ruff (pinned in requirements.txt; settings in pyproject.toml): `make format` rewrites
lint: venv
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/ruff check --quiet .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# --- embedded defaults ------------------------------------------------------------------
migrate: venv
	@mkdir -p "$(VAR)/log"
	@echo "airflow db migrate (log: $(VAR)/log/db-migrate.log)"
	@$(DEVENV) run -- airflow db migrate > "$(VAR)/log/db-migrate.log" 2>&1 || { \
	    tail -n 30 "$(VAR)/log/db-migrate.log" >&2; echo "airflow db migrate failed" >&2; exit 1; }
	@$(DEVENV) run -- $(PY) -m lifecycle pools > "$(VAR)/pools.json"
	@$(DEVENV) run -- airflow pools import "$(VAR)/pools.json" >> "$(VAR)/log/db-migrate.log" 2>&1 || { \
	    tail -n 30 "$(VAR)/log/db-migrate.log" >&2; echo "airflow pools import failed" >&2; exit 1; }
	@echo "pools: $$(grep -c '"slots"' "$(VAR)/pools.json") (lifecycle_<system>, see $(VAR)/pools.json)"

demo: venv
	@$(DEVENV) start
	@$(MAKE) migrate
	@echo "a fresh demo world: removing the demo's app database, state store, reports and mails under $(VAR)"
	@rm -rf "$(VAR)/app.db" "$(VAR)/state.db" "$(VAR)/reports" "$(VAR)/evidence" && mkdir -p "$(VAR)/mail" && find "$(VAR)/mail" -name '*.eml' -delete
	$(DEVENV) run -- $(PY) -m lifecycle.demo seed --reset
	$(DEVENV) run -- $(PY) -m lifecycle.demo run
	@echo
	@echo "== where things are"
	@echo "  mails (one .eml each):  $(VAR)/mail/  ($$(ls "$(VAR)/mail" 2>/dev/null | grep -c '\.eml$$' || true) so far)"
	@echo "  reports:                $(VAR)/reports/  (retention/, cancellation/, sharing/, incidents/)"
	@echo "  erasure certificates:   $(VAR)/reports/certificates/<batch>/root.json  (one signed Merkle root per batch: $$(ls "$(VAR)/reports/certificates" 2>/dev/null | wc -l) so far)"
	@echo "  ledger checkpoints:     $(VAR)/evidence/checkpoints/  (signed; public keys: $(VAR)/reports/public-keys.json)"
	@echo "  app database (SQLite):  $(VAR)/app.db"
	@echo "  ledger and registers:   $(VAR)/state.db"
	@echo "  S3 (moto):              http://127.0.0.1:$${LIFECYCLE_S3_PORT:-5055}  (key/secret: testing/testing)"
	@echo "  Airflow home and logs:  $(VAR)/airflow/   service logs: $(VAR)/log/"
	@echo "  shell with the same settings:  eval \"\$$($(DEVENV) env)\""
	@echo "  the S3 endpoint and mail sink keep running: make down stops them, make up adds the UI"
	@echo
	@echo "== checked with the public key alone"
	$(DEVENV) run -- $(PY) -m lifecycle ledger verify --checkpoints
	$(DEVENV) run -- $(PY) -m lifecycle evidence verify --keys "$(VAR)/reports/public-keys.json" \
	    $$(ls "$(VAR)"/evidence/checkpoints/*.json 2>/dev/null | tail -n 1) $$(ls "$(VAR)"/reports/certificates/*/root.json 2>/dev/null | head -n 1)

up: venv
	@$(DEVENV) start
	@$(MAKE) migrate
	@$(DEVENV) start --airflow
	@echo "  logs: $(VAR)/log/   stop with: make down"

cluster: venv
	@LIFECYCLE_PROFILE=cluster $(DEVENV) start --airflow
	@LIFECYCLE_PROFILE=cluster $(DEVENV) run -- $(PY) -m lifecycle pools > "$(VAR)/pools.json"
	@LIFECYCLE_PROFILE=cluster $(DEVENV) run -- airflow pools import "$(VAR)/pools.json" >> "$(VAR)/log/db-migrate.log" 2>&1
	LIFECYCLE_PROFILE=cluster $(DEVENV) run -- $(PY) -m lifecycle.demo seed --reset
	@echo "  trigger DAGs in the UI as engineer (all lifecycle DAGs) or responder (incident_notification);"
	@echo "  auditor reads everything.  Logs: $(VAR)/log/   stop with: make down"

down:
	@if [ -x "$(PY)" ]; then $(DEVENV) stop; else echo "nothing running (no $(VENV))"; fi

status:
	@if [ -x "$(PY)" ]; then $(DEVENV) status; else echo "nothing running (no $(VENV))"; fi

env: venv
	@$(DEVENV) env

clean: down
	rm -rf "$(CURDIR)/var"

distclean: clean
	rm -rf "$(VENV)"
