# Two commands do everything on a fresh machine:
#   make run    install, build index/ from seeds/ when missing or stale, start the chat UI on 127.0.0.1:7860
#   make test   install, then run the whole test suite (pip check included)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install index run test test-fast check lint lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25"
	# torch first, pinned: this version is the local CPU build (any other resolves to a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0 -c requirements.lock
	$(PY) -m pip install -q -c requirements.lock -e '.[test]'
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

# Incremental: a no-op when seeds/ and the settings are unchanged.
index: install
	$(RAG) rebuild-index --source seeds --index index

run: index
	$(RAG) serve --index index

check: install
	$(PY) -m pip check

# Style, format, types and layering (the import-linter contracts in pyproject.toml); any finding fails the target.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=. $(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: install check lint
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not model and not browser and not slow and not milvus_server"

# Regenerate the exact-version lock from the current environment.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
