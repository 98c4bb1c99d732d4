# graphc: `make demo` and `make test` do all set-up on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: setup demo test bench lint format docs vm clean graphviz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# Graphviz's `dot` renders the pictures; the Python package alone cannot.
graphviz:
	@if ! command -v dot >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Graphviz (dot) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "graphc: Graphviz's 'dot' program is missing and cannot be installed here (not root or no apt-get)."; \
	    echo "        Install it yourself (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz)."; \
	    echo "        Everything else works without it; only rendering pictures needs it."; \
	  fi; \
	fi

# bytecode for graphc's own modules, compiled ahead (only what changed): imports then skip
# compiling source even where PYTHONDONTWRITEBYTECODE is set
setup: $(STAMP) graphviz
	@$(PY) -m compileall -q graphc passes >/dev/null

demo: setup
	$(PY) examples/demo.py

test: setup
	$(PY) -m pytest

# PyTorch and JAX are optional peers for comparison, never dependencies of graphc
bench: setup
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 || echo "torch unavailable: benchmarking without it"
	@$(PY) -c "import jax" 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check jax jaxlib || echo "jax unavailable: benchmarking without it"
	$(PY) benchmarks/run.py

docs: setup
	$(PY) docs/make_docs.py

vm: setup
	$(PY) -c "from graphc.codegen import vm; vm.write_source()"

lint: setup
	$(VENV)/bin/ruff check graphc passes tests examples benchmarks
	$(VENV)/bin/ruff format --check graphc passes tests examples benchmarks

format: setup
	$(VENV)/bin/ruff format graphc passes tests examples benchmarks
	$(VENV)/bin/ruff check --fix graphc passes tests examples benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
