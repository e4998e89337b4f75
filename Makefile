# RadixInsight developer entry points. `make run` and `make test` install what they
# need (Python venv, Kafka jars, Prism, Flink job server) into .venv and ~/.cache.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# Reinstall the venv whenever the pins change.
STAMP  := $(VENV)/.installed-$(shell cat setup.py constraints.txt 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: setup system-packages toolchain run test test-fast lint bench clean constraints \
	sdk-test chromium

# Debian packages the tests and benchmarks start: redis-server (shared rate limits),
# wrk (bench/collector.py). Installed only when missing (CI runs as root).
SYSTEM_PACKAGES := redis-server:redis-server wrk:wrk

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

setup: $(STAMP) system-packages

toolchain: setup
	$(BIN)/radixinsight toolchain kafka prism flink

run: setup
	$(BIN)/radixinsight toolchain kafka prism
	$(BIN)/radixinsight up --demo

lint: setup
	$(BIN)/ruff check .

test: toolchain lint sdk-test chromium
	$(BIN)/pytest $(PYTEST_ARGS)

# JS SDK: npm ci from the committed lock (again only when it changes), type check, build,
# unit tests (vitest + happy-dom) and the size gate. Its browser e2e runs under pytest.
SDK_STAMP := sdk-js/node_modules/.installed-$(shell sha1sum sdk-js/package-lock.json 2>/dev/null | cut -c1-12)
$(SDK_STAMP): sdk-js/package-lock.json
	cd sdk-js && npm ci --no-audit --no-fund
	@touch $@

sdk-test: $(SDK_STAMP)
	cd sdk-js && npm run -s typecheck && npm run -s build && npm test && npm run -s size

# Debian's Chromium for the SDK e2e (playwright-core drives /usr/bin/chromium; no browser download).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test-fast: setup
	$(BIN)/pytest -m "not integration and not e2e and not flink" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/e2e_latency.py

constraints: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v radixinsight; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .radixinsight build *.egg-info
