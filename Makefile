# Set-up and the two jobs a new user runs (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-frameworks test-litert test-triton install install-test system-deps lint format clean litert-env triton-env

demo: install  ## install objrec with every extra, then run the main job on the embedded dataset
	$(BIN)/objrec compare digits

test: install-test  ## install objrec and the test tools, then lint and run the unit suite
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest

# The four frameworks (TensorFlow, Keras 3, Lightning, jax) in an environment of their own:
# TensorFlow is heavy, and the main environment stays as it is.
FW_VENV ?= .venv-frameworks
FW_BIN  := $(FW_VENV)/bin

$(FW_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FW_VENV)
	$(FW_BIN)/python -m pip install --quiet --upgrade pip
	$(FW_BIN)/pip install --quiet -e '.[frameworks]' 'pytest>=8' 'pytest-timeout>=2.3'
	$(FW_BIN)/pip check
	touch $@

test-frameworks: $(FW_VENV)/.installed  ## every framework a few steps on digits (objrec frameworks)
	$(FW_BIN)/pytest tests/frameworks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	bash scripts/system-deps.sh
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
system-deps:
	bash scripts/system-deps.sh

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format:
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) $(FW_VENV) $(LITERT_VENV) $(TRITON_VENV) build *.egg-info .pytest_cache

# LiteRT (TFLite) export: litert-torch pins typing-extensions<4.13, which pulls pydantic
# (and so the server) back, so it gets its own environment beside the main one.
LITERT_VENV ?= .venv-litert
litert-env: $(LITERT_VENV)/.installed  ## an environment for `objrec export --format tflite`
$(LITERT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install --quiet -e '.[torch]' 'litert-torch==0.10.0' ai-edge-litert pytest pytest-timeout
	touch $@

test-litert: $(LITERT_VENV)/.installed  ## the .tflite export (float and int8) and its checks, in that environment
	$(LITERT_VENV)/bin/pytest tests/serving/test_export_tflite.py

# A real Triton Inference Server: nvidia-pytriton ships the server binary and serves a Python
# callable through it. It needs numpy<2, so it gets its own environment too; the binary loads
# the Python's shared library, found through LD_LIBRARY_PATH (objrec sets it when it starts
# the server; `objrec serve --engine triton` and the test do).
TRITON_VENV ?= .venv-triton
triton-env: $(TRITON_VENV)/.installed  ## an environment for `objrec serve --engine triton`
$(TRITON_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install --quiet -e '.[triton]' pytest pytest-timeout
	touch $@

test-triton: $(TRITON_VENV)/.installed  ## objrec's predictor behind a real Triton server, queried with tritonclient
	$(TRITON_VENV)/bin/pytest tests/serving/test_triton_server.py
