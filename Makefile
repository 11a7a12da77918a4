# The two commands: `make demo` and `make test`. Each installs what is missing first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test deps system lint typecheck contracts unit bench clean

demo: deps
	$(VENV)/bin/cellar demo

test: deps lint typecheck contracts unit

deps: system $(STAMP)

system:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

lint:
	$(VENV)/bin/ruff check src tests bench

typecheck:
	$(VENV)/bin/mypy

contracts:
	$(VENV)/bin/lint-imports

unit:
	$(VENV)/bin/pytest

bench: deps
	$(PY) bench/control_plane.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
