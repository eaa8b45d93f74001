# RTOC. `make run` and `make test` work on a machine with only Python 3.11+ and make:
# they create .venv themselves when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: setup run view test bench soak lint layers clean

$(VENV)/.base: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.run: $(VENV)/.base      # the Telegram bot's libraries: a token in rtoc.toml starts it
	$(BIN)/python -m pip install -q -e '.[telegram]'
	touch $@

$(VENV)/.view: $(VENV)/.run      # the viewer's Qt (PySide6-Essentials) and pyqtgraph
	$(BIN)/python -m pip install -q -e '.[viewer]'
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: $(VENV)/.test
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

setup: $(VENV)/.base            ## create .venv and install rtoc

run: $(VENV)/.run               ## run RTOC on its embedded defaults (Ctrl-C stops)
	$(BIN)/rtoc $(ARGS) run

view: $(VENV)/.view             ## RTOC on its defaults and the viewer on it; closing the viewer stops both
	$(BIN)/rtoc $(ARGS) run & pid=$$!; trap 'kill -INT $$pid 2>/dev/null; wait $$pid' EXIT; \
	sleep 3; $(BIN)/rtoc $(ARGS) view

test: $(VENV)/.test             ## unit + integration + e2e tests, then the layer contracts
	$(BIN)/python -m pytest $(ARGS)
	$(MAKE) --no-print-directory layers

bench: $(VENV)/.bench           ## benchmarks (see bench/README.md); never part of `make test`
	$(BIN)/python -m pytest bench -q -p no:cacheprovider --benchmark-only --benchmark-columns=min,median,mean,ops,rounds
	$(BIN)/python bench/run_e2e.py
	$(BIN)/python bench/run_warm_start.py
	$(BIN)/python bench/run_archive.py
	$(BIN)/python bench/run_websocket.py
	$(BIN)/python bench/run_ws_binary.py
	$(BIN)/python bench/run_ws_clients.py
	$(BIN)/python bench/run_dashboard.py

soak: $(VENV)/.test             ## long stress runs
	$(BIN)/python -m pytest -m soak $(ARGS)

lint: $(VENV)/.test             ## ruff + import-linter layer contracts
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory layers

# import-linter reads packages from disk, and the editable install maps drivers/, pipeline/
# and frontends/ into rtoc.* only at import time: so check a real (non-editable) install.
layers: $(VENV)/.test
	rm -rf build/lint
	$(BIN)/python -m pip install -q --no-deps --no-compile --target build/lint . 2>/dev/null
	cd build/lint && PYTHONPATH=. ../../$(BIN)/lint-imports ../../pyproject.toml

clean:                          ## remove the venv, caches and build output
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .benchmarks .hypothesis .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
