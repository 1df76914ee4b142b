# The two commands of the README, and their parts. Everything installs into .venv; the Go builds of
# the control-plane kit are cached under ~/.cache/fleet (FLEET_CACHE_DIR), so a second run builds
# nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint down system

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The main job, `fleet demo`: build the kit (first run only), bring up three local clusters, a
# local config repo and the hub; a commit and its rollback reach every cluster. State: .fleet-demo/
demo: setup
	$(BIN)/fleet demo

down: setup
	$(BIN)/fleet cluster down

lint: setup
	$(BIN)/ruff check fleet tests bench
	$(BIN)/ruff format --check fleet tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Debian packages some tests need: Chromium (the status page in a real browser) and the OpenSSH
# client (git over SSH). Installed only when missing and when we may (root); otherwise those tests
# say they were skipped and why.
system:
	@if ! command -v chromium >/dev/null || ! command -v ssh >/dev/null \
	    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium openssh-client postgresql >/dev/null) \
	      || echo "warning: could not install chromium/openssh-client/postgresql"; \
	  else echo "note: chromium, ssh or postgresql missing and not root: their tests will be skipped"; fi; \
	fi

test: lint system
	$(BIN)/fleet cluster build
	$(BIN)/python -m pytest
