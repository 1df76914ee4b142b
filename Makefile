# The two commands of the README, and their parts. Everything installs into .venv; the Go builds of
# the control-plane kit are cached under ~/.cache/fleet (FLEET_CACHE_DIR), so a second run builds
# nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint down

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The main job: build the kit (first run only) and bring up three local clusters whose
# kubeconfigs land in clusters/, the directory the hub watches.
demo: setup
	$(BIN)/fleet cluster build
	$(BIN)/fleet cluster up -n 3 --dir clusters/
	$(BIN)/fleet cluster status

down: setup
	$(BIN)/fleet cluster down

lint: setup
	$(BIN)/ruff check fleet tests bench
	$(BIN)/ruff format --check fleet tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/fleet cluster build
	$(BIN)/python -m pytest
