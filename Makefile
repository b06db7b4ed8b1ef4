# Two commands: `make demo` (train the embedded demo) and `make test` (the test suite).
# Each creates .venv and installs what it needs; on a machine without an NVIDIA GPU the CPU build of torch is
# installed first, so no multi-GB CUDA build is downloaded.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU := torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: demo test test-quick bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.torch: $(BIN)/python
	if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install --quiet torch; \
	else $(BIN)/pip install --quiet $(TORCH_CPU) || $(BIN)/pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch; fi
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# The motif kernels (TOMTOM, FIMO) compile into numba's cache once here, not in the first test that matches a motif.
$(VENV)/.installed-dev: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -c "from expression_perceiver.data.motifs import compile_motif_kernels; compile_motif_kernels()"
	touch $@ $(VENV)/.installed

# One thread: the demo's small model runs several times slower on two threads of a shared 2-core machine.
demo: $(VENV)/.installed
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		--num_cpu_threads_per_process 1 train.py

# Two workers: much of the suite waits (subprocess start-up, the Hub client's retry backoff), so two run in the
# time of one and a half on a 2-core machine.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2

# Everything but the tests that train a model or start processes (marked slow): a check while editing.
test-quick: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) outputs .pytest_cache
