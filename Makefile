# The two commands a new user needs: `make demo` and `make test`.
# Both create (or reuse) .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-install only when the dependency list changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint setup app bench clean bundle bundle-test

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bpd demo

app: $(STAMP)
	$(VENV)/bin/bpd-gui

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The hospital bundle (docs/packaging.md): dist/bpd-studio/, or dist/bpd-studio-gpu/ with
# VARIANT=gpu. WEIGHTS=INIT=FILE puts pretrained weights inside. Needs only the bundle
# extra (PyInstaller), not the dev tools.
VARIANT ?= cpu
WEIGHTS ?=
BUNDLE_STAMP := $(VENV)/.bundle-$(shell cksum pyproject.toml | cut -d' ' -f1)

$(BUNDLE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[bundle]'
	rm -f $(VENV)/.bundle-*
	touch $(BUNDLE_STAMP)

bundle: $(BUNDLE_STAMP)
	BPD_BUNDLE_VARIANT=$(VARIANT) BPD_BUNDLE_WEIGHTS='$(WEIGHTS)' $(PY) -m PyInstaller \
		--noconfirm --clean --workpath build/bundle --distpath dist packaging/bpd_studio.spec

# Clean checkout of HEAD, its own venv, the bundle, then the frozen self-test, a short
# training run, and the frozen app's screenshots. Minutes; not part of `make test`.
bundle-test:
	bash packaging/bundle_test.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
