# Every command the README names. `make test` and `make demo` set up everything on a fresh machine.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := .tools/bin/uv
RUN := $(UV) run --frozen --extra cli
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export UV_PYTHON_DOWNLOADS := never

# Deployment: `make deploy STAGE=prod CONTEXT="alarm_email=oncall@example.com tick_minutes=5"`.
# CONTEXT holds CDK context settings (docs/deploy.md lists them); CDK_ARGS more CDK CLI arguments
# (e.g. `--profile prod --require-approval never`).
STAGE ?= dev
CONTEXT ?=
CDK_ARGS ?=
STACK = cronpilot-$(STAGE)
# The pinned CLI major (see docs/deploy.md); uv on PATH for anything that still calls plain `uv`.
CDK = PATH="$(CURDIR)/.tools/bin:$$PATH" npx --yes aws-cdk@2
CDK_CONTEXT = -c stage=$(STAGE) $(foreach setting,$(CONTEXT),-c $(setting))
# Where `make install` links the operator CLI.
BINDIR ?= $(HOME)/.local/bin

.PHONY: setup test test-fast lint typecheck demo bench build synth clean
.PHONY: cdk-app bootstrap deploy destroy destroy-guard import-retained install uninstall

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install, as pip does (uv does not by default): without it every `cronpilot`
# command compiles its imports again wherever PYTHONDONTWRITEBYTECODE is set, ~0.8 s of CPU.
setup: $(UV)
	$(UV) sync --frozen --extra cli --compile-bytecode
	$(RUN) python -m compileall -q layers/cronpilot/cronpilot

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
	$(CDK) synth --quiet --output cdk.out $(CDK_CONTEXT) $(CDK_ARGS)

# cdk.json's app command: needs nothing on PATH but make and python3 (uv is bootstrapped here).
cdk-app: $(UV)
	@$(UV) run --frozen --extra cli python infra/app.py

bootstrap: build
	$(CDK) bootstrap $(CDK_CONTEXT) $(CDK_ARGS)

deploy: build
	$(CDK) deploy $(STACK) $(CDK_CONTEXT) $(CDK_ARGS)

# prod has termination protection: tearing it down takes CONFIRM=cronpilot-prod, which lifts it first.
destroy: destroy-guard build
	@if [ "$(STAGE)" = prod ]; then \
	  $(RUN) python infra/stack_admin.py unprotect $(STACK) $(CDK_ARGS); \
	fi
	$(CDK) destroy $(STACK) $(CDK_CONTEXT) $(CDK_ARGS)

destroy-guard:
	@if [ "$(STAGE)" = prod ] && [ "$(CONFIRM)" != "$(STACK)" ]; then \
	  echo "$(STACK) is termination-protected: run 'make destroy STAGE=prod CONFIRM=$(STACK)'" >&2; \
	  exit 2; \
	fi

# After `make destroy STAGE=prod` the table (jobs, run history) and the log groups are retained:
# adopt them into the new stack (--force: everything else is left for `make deploy STAGE=prod`).
import-retained: build
	$(CDK) synth --quiet --output cdk.out $(CDK_CONTEXT) $(CDK_ARGS) $(STACK)
	$(RUN) python infra/stack_admin.py import-mapping cdk.out/$(STACK).template.json build/$(STACK)-import.json
	$(CDK) import $(STACK) --force --resource-mapping build/$(STACK)-import.json $(CDK_CONTEXT) $(CDK_ARGS)

# Puts the operator CLI on PATH (a link to .venv/bin/cronpilot, so it follows `git pull && make setup`).
install: setup
	mkdir -p "$(BINDIR)"
	ln -sf "$(CURDIR)/.venv/bin/cronpilot" "$(BINDIR)/cronpilot"
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; \
	  *) echo "$(BINDIR) is not on your PATH: add it, e.g. export PATH=\"$(BINDIR):\$$PATH\"";; esac

uninstall:
	rm -f "$(BINDIR)/cronpilot"

clean:
	rm -rf .venv .tools build cdk.out .pytest_cache .mypy_cache .ruff_cache .coverage
