# The two commands the README opens with: `make serve` and `make test`.
# Both set up a virtual environment in .venv first (idempotent; a stamp file records it).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: serve test lint proto setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server,ray,files,dev]'
	touch $@ $(VENV)/.installed-server

setup: $(VENV)/.installed-dev

## Run the service on its embedded default: ./data, the bundled MiniLM encoder, port 50051.
serve: $(VENV)/.installed-server
	$(BIN)/embedspace serve $(ARGS)

## Lint, type-check, check the generated stubs are fresh, and run every test.
test: $(VENV)/.installed-dev lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/gen_proto.sh --check
	$(BIN)/python scripts/gen_async_client.py --check

## Regenerate the stubs after editing proto/.
proto: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/gen_proto.sh
