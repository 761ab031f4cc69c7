# Every command the README names. `make test` and `make demo` set up everything on a fresh machine.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := .tools/bin/uv
RUN := $(UV) run --frozen --extra cli
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup test test-fast lint typecheck demo bench build synth clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV)
	$(UV) sync --frozen --extra cli

# The claim race runs on its own, without coverage tracing (which triples its time).
test: setup lint typecheck
	$(RUN) pytest -n 2 --dist loadgroup -m "not slow" --cov --cov-report=term
	$(RUN) pytest -n 2 --dist loadgroup -m slow

test-fast: setup
	$(RUN) pytest -n 2 -m "not slow"

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup
	$(RUN) mypy

demo: setup
	$(RUN) cronpilot local demo

bench: setup
	$(RUN) python -m bench

build: setup
	$(RUN) python infra/build_layers.py

synth: build
	PATH="$(CURDIR)/.tools/bin:$$PATH" npx --yes aws-cdk@2 synth --quiet --output cdk.out

clean:
	rm -rf .venv .tools build cdk.out .pytest_cache .mypy_cache .ruff_cache .coverage
