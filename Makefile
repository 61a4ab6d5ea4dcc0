# sigtrade: the two commands a new machine needs.
#   make demo   - create .venv, install, build the synthetic sample catalog, run the demo backtest
#   make test   - create .venv with the dev tools and the research, cluster and openvino extras, run the whole test suite
# Both are idempotent: the venv is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_CORE := $(VENV)/.stamp-core-$(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP_DEV  := $(VENV)/.stamp-dev-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO_OUT ?= out/demo
# The research extra needs torch. Install it first, pinned, so that pip never resolves a
# multi-GB CUDA build: on a machine with a local CPU wheel this is instant; elsewhere set
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to take the CPU build from PyTorch's index.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: demo test venv dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_CORE): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@rm -f $(VENV)/.stamp-core-*; touch $@

$(STAMP_DEV): $(STAMP_CORE)
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,research,cluster,openvino]"
	@rm -f $(VENV)/.stamp-dev-*; touch $@

venv: $(STAMP_CORE)
dev: $(STAMP_DEV)

demo: $(STAMP_CORE)
	$(BIN)/sigtrade sample --catalog catalogs/sample
	$(BIN)/sigtrade backtest config/demo.toml --out $(DEMO_OUT)

test: $(STAMP_DEV)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check engine models strategies tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP_CORE)
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) out .pytest_cache
