# One source of truth for tasks; CI calls the same targets a developer does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit integration kafka-fetch chaos bench clean chromium openssl compose-cli

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sagas demo

# The long chaos run (docs/reliability.md): at least 10,000 sagas, every fault kind,
# 20 engine kills, 2 broker restarts. Bounded: `timeout` stops it (and every process
# it started) after CHAOS_LIMIT. Replay a run with its seed: make chaos SEED=<seed>.
SEED ?= $(shell date +%s)
CHAOS_LIMIT ?= 3h
chaos: $(STAMP) kafka-fetch
	timeout --signal=TERM --kill-after=2m $(CHAOS_LIMIT) $(BIN)/sagas chaos --sagas 10000 \
		--faults all --engine-kills 20 --broker-restarts 2 --seed $(SEED)

lint: $(STAMP)
	$(BIN)/ruff check sagas services tests
	$(BIN)/ruff format --check sagas services tests

typecheck: $(STAMP)
	$(BIN)/mypy

kafka-fetch: $(STAMP)
	$(BIN)/sagas dev kafka fetch

unit: $(STAMP) compose-cli
	$(BIN)/pytest tests/unit

# The browser tests drive Debian's Chromium; install it with apt only when missing
# (CI runs as root on a possibly fresh machine). Never `playwright install`.
chromium:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

# tests/unit/test_compose.py checks docker-compose.yml with `docker-compose config`
# (Debian's docker-compose; no Docker engine needed): apt only when missing.
compose-cli:
	@command -v docker-compose >/dev/null || (apt-get update && apt-get install -y docker-compose)

# The secure dev broker (and tests/security) make their throwaway CA with openssl.
openssl:
	@command -v openssl >/dev/null || (apt-get update && apt-get install -y openssl)

# The integration tests start their own broker (a session fixture) on a free port.
test: $(STAMP) lint typecheck kafka-fetch chromium openssl compose-cli
	$(BIN)/sagas check
	$(BIN)/pytest

# The whole benchmark on the dev broker (about 6 minutes on 2 cores, see docs/benchmarks.md
# "How long each phase takes"): the tables, the JSON result and the load sweep plot that
# docs/benchmarks.md quotes.
bench: $(STAMP) kafka-fetch
	$(BIN)/sagas bench --out docs/bench-result.json --plot docs/images/bench.png \
		--docs docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
