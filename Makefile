# Two entry points on a fresh machine: `make demo` and `make test`; each sets up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/celebamask-mini
# glibc malloc settings measured to speed up CPU training (see benchmarks/README.md)
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 17179869184
export MALLOC_TOP_PAD_ ?= 536870912

.PHONY: setup demo test benchmark clean

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch exactly 2.13.0 first: the CPU wheel on disk (anything else pulls CUDA builds)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,test]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/faceparse-edge info
	$(BIN)/faceparse-edge evaluate --data $(DATA) --split val --tta flip --json runs/demo/val.json --confusion runs/demo/confusion.png

test: setup
	$(BIN)/python -m pytest -q

benchmark: setup
	$(BIN)/python benchmarks/bench_toolkit.py --data $(DATA)

clean:
	rm -rf $(VENV) runs build *.egg-info
