# Every target installs what it needs: a fresh clone only needs python3.11 (or python3 >= 3.11).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Quix Streams peer of `make bench` (bench/peers/quix_peer.py) has an environment of its own: quixstreams
# pins pydantic below what the project resolves to, and a peer must not change the project's dependencies.
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

.PHONY: install demo lint test test-long test-unit test-integration schemas bench peers soak clean browser promtool stressng ajv poppler

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cact demo

# ruff (rules chosen in pyproject.toml) and mypy on every package; `make test` runs it first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Tests marked `long` (minutes each: the three-worker scale-out, the bench beside its peers) run in `make soak`.
test: $(STAMP) lint browser promtool stressng ajv poppler peers
	$(BIN)/python -m pytest tests -m "not long"

test-long: $(STAMP) browser promtool stressng ajv poppler peers
	$(BIN)/python -m pytest tests -m long

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) browser promtool stressng ajv poppler peers
	$(BIN)/python -m pytest tests/integration -m "not long"

# Headless Chromium for the operator-page browser test (Debian's package; Playwright never downloads one).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# stress-ng is the CPU hog the fault suite runs beside the pipeline (Debian's package; bench/faults/load.py).
stressng:
	command -v stress-ng >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng)

# pdftotext and pdftoppm read the reports back in their tests (Debian's poppler-utils).
poppler:
	command -v pdftotext >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils)

# promtool checks and unit-tests the Prometheus alert rules in deploy/prometheus/.
promtool:
	command -v promtool >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus)

# ajv (Node.js), the second validator of the contract's differential test (tests/integration/schemas/): the
# versions pinned in tests/contract_js/package-lock.json, installed again whenever the lock is newer than them.
AJV := tests/contract_js
ajv: $(AJV)/node_modules/.package-lock.json

$(AJV)/node_modules/.package-lock.json: $(AJV)/package.json $(AJV)/package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	cd $(AJV) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(PEERS_STAMP): pyproject.toml
	test -x $(PEERS_VENV)/bin/python || $(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --upgrade pip
	$(PEERS_VENV)/bin/pip install -q -e '.[quix]'
	touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

schemas: $(STAMP)
	$(BIN)/cact schemas export

# Throughput, latency and memory of one worker on this machine, beside a plain aiokafka loop and a Quix Streams
# app on the same day: bench/results/latest.json, docs/benchmarks.md.
# e.g. make bench BENCH_ARGS="--participants 3000 --profile bench/results/profile.txt"
bench: $(STAMP) peers
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The fault suite at full size (issue 12, docs/operations.md): 20 worker and 5 sink kill -9 under a CPU hog on a
# 3,000-participant day, 3 seeds, plus a lab, database and SI ASN outage, a lost worker and 100,000 hostile
# records; every run compared row by row with an uninterrupted run of its seed. Report: bench/results/soak.json.
# Needs PostgreSQL (CACT_FAULTS_PG_ADMIN_URL). e.g. make soak SOAK_ARGS="--seeds 11 --scenarios kill_under_load"
SOAK_ARGS ?= --hostile 100000
soak: test-long
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) .cact build *.egg-info
