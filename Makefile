# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SYSTAMP := .modelship/.system-packages

.PHONY: setup demo test test-quick lint bench clean

setup: $(STAMP) $(SYSTAMP)
	bash scripts/podman-service.sh >/dev/null
	bash scripts/build-runner-image.sh

$(SYSTAMP): scripts/setup-system.sh
	bash scripts/setup-system.sh
	@mkdir -p $(dir $@) && touch $@

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[pipelines,dev]'
	@touch $@

demo: setup
	$(BIN)/python -m devkit demo

test: setup lint
	$(BIN)/pytest -q -p no:cacheprovider

test-quick: setup
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

# Lint needs only the venv: no system packages, no container engine, no runner image.
lint: $(STAMP)
	$(BIN)/ruff check bot pipelines contract model_server devkit tests bench scripts
	$(BIN)/ruff format --check bot pipelines contract model_server devkit tests bench scripts
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) .modelship
