# SkyGrid — two commands for a fresh machine (Python >= 3.11 and make):
#   make demo   sets up .venv (runtime only, no torch) and runs a whole simulated patrol
#   make test   sets up .venv with the dev extras and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
export YOLO_OFFLINE := true
export YOLO_AUTOINSTALL := false
export YOLO_CONFIG_DIR := $(CURDIR)/work/ultralytics

.PHONY: demo test bench lint train setup setup-dev clean help

help:
	@echo "make demo   - set up and run the simulated patrol (opens the command room on http://127.0.0.1:8000)"
	@echo "make test   - set up and run the test suite"
	@echo "make bench  - run the benchmarks and rewrite docs/benchmarks.md"
	@echo "make lint   - ruff"
	@echo "make train  - regenerate the synthetic dataset and retrain the shipped model"

$(VENV)/.stamp-venv:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "SkyGrid needs Python >= 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@touch $@

$(VENV)/.stamp-runtime: $(VENV)/.stamp-venv pyproject.toml
	$(PIP) install -e .
	@touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-runtime pyproject.toml
	$(PIP) install -e '.[dev]'
	@touch $@

setup: $(VENV)/.stamp-runtime
setup-dev: $(VENV)/.stamp-dev

demo: $(VENV)/.stamp-runtime
	$(VENV)/bin/skygrid demo $(DEMO_ARGS)

test: $(VENV)/.stamp-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.stamp-dev
	$(PY) -m bench.run_all

lint: $(VENV)/.stamp-dev
	$(PY) -m ruff check .

train: $(VENV)/.stamp-dev
	$(VENV)/bin/skygrid vision train

clean:
	rm -rf $(VENV) work .pytest_cache
