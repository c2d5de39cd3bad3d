# jobrunner: every entry point a person or CI needs. The first target that needs the virtual
# environment creates it, so `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: help install test lint typecheck unit demo bench lab lab-run clean

help:
	@echo "make demo   - start an embedded Redis and a worker, drive a burst, watch it drain"
	@echo "make test   - set up .venv, run ruff, mypy and every test"
	@echo "make bench  - run the benchmarks in full and print the figures"
	@echo "make lab    - open JupyterLab on notebooks/ (make lab-run: re-run them all in full)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy jobrunner

unit: $(STAMP)
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

# The dashboard's browser tests drive Debian's chromium; installed once, skipped when present.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: lint typecheck $(STAMP) $(CHROMIUM)
	$(PY) -m pytest --benchmark-disable $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m jobrunner.dev.demo

bench: $(STAMP)
	@command -v wrk >/dev/null || apt-get install -y -q wrk || echo "wrk could not be installed: its API figures will be skipped"
	$(PY) -m pytest bench --benchmark-only --benchmark-storage=results/benchmarks --benchmark-autosave --benchmark-json=results/bench-pytest.json --benchmark-columns=mean,stddev,ops,rounds -p no:cacheprovider -q
	$(PY) -m bench.report results/bench-pytest.json $(if $(COMPARE),--compare $(COMPARE))
	$(PY) -m bench.loadgen_goals
	$(PY) -m bench.throughput
	$(PY) -m bench.api_throughput
	$(PY) -m bench.compare_queues

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

lab-run: $(STAMP)
	$(PY) -m jobrunner.lab.build --execute

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks
