# meterhub — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell md5sum pyproject.toml | cut -c1-12)
STAMP := $(VENV)/.installed-$(HASH)
STAMP_DEV := $(VENV)/.installed-dev-$(HASH)
PORT ?= 8080
DEB_TEST_PKGS := chromium mbpoll socat mosquitto-clients mosquitto
JOBS ?= auto

.PHONY: demo test check lint types venv venv-dev deps-test sysdeps web-assets clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The runtime alone for `make demo`; the dev extras (test tools, pqopen-lib, playwright) for `make test`.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $(STAMP)

$(STAMP_DEV): $(STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP_DEV)

venv: $(STAMP)

venv-dev: $(STAMP_DEV)

# Front-end libraries come from npm into the package's static folder; nothing third-party is committed.
web-assets:
	@if [ -f src/meterhub/web/package.json ]; then \
	  if [ ! -d src/meterhub/web/node_modules ] || [ src/meterhub/web/package.json -nt src/meterhub/web/node_modules ]; then \
	    (cd src/meterhub/web && npm install --no-audit --no-fund --loglevel=error) && touch src/meterhub/web/node_modules; fi; fi

demo: venv web-assets
	$(BIN)/meterhub demo --port $(PORT)

# Debian packages the tests drive as independent peers (installed only when missing).
sysdeps:
	@missing=""; for p in $(DEB_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

deps-test: venv-dev sysdeps web-assets

test: deps-test
	$(BIN)/pytest -n $(JOBS) --dist loadfile -p no:cacheprovider

lint: venv-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

STRICT_MODULES := -p meterhub.runtime -m meterhub.drivers.base -m meterhub.bus -m meterhub.live -m meterhub.model.health -m meterhub.web.deps

types: venv-dev
	$(BIN)/mypy src/
	$(BIN)/mypy --strict --follow-imports=silent $(STRICT_MODULES)

check: lint types test

bench: venv-dev web-assets
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
