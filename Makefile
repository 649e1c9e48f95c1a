# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs the package (with its dev tools) into it first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@echo "factory demo: the stages built so far on the embedded digits data (train, search, picks + fine-tuning);"
	@echo "ONNX/TensorRT export, benchmarks and the report are not built yet, so 'factory build' is not run."
	$(BIN)/factory data --dataset digits
	$(BIN)/factory train --recipe digits --out runs/demo --resume
	$(BIN)/factory search --run runs/demo --budget-params 0.3M
	$(BIN)/factory finetune --run runs/demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
