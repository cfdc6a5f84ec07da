# Every target creates .venv and installs the course into it on first use,
# so each one works alone on a fresh clone. Needs Python 3.10+ and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fedmed-lab-installed
KERNEL := fedmed-lab
EXTRAS := test,flower

# Keep every tool the course starts from contacting anything but the
# package index during installation.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export JUPYTER_PLATFORM_DIRS := 1

NBVAL_FLAGS := --nbval --nbval-kernel-name $(KERNEL) \
	--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 300

.PHONY: course test notebooks lab install clean

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
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest $(NBVAL_FLAGS) notebooks

notebooks: $(STAMP)
	$(BIN)/fedmed-lab execute-notebooks --in-place notebooks/*.ipynb

lab: $(STAMP)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser notebooks

clean:
	rm -rf build
