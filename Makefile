# jobrunner: every entry point a person or CI needs. Each target installs what it needs into
# .venv, and nothing more: `make demo` the demo extra, `make lab` the lab, `make test` everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888
LAB_OPTIONS ?=

# A stamp per extra; a larger install (dev > lab > demo) serves the smaller targets too.
stamp = $(firstword $(wildcard $(foreach e,$(1),$(VENV)/.installed-$(e))) $(VENV)/.installed-$(lastword $(1)))
DEV := $(VENV)/.installed-dev
LAB := $(call stamp,dev lab)
DEMO := $(call stamp,dev lab demo)

.PHONY: help install test bench-ci lint typecheck unit demo bench lab lab-run clean

help:
	@echo "make demo   - start an embedded Redis, the API and workers, drive a burst, watch it drain"
	@echo "make test   - set up .venv, run ruff, mypy and every test, then make bench-ci"
	@echo "make bench-ci - time the benchmarks at small sizes and gate them against bench/baselines.json"
	@echo "make bench  - run the benchmarks in full and print the figures"
	@echo "make lab    - open JupyterLab on notebooks/ (LAB_IP=0.0.0.0 on a remote host; make lab-run: re-run them all)"

# setup.py generates the gRPC modules from proto/ at install: a changed .proto reinstalls
$(VENV)/.installed-%: pyproject.toml setup.py proto/jobrunner/v1/jobs.proto
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$*]'
	touch $@

install: $(DEV)

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(DEV)
	$(PY) -m mypy jobrunner

unit: $(DEV)
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

# The dashboard's browser tests drive Debian's chromium; installed once, skipped when present.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The Grafana dashboard's test runs Debian's prometheus against a live stack; the same way.
PROMETHEUS := /usr/bin/prometheus
$(PROMETHEUS):
	command -v prometheus >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus)

# tests/test_deploy.py lints deploy/compose-smoke.sh with shellcheck (no engine runs it here).
SHELLCHECK := /usr/bin/shellcheck
$(SHELLCHECK):
	command -v shellcheck >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck)

# tests/test_netns_faults.py partitions hosts made of network namespaces with Debian's iptables
# (its nft form by default; the legacy one works too); iproute2's `ip` is already there.
IPTABLES := /usr/sbin/iptables
$(IPTABLES):
	command -v iptables >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables)

test: lint typecheck $(DEV) $(CHROMIUM) $(PROMETHEUS) $(SHELLCHECK) $(IPTABLES)
	$(PY) -m pytest --benchmark-disable --durations=30 $(PYTEST_ARGS)
	$(PY) -m bench.ci

# CI's benchmark step: the pytest-benchmark suite timed at small sizes (about half a minute),
# its JSON kept in results/benchmarks/ci-latest.json, and the regression gate on it
# (bench/gate.py: same-run ratios against bench/baselines.json; docs/performance.md).
bench-ci: $(DEV)
	$(PY) -m bench.ci

demo: $(DEMO)
	$(PY) -m jobrunner.cli demo

bench: $(DEV)
	@command -v wrk >/dev/null || apt-get install -y -q wrk || echo "wrk could not be installed: its API figures will be skipped"
	$(PY) -m pytest bench --benchmark-only --benchmark-storage=results/benchmarks --benchmark-autosave --benchmark-json=results/bench-pytest.json --benchmark-columns=mean,stddev,ops,rounds -p no:cacheprovider -q
	$(PY) -m bench.report results/bench-pytest.json $(if $(COMPARE),--compare $(COMPARE))
	$(PY) -m bench.loadgen_goals
	$(PY) -m bench.throughput
	$(PY) -m bench.api_throughput
	$(PY) -m bench.compare_queues
	$(PY) -m bench.compare_queues --handler io --only huey,dramatiq
	$(PY) -m bench.results_cost
	$(PY) -m bench.enqueue_cost
	$(PY) -m bench.models_io
	$(PY) -m bench.models_variants --variant "asyncio=asyncio" --variant "thread=thread" --variant "thread-100=thread --concurrency 100" --variant "thread-reserve=thread --charge-on reserve" --variant "process=process" --variant "process-16=process --concurrency 16"
	$(PY) -m bench.costs
	$(PY) -m bench.scaling
	$(PY) -m bench.wait_cost
	$(PY) -m bench.grpc_vs_http

# JupyterLab refuses to run as root unless told; on a remote host: make lab LAB_IP=0.0.0.0
lab: $(LAB)
	$(VENV)/bin/jupyter lab notebooks/ --no-browser --ip=$(LAB_IP) --port=$(LAB_PORT) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_OPTIONS)

lab-run: $(LAB)
	$(PY) -m jobrunner.lab.build --execute

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks demo-output
