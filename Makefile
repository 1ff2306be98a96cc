# The two README commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python compiles from source; a native build crashes in the AMX kernel on some
# CPUs, so build for the generic target.  pip caches the built wheel, so this runs once.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check llmops pytest_plugin tests examples benchmarks
	$(BIN)/ruff format --check llmops pytest_plugin tests examples benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) mlruns .llmops
