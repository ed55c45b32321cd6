# The two commands a newcomer runs: `make demo` and `make test`. Everything goes in .venv/ in this folder.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
DAGSTER_HOME ?= $(CURDIR)/.dagster
# generation requests in flight at once (the `fal` pool); match your fal account's concurrency limit
FAL_POOL ?= 2

.PHONY: demo test install dev pools lint bench bench-backfill lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shotline needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The fal pool's limit lives in the instance database; set once per value (a limit changed in the UI stays).
$(DAGSTER_HOME)/.pool-fal-$(FAL_POOL): | $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) $(VENV)/bin/dagster instance concurrency set fal $(FAL_POOL)
	rm -f $(DAGSTER_HOME)/.pool-fal-* && touch $@

pools: $(STAMP) $(DAGSTER_HOME)/dagster.yaml  ## set the fal pool limit now: make pools FAL_POOL=8
	DAGSTER_HOME=$(DAGSTER_HOME) $(VENV)/bin/dagster instance concurrency set fal $(FAL_POOL)
	rm -f $(DAGSTER_HOME)/.pool-fal-* && touch $(DAGSTER_HOME)/.pool-fal-$(FAL_POOL)

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(DAGSTER_HOME)/.pool-fal-$(FAL_POOL)  ## run the clip job on every demo shot, then the reel
	DAGSTER_HOME=$(DAGSTER_HOME) $(PY) -m pipelines.demo

test: $(STAMP)  ## the whole test suite
	$(PY) -m pytest -q

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(DAGSTER_HOME)/.pool-fal-$(FAL_POOL)  ## the Dagster UI and daemon on http://127.0.0.1:3000
	DAGSTER_HOME=$(DAGSTER_HOME) $(VENV)/bin/dagster dev -w workspace.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check .

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
