# Two commands on a fresh machine: `make run` (the platform) and `make test` (the suite).
# Each builds .venv/ from the pinned requirements the first time and reuses it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-embedded lint bench fmt clean chromium

$(STAMP): pyproject.toml requirements/runtime.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/diboas run

# localstripe (a local Stripe for the payment tests) lives in a virtualenv of its own: its
# dependencies clash with the platform's. Built here, at install time, not mid-test.
LOCALSTRIPE_STAMP := .data/localstripe-venv/.requirements-sha256

$(LOCALSTRIPE_STAMP): requirements/localstripe.txt tools/localstripe
	$(PYTHON) tools/localstripe --install-only

# The local chain tools (anvil, solcjs, Uniswap v2 bytecode) from the npm registry into
# tools/chain/node_modules, for the chain and DeFi tests.
CHAIN_STAMP := tools/chain/node_modules/.package-json-sha256

$(CHAIN_STAMP): tools/chain/package.json tools/chain/install
	tools/chain/install

# Debian's Chromium for the browser tests (tests/e2e). Outside CI a machine that cannot
# install it still runs the rest (the browser tests skip); in CI its absence fails them.
chromium:
	@tools/install-chromium || test "$$CI" != "true"

test: $(STAMP) $(LOCALSTRIPE_STAMP) $(CHAIN_STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The database-heavy ledger tests again, against the embedded PostgreSQL even when a server URL is set.
test-embedded: $(STAMP)
	env -u DIBOAS_TEST_DATABASE_URL -u DIBOAS_TEST_REQUIRE_SERVER $(BIN)/python -m pytest tests/ledger $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.ledger_throughput
	$(BIN)/python -m bench.http_load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
