# Every target creates .venv and installs the course into it on first use,
# so each one works alone on a fresh clone. Needs Python 3.10+ and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fedmed-lab-installed
KERNEL := fedmed-lab
EXTRAS := test,browser,flower

# Keep every tool the course starts from contacting anything but the
# package index during installation.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export JUPYTER_PLATFORM_DIRS := 1

NBVAL_FLAGS := --nbval --nbval-kernel-name $(KERNEL) \
	--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 300

.PHONY: course test test-browser site notebooks lab voila install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/fedmed-lab install-kernel
	touch $(STAMP)

install: $(STAMP)

course: $(STAMP)
	$(BIN)/fedmed-lab run-course

test: $(STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/browser
	$(BIN)/python -m pytest $(NBVAL_FLAGS) notebooks

# Headless Chromium from /usr/bin/chromium (Debian's package) against Voila,
# JupyterLab and the built site, all on 127.0.0.1. Screenshots: build/screenshots/.
test-browser: $(STAMP)
	$(BIN)/python -m pytest tests/browser

# Static HTML course from the committed notebooks and their stored outputs.
site: $(STAMP)
	$(BIN)/python -m fedmed_lab.website --output build/site

notebooks: $(STAMP)
	$(BIN)/fedmed-lab execute-notebooks --in-place notebooks/*.ipynb

# JupyterLab refuses to start as root without --allow-root (containers often run as root).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser $(ROOT_FLAG) --LabApp.app_settings_dir=jupyter

# The chapters as dashboards, code hidden; the 'fedmed' template in
# jupyter/voila/templates loads nothing from a CDN.
voila: $(STAMP)
	JUPYTER_PATH=jupyter $(BIN)/voila --template=fedmed --Voila.ip=127.0.0.1 --no-browser notebooks

clean:
	rm -rf build
