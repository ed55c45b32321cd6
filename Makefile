# The two commands a newcomer runs: `make demo` and `make test`. Everything goes in .venv/ in this folder.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
DAGSTER_HOME ?= $(CURDIR)/.dagster
# generation requests in flight at once (the `fal` pool); match your fal account's concurrency limit
FAL_POOL ?= 2

.PHONY: demo test unit install postgres-server chromium dev pools lint bench bench-backfill lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shotline needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.dev.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.dev.yaml $@

# The fal pool's limit lives in the instance database; set once per value (a limit changed in the UI stays).
$(DAGSTER_HOME)/.pool-fal-$(FAL_POOL): | $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) $(VENV)/bin/dagster instance concurrency set fal $(FAL_POOL)
	rm -f $(DAGSTER_HOME)/.pool-fal-* && touch $@

pools: $(STAMP) $(DAGSTER_HOME)/dagster.yaml  ## set the fal pool limit now: make pools FAL_POOL=8
	DAGSTER_HOME=$(DAGSTER_HOME) $(VENV)/bin/dagster instance concurrency set fal $(FAL_POOL)
	rm -f $(DAGSTER_HOME)/.pool-fal-* && touch $(DAGSTER_HOME)/.pool-fal-$(FAL_POOL)

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(DAGSTER_HOME)/.pool-fal-$(FAL_POOL)  ## run the clip job on every demo shot, then the reel
	DAGSTER_HOME=$(DAGSTER_HOME) $(PY) -m pipelines.demo

test: $(STAMP) postgres-server chromium  ## lint, format, types, then the unit and the integration tests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q tests/unit
	$(PY) -m pytest -q tests/integration

unit: $(STAMP)  ## the unit tests alone: no servers, no ffmpeg, seconds
	$(PY) -m pytest -q tests/unit

# tests/integration/test_postgres.py runs Dagster and the ledger on a real PostgreSQL server (tests/postgres_server.py starts
# it on loopback), so `make test` installs Debian's server package when no initdb is found. No stamp: finding
# initdb is the check, and it is instant once the package is there.
PG_APT := apt-get install -y --no-install-recommends postgresql
postgres-server:
	@has_initdb() { \
	  for f in /usr/lib/postgresql/*/bin/initdb; do [ -x "$$f" ] && return 0; done; \
	  command -v initdb >/dev/null 2>&1; \
	}; \
	has_initdb && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make test: no PostgreSQL server found (initdb) and no apt-get to install one: install PostgreSQL's server programs" >&2; \
	  exit 1; \
	fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "make test: no PostgreSQL server found; as root, run: $(PG_APT)" >&2; exit 1; fi; \
	echo "make test: installing Debian's postgresql package ($${sudo:+sudo }$(PG_APT)): tests/integration/test_postgres.py runs a real PostgreSQL server and none is installed"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive $(PG_APT) \
	  || { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive $(PG_APT); } \
	  || { echo "make test: could not install postgresql with apt-get (see above)" >&2; exit 1; }; \
	has_initdb || { echo "make test: postgresql is installed but no initdb is under /usr/lib/postgresql/*/bin or on PATH" >&2; exit 1; }

# tests/integration/test_ui_browser.py drives the Dagster UI in Debian's Chromium through Playwright (never Playwright's own
# browser download), so `make test` installs the chromium package when no chromium is on PATH; like
# postgres-server, finding the program is the check.
CHROMIUM_APT := apt-get install -y --no-install-recommends chromium
chromium:
	@command -v chromium >/dev/null 2>&1 && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make test: no chromium found and no apt-get to install one: install Chromium (the program named chromium)" >&2; \
	  exit 1; \
	fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "make test: no chromium found; as root, run: $(CHROMIUM_APT)" >&2; exit 1; fi; \
	echo "make test: installing Debian's chromium package ($${sudo:+sudo }$(CHROMIUM_APT)): tests/integration/test_ui_browser.py drives the Dagster UI in it"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive $(CHROMIUM_APT) >/dev/null \
	  || { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null && $$sudo env DEBIAN_FRONTEND=noninteractive $(CHROMIUM_APT) >/dev/null; } \
	  || { echo "make test: could not install chromium with apt-get (see above)" >&2; exit 1; }; \
	command -v chromium >/dev/null 2>&1 || { echo "make test: the chromium package is installed but no chromium is on PATH" >&2; exit 1; }

# `dagster dev` is the command that reads workspace.yaml (its successor, `dg dev`, does not): its notice that it
# is superseded is the one warning filtered here.
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(DAGSTER_HOME)/.pool-fal-$(FAL_POOL)  ## the Dagster UI and daemon on http://127.0.0.1:3000
	DAGSTER_HOME=$(DAGSTER_HOME) $(PY) -W 'ignore:Function `dev_command` is superseded' -m dagster dev -w workspace.yaml

lint: $(STAMP)  ## ruff and mypy, as `make test` runs them
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/postprocess.py

# a UI backfill of N shots against the fake fal server (L s per clip, pool C); BENCH_ARGS="--shots 16 --latency 10"
bench-backfill: $(STAMP)
	$(PY) bench/backfill.py $(BENCH_ARGS)

lock:  ## re-pin every dependency after changing pyproject.toml
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e ".[test]"
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf .shotline .dagster
