# Every target sets itself up from a fresh clone: uv, the virtual environment, the model
# and voices, and (for the browser tests) Debian's chromium.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup assets browser lab demo test lint bench bench-browser clean

setup: $(VENV)/.synced

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml engine/pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON) --all-extras --no-extra gpu
	touch $@

assets: setup
	$(BIN)/kokoro-nb fetch

browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

lab: assets
	$(BIN)/jupyter lab notebooks/quickstart.ipynb

demo: assets
	$(BIN)/kokoro-nb demo -o demo.wav

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: assets browser lint
	$(BIN)/pytest -ra

bench: assets
	$(BIN)/kokoro-nb bench

# What the user hears: first sound, underruns and RTF in JupyterLab + Chromium (~15 min).
bench-browser: assets browser
	$(BIN)/python bench/browser_bench.py

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
