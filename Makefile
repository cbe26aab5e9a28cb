# The README's two commands: `make demo` and `make test`. Everything else is a step they run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CACHE ?= .cache
TINY_MODEL := $(CACHE)/tiny-qwen2.5-vl
TINY_JUDGE := $(CACHE)/tiny-qwen2-judge
# The tokenizer is trained on the system prompts and procedural items: rebuild the tiny models when they change.
TOKENIZER_TEXT := $(wildcard codedance_cli/procedural/*.py) codedance_cli/loop/prompts.py
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test install system-deps tiny-model sandbox-image clean

# torch is pinned first: 2.13.0 is the CPU build; an unpinned torch pulls GBs of CUDA wheels.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	bash scripts/pip_install.sh $(PIP) --upgrade pip
	bash scripts/pip_install.sh $(PIP) torch==2.13.0
	bash scripts/pip_install.sh $(PIP) -e '.[dev,serve,train]'   # pip_install.sh: pip minus one machine-config warning
	touch $@

install: $(VENV)/.installed

system-deps:
	bash scripts/system_deps.sh

# Offline build (debootstrap + docker import); a no-op when the image already holds the current worker package.
sandbox-image: system-deps | $(VENV)/.installed
	$(VENV)/bin/codedance sandbox build-image

$(TINY_MODEL)/config.json: scripts/make_tiny_model.py $(TOKENIZER_TEXT) | $(VENV)/.installed
	$(PY) scripts/make_tiny_model.py $(TINY_MODEL)

# The nano judge is text-only, like the paper's Qwen2.5-72B-Instruct judge.
$(TINY_JUDGE)/config.json: scripts/make_tiny_model.py $(TOKENIZER_TEXT) | $(VENV)/.installed
	$(PY) scripts/make_tiny_model.py --text-only $(TINY_JUDGE)

tiny-model: $(TINY_MODEL)/config.json $(TINY_JUDGE)/config.json

test: install system-deps tiny-model sandbox-image
	CODEDANCE_TINY_MODEL=$(abspath $(TINY_MODEL)) CODEDANCE_TINY_JUDGE=$(abspath $(TINY_JUDGE)) $(PY) -m pytest -q

demo: install system-deps tiny-model
	CODEDANCE_TINY_MODEL=$(abspath $(TINY_MODEL)) bash scripts/demo.sh

clean:
	rm -rf $(VENV) $(CACHE) artifacts
