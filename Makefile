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

# The shipped model's two stages, as vision/models/MODEL_CARD.md records them (about 100 min
# on a 2-core CPU; stage 2 fits its epochs to a wall-clock budget, so re-runs differ slightly).
train: $(VENV)/.stamp-dev
	$(VENV)/bin/skygrid vision dataset --out work/ds_main --train 1500 --val 112 --test 0 --seed 2026
	$(VENV)/bin/skygrid vision train --data work/ds_main --model yolo11n.yaml --imgsz 320 --batch 8 \
		--epochs 40 --hours 0.78 --fraction 0.32 --threads 1 --seed 0 --out work/model_v1
	cp work/runs/train/weights/best.pt work/base_v1.pt
	$(VENV)/bin/skygrid vision dataset --out work/ds_hard --train 2400 --val 160 --test 0 --seed 3031 --mix hard
	OMP_NUM_THREADS=2 $(VENV)/bin/skygrid vision train --data work/ds_hard --model work/base_v1.pt \
		--imgsz 320 --batch 8 --epochs 6 --hours 0.85 --threads 2 --seed 0 --out vision/models

clean:
	rm -rf $(VENV) work .pytest_cache
