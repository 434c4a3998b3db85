# ganbench: `make train` runs the CPU quick start, `make test` the test suite. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install train test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) -m ganbench.train experiment=quickstart

test: install
	$(PY) -m pytest -n 2 --dist loadfile  # one worker per core; a file stays on one worker (its module fixtures run once)

bench: install
	$(PY) scripts/bench_train.py
	$(PY) scripts/bench_families.py
	$(PY) scripts/bench_metrics.py
	$(PY) scripts/bench_analyze.py
	$(PY) scripts/bench_sweep_overhead.py
	$(PY) scripts/bench_models.py
	$(PY) scripts/bench_compile.py
	$(PY) scripts/bench_progan.py
	$(PY) scripts/bench_translation.py

clean:
	rm -rf outputs/* .pytest_cache
