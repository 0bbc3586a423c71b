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

.PHONY: setup-runtime setup demo test benchmark clean

# The runtime install: numpy, OpenCV, ONNX Runtime, OpenVINO, typer (no torch).
$(BIN)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# Training, export and tests: torch exactly 2.13.0 first (the CPU wheel on disk; any other
# spec pulls CUDA builds), then the [train,test] extras.
$(BIN)/.train: $(BIN)/.runtime
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,test]"
	touch $@

setup-runtime: $(BIN)/.runtime
setup: $(BIN)/.train

# Parse the shared photos and video with the shipped model (torch-free runtime).
demo: setup-runtime
	$(BIN)/faceparse-edge image $(SHARED)/media --out runs/demo --json runs/demo/images.json
	$(BIN)/faceparse-edge video $(SHARED)/media/short_hamilton_clip.mp4 --no-show --out runs/demo/short_hamilton_clip.mp4 --json runs/demo/video.json

test: setup
	$(BIN)/python -m pytest -q

benchmark: setup
	$(BIN)/faceparse-edge benchmark --data $(DATA)
	$(BIN)/python benchmarks/bench_toolkit.py --data $(DATA)
	$(BIN)/python benchmarks/bench_runtime.py --video $(SHARED)/media/short_hamilton_clip.mp4

clean:
	rm -rf $(VENV) runs build *.egg-info
