# Two entry points on a fresh machine: `make demo` and `make test`; each sets up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
DATA ?= $(SHARED)/data/celebamask-mini
# glibc malloc settings: edge-preset training 11.8-12.0 -> 16.3-17.9 images/s on this 2-core CPU
# (python benchmarks/bench_toolkit.py --presets edge, two runs without and with them)
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 17179869184
export MALLOC_TOP_PAD_ ?= 536870912

# constraints.txt pins every package to the versions the test suite last passed with, so a
# fresh machine gets the same stack; pyproject's ranges stay open for library users.
# `make lock` re-resolves against the newest releases, runs the suite, and rewrites it.
PIP := $(BIN)/python -m pip install -q -c constraints.txt
LOCK_VENV := .venv-lock

# The runtime on a second Python (the one Debian 13 ships): its own runtime-only venv, no torch.
# (pyenv's own build first: its python3.13 shim fails unless 3.13 is selected.)
RUNTIME_PY ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13))
RUNTIME_VENV := .venv-py313
RUNTIME_TESTS := tests/test_api.py tests/test_detectors.py tests/test_runtime.py tests/test_alignment.py

.PHONY: setup-runtime setup demo test test-runtime-py313 benchmark lock clean

# The runtime install: numpy, OpenCV, ONNX Runtime, OpenVINO, typer (no torch).
$(BIN)/.runtime: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

# Training, export and tests: torch exactly 2.13.0 first (the CPU wheel on disk; any other
# spec pulls CUDA builds), then the [train,test] extras.
$(BIN)/.train: $(BIN)/.runtime
	$(PIP) torch==2.13.0
	$(PIP) -e ".[train,test]"
	touch $@

setup-runtime: $(BIN)/.runtime
setup: $(BIN)/.train

# Parse the shared photos and video with the shipped model (torch-free runtime).
demo: setup-runtime
	$(BIN)/faceparse-edge image $(SHARED)/media --out runs/demo --json runs/demo/images.json
	$(BIN)/faceparse-edge video $(SHARED)/media/short_hamilton_clip.mp4 --no-show --out runs/demo/short_hamilton_clip.mp4 --json runs/demo/video.json

test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) test-runtime-py313

# The runtime tests (API, detector, image, video, alignment) on Python 3.13 with the runtime install alone
# (plus pytest, and onnx to build a test model). Without a Python 3.13 this fails under CI and is
# skipped, saying so, elsewhere.
test-runtime-py313:
	@if [ -z "$(RUNTIME_PY)" ]; then \
	    echo "no python3.13 found (set RUNTIME_PY=...): runtime tests on a second Python not run"; \
	    [ -z "$$CI" ]; exit $$?; fi
	@[ -x $(RUNTIME_VENV)/bin/python ] || $(RUNTIME_PY) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q -c constraints.txt --upgrade pip
	$(RUNTIME_VENV)/bin/python -m pip install -q -c constraints.txt -e . pytest onnx
	$(RUNTIME_VENV)/bin/python -m pytest -q -p no:cacheprovider $(RUNTIME_TESTS)

benchmark: setup
	$(BIN)/faceparse-edge benchmark --data $(DATA)
	$(BIN)/python benchmarks/bench_int8.py --data $(DATA)
	$(BIN)/python benchmarks/bench_toolkit.py --data $(DATA)
	$(BIN)/python benchmarks/bench_runtime.py --video $(SHARED)/media/short_hamilton_clip.mp4

# Newest releases within pyproject's ranges, in a throw-away venv; the lock is rewritten only if the suite passes.
lock:
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[train,test]"
	$(LOCK_VENV)/bin/python -m pytest -q
	{ echo "# The versions \`make test\` last passed with (written by \`make lock\`; see README)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(RUNTIME_VENV) runs build *.egg-info
