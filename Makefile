# Twin — `make run` serves the dashboard + API with workers (and the demo site on PORT+1);
# `make token` prints the demo login and API token again; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml twin_client/pyproject.toml | sha1sum | cut -c1-12)

# Tests get their own Redis database and host id, so they never meet `make run`'s workers.
TEST_ENV := TWIN_HOST_ID=$${TWIN_TEST_HOST_ID:-pytest} REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	TWIN_ALLOW_PRIVATE_URLS=1

.PHONY: setup run token test lint format bench clean js-types

setup: $(STAMP) chromium js

$(STAMP): pyproject.toml twin_client/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e ./twin_client
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian's Chromium (Playwright cannot download its own browser here).
.PHONY: chromium
chromium:
	@if [ -z "$$TWIN_CHROMIUM" ] && ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian's chromium…"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| { echo "could not install chromium"; exit 1; }; \
		else \
			echo "chromium is missing: install Debian's chromium (sudo apt-get install chromium) or set TWIN_CHROMIUM"; \
			exit 1; \
		fi; \
	fi

# Node.js (>= 20) and the TypeScript client's dev dependencies, from its committed lock file.
JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed-$(shell cat $(JS)/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
.PHONY: js node
js: $(JS)/dist/index.js

# The package as published (dist/: ESM + type declarations), built again when a source changes.
$(JS)/dist/index.js: $(JS_STAMP) $(wildcard $(JS)/src/*.ts) $(JS)/tsconfig.json
	cd $(JS) && npm run -s build

$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json | node
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(JS)/node_modules/.installed-*
	@touch $@

node:
	@if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian's nodejs and npm…"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
				|| { echo "could not install nodejs"; exit 1; }; \
		else \
			echo "Node.js >= 20 is missing (the TypeScript client's tests): sudo apt-get install nodejs npm"; \
			exit 1; \
		fi; \
	fi

# After an API change: the TypeScript client's types, generated again from the schema (commit them).
# (With the default database: PostgreSQL's integer bounds would change the types' comments.)
js-types: setup
	env -u DATABASE_URL $(PY) manage.py spectacular --format openapi-json --file var/schema.json
	cd $(JS) && TWIN_SCHEMA=../../var/schema.json npm run -s types

run: setup
	TWIN_ALLOW_PRIVATE_URLS=$${TWIN_ALLOW_PRIVATE_URLS:-1} $(PY) manage.py serve --port $(PORT)

# The same demo token `make run` printed (NEW=1: revoke it and issue another; PLAIN=1: the token alone).
token: $(STAMP)
	@$(PY) manage.py demotoken --port $(PORT) $(if $(NEW),--new) $(if $(PLAIN),--plain)

# In parallel (pytest-xdist): TEST_WORKERS processes, each a Twin host of its own (host id
# <id>-gwN, Redis database <db>-N, var/xdist/gwN: tests/conftest.py), handed whole test files,
# the longest first. TEST_WORKERS=0 runs the suite in one process (as it did before).
TEST_WORKERS ?= 3
test: setup
	$(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	cd $(JS) && npm run -s lint

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	cd $(JS) && npm run -s format

bench: setup
	$(TEST_ENV) $(PY) bench/run_all.py

clean:
	rm -rf var/test-logs var/hosts
