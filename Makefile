# `make run` and `make test` do all set-up on a fresh Debian machine (as root, apt packages too).
PYTHON ?= python3
VENV ?= .venv
CADC_VENV ?= .cadc-venv
CANFAR_VENV ?= .canfar-venv
JUPYTER_VENV ?= .jupyter-venv
# Debian's python3: the one sessions see (the host's /usr)
SANDBOX_PYTHON := /usr/bin/python3
BIN := $(VENV)/bin
APT_PACKAGES := postgresql attr acl fuse3 curl bubblewrap python3-numpy python3-astropy nginx-light chromium chromium-driver docker-compose \
  xvfb openbox xterm x11vnc novnc websockify python3-venv
# Debian packages only the benchmarks need (their references: rclone's mounts and server)
BENCH_APT_PACKAGES := rclone
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test system-deps bench-deps setup cadc-client canfar-client jupyter bench clean

run: setup jupyter
	$(BIN)/vospace serve --tls --data-port 8444

# Most tests wait on servers, sandboxes, mounts and browsers rather than compute, so four
# workers (each with its own servers on free ports) finish in about half the time even on
# two cores. `make test TEST_WORKERS=0` runs them in one process.
TEST_WORKERS ?= 4
test: system-deps setup cadc-client canfar-client jupyter
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Debian packages the tests need; installed only when missing and only when root.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "please install: $$missing" >&2; exit 1; fi; fi

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,fuse,test]'
	touch $@

# The reference CADC client (PyPI `vos`) in its own virtualenv so its pins never fight ours.
cadc-client: $(CADC_VENV)/.installed

$(CADC_VENV)/.installed:
	$(PYTHON) -m venv $(CADC_VENV)
	$(CADC_VENV)/bin/pip install -q 'vos>=3.6'
	touch $@

# CADC's session client (PyPI `canfar`), pinned, in its own virtualenv. typer 0.29 dropped a
# module canfar 1.5.2 imports (`canfar create` fails with ModuleNotFoundError), hence its pin.
CANFAR_PINS := canfar==1.5.2 typer==0.28.0
canfar-client: $(CANFAR_VENV)/.installed

$(CANFAR_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(CANFAR_VENV)
	$(CANFAR_VENV)/bin/pip install -q $(CANFAR_PINS)
	touch $@

# JupyterLab for the default notebook image (images.toml), bound read-only into its sessions;
# Debian's python3 with its site-packages, so notebooks see Debian's numpy and astropy.
jupyter: $(JUPYTER_VENV)/.installed

$(JUPYTER_VENV)/.installed:
	$(SANDBOX_PYTHON) -m venv --system-site-packages $(JUPYTER_VENV)
	$(JUPYTER_VENV)/bin/pip install -q jupyterlab
	touch $@

# Every benchmark runs even when an earlier one misses a target; each records its targets
# (bench/summary.py) in a fresh file, printed as one table at the end, whose exit status says
# if any was missed (or a script stopped early).
bench-deps:
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(BENCH_APT_PACKAGES)"

bench: system-deps bench-deps setup cadc-client jupyter
	@results=$$(mktemp --suffix=.bench); export VOSPACE_BENCH_RESULTS=$$results; \
	for b in nodes transfer client arcfs sessions scale web; do \
	  $(BIN)/python bench/$$b.py; $(BIN)/python bench/summary.py finished $$results $$b $$?; done; \
	$(BIN)/python bench/summary.py table $$results; status=$$?; rm -f $$results; exit $$status

clean:
	rm -rf $(VENV) $(CADC_VENV) $(CANFAR_VENV) $(JUPYTER_VENV)
