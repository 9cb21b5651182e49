# hilnas: the two commands a new machine needs are `make demo` and `make test`.
# Both create .venv (if missing) and install the project into it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hilnas-installed
# The shared workspace copy of the datasets when it exists; otherwise HILNAS_DATA_DIR stays
# unset and the loaders download what they need into ~/.cache/hilnas (docs/data.md).
ifneq ($(wildcard ../shared/data/mitdb),)
export HILNAS_DATA_DIR ?= $(abspath ../shared/data)
endif
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: venv demo test test-slow lint typecheck protos check-protos firmware-test hls-test benchmarks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

## The main job: a small real search against the built-in local device (runs/, report path).
demo: venv
	$(VENV)/bin/hilnas search configs/demo.toml

## Everything CI checks: generated stubs, lint, types, and the test suite (not the slow tests).
test: venv check-protos lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider

test-slow: venv
	$(VENV)/bin/pytest -q --run-slow

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

protos: venv
	$(PY) tools/gen_protos.py

check-protos: venv
	$(PY) tools/gen_protos.py --check

firmware-test:
	$(MAKE) -C firmware test

hls-test:
	$(MAKE) -C hls test

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	$(MAKE) -C firmware clean || true
	$(MAKE) -C hls clean || true
