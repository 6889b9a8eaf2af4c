# yolocustom developer commands. `make test` and `make demo` create .venv from scratch when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.yolocustom-installed
PYTHON ?= python3

.PHONY: install test lint demo bench drills schema clean

install: $(STAMP)

# pip here resolves torch/torchvision within the machine's constraint (torch 2.14.1 + torchvision 0.29.1 from local
# disk); elsewhere it takes the newest compatible pair. torch stays unpinned in pyproject so users keep their CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch torchvision -e ".[dev,tune,onnx]"
	@touch $(STAMP)

# one worker per core; a module (and the modules sharing the all-features run) stays on one worker: tests/conftest.py
test: install
	YOLO_OFFLINE=1 $(PY) -m pytest -q -m "not drill" -n auto

lint: install
	$(VENV)/bin/ruff check yolocustom tests bench
	$(VENV)/bin/ruff format --check yolocustom tests bench
	$(VENV)/bin/mypy yolocustom

demo: install
	$(VENV)/bin/yolocustom demo-data --out datasets/shapes
	YOLO_OFFLINE=1 $(VENV)/bin/yolocustom train configs/demo.yaml

bench: install
	YOLO_OFFLINE=1 $(PY) bench/run_all.py

drills: install
	YOLO_OFFLINE=1 $(PY) -m pytest -q -m drill

schema: install
	$(VENV)/bin/yolocustom schema > configs/recipe.schema.json

clean:
	rm -rf runs datasets bench/out/*/ .pytest_cache .mypy_cache .ruff_cache
