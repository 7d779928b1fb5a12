# Fine-Tuning Tutor: `make run` sets up and starts the app, `make test` sets up and runs every test.
# Each target is one call to make.py, where the logic lives; without make (Windows): `py make.py run`.
# Set-up is idempotent: the venv is rebuilt only when pylock.toml, pyproject.toml, this file, make.py or
# TORCH_SPEC change.
#   TORCH_SPEC=torch==2.13.0 make run     # a CUDA build instead: PyPI's Linux wheel (CUDA 13; docs/install.md)
#   make run HOST=0.0.0.0 PORT=8080       # (make puts variables given on its command line in make.py's environment)
PYTHON ?= python3

.PHONY: install run test test-unit test-browser browser bench lock clean

install run test test-unit test-browser browser bench lock clean:
	@$(PYTHON) make.py $@
