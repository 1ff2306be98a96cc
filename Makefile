# The two README commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python compiles from source; a native build crashes in the AMX kernel on some
# CPUs, so build for the generic target.  pip caches the built wheel, so this runs once.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: demo test lint clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

# The HTML report is checked in headless Chromium (Debian's package; a browser download of
# a test tool's own would need network we do not have).  Installed once, as root.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: install Debian's chromium package (sudo apt-get install chromium) for the HTML report test"; fi; }

test: $(VENV)/.installed browser
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check llmops pytest_plugin tests examples benchmarks
	$(BIN)/ruff format --check llmops pytest_plugin tests examples benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) mlruns .llmops
