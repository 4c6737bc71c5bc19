# One source of truth for tasks; CI calls the same targets a developer does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit integration kafka-fetch chaos bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sagas demo

lint: $(STAMP)
	$(BIN)/ruff check sagas services tests
	$(BIN)/ruff format --check sagas services tests

typecheck: $(STAMP)
	$(BIN)/mypy

kafka-fetch: $(STAMP)
	$(BIN)/sagas dev kafka fetch

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The browser tests drive Debian's Chromium; install it with apt only when missing
# (CI runs as root on a possibly fresh machine). Never `playwright install`.
chromium:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

# The integration tests start their own broker (a session fixture) on a free port.
test: $(STAMP) lint typecheck kafka-fetch chromium
	$(BIN)/sagas check
	$(BIN)/pytest

# The whole benchmark on the dev broker (about 12 minutes on 2 cores): the table, the
# JSON result and the load sweep plot that docs/benchmarks.md quotes.
bench: $(STAMP) kafka-fetch
	$(BIN)/sagas bench --out docs/bench-result.json --plot docs/images/bench.png \
		--docs docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
