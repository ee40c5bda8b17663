# seatlink developer and CI entry points. `make test` is what .ci/run runs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.stamp

# Debian packages the emulated-board tests, the wallboard test (chromium) and the demo need.
DEB_PKGS := qemu-system-arm firmware-microbit-micropython mosquitto mosquitto-clients chromium
# ... and those that build the micro:bit v1 image from Debian's source (gateway/image): apt-get
# source (dpkg-dev), the port's patch, yotta's cmake/ninja build and the ARM toolchain with the
# v6-m C++ libraries its link needs.
IMAGE_PKGS := dpkg-dev patch cmake ninja-build gcc-arm-none-eabi libnewlib-arm-none-eabi \
	libstdc++-arm-none-eabi-newlib srecord yotta python3-setuptools
# Where `make image` leaves a copy of the image (the image itself is cached outside the clone).
IMAGE := build/seatlink-microbit.hex

# Board file : MicroPython port whose stubs it is type-checked against.
BOARD_PORTS := pico:rp2 esp32:esp32

# Lint only the directories that exist (hil_tests/ and tools/ may not yet). The firmware is
# linted too: pyflakes catches a missing import that the bundle's inlining would hide.
RUFF_PATHS := $(wildcard firmware boards gateway tests hil_tests tools)

.PHONY: deps venv image test hil lint typecheck typecheck-boards demo bench clean

# Installs only what is missing; the deb-src entry (tools/deb_src.py) only when apt cannot
# find the firmware's source package yet. apt waits for another apt (a desktop's updater).
deps:
	@missing=""; \
	for p in $(DEB_PKGS) $(IMAGE_PKGS); do \
	  dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ] && apt-cache showsrc firmware-microbit-micropython 2>/dev/null \
	    | grep -q '^Package:'; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "deps: need root or sudo to install:$$missing" >&2; exit 1; fi; \
	apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $$apt update -q && $$apt install -y -q --no-install-recommends $$missing || exit 1; \
	fi; \
	$$sudo python3 tools/deb_src.py

venv: $(STAMP)

# Re-run only when pyproject.toml changes (or the venv is missing or broken).
# The board stubs go into one directory per port, not into site-packages: see pyproject.toml.
$(STAMP): pyproject.toml
	@$(PY) -c 'import sys' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@set -e; for port in $$(echo "$(BOARD_PORTS)" | tr ' ' '\n' | cut -d: -f2 | sort -u); do \
	  reqs=$$($(PY) -c 'import sys, tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["stubs-" + sys.argv[1]]))' $$port); \
	  echo "stubs: $$reqs -> $(VENV)/stubs/$$port"; \
	  rm -rf $(VENV)/stubs/$$port; \
	  $(PY) -m pip install -q --no-compile --target $(VENV)/stubs/$$port $$reqs; \
	done
	@touch $@

lint: venv
	$(BIN)/ruff check $(RUFF_PATHS)

typecheck: venv
	$(BIN)/mypy gateway

# Each board file against its own port's stubs, one mypy run per board (see tools/mypy-boards.ini).
typecheck-boards: venv
	@set -e; for bp in $(BOARD_PORTS); do \
	  board=$${bp%%:*}; port=$${bp##*:}; \
	  echo "mypy boards/$$board.py (micropython-$$port-stubs)"; \
	  MYPYPATH=$(VENV)/stubs/$$port $(BIN)/mypy --config-file tools/mypy-boards.ini \
	    --custom-typeshed-dir $(VENV)/stubs/$$port --cache-dir .mypy_cache/board-$$port \
	    boards/$$board.py; \
	done

# The micro:bit v1 image (MicroPython 1.9.2 with the firmware frozen in), built when an input
# changed, else taken from the cache (gateway/image). Under CI=true it is built afresh from
# `apt-get source`, as on a fresh machine.
image: deps venv
	$(BIN)/seatlink image --out $(IMAGE) $(if $(filter true,$(CI)),--fresh)

# The HIL suite on the emulated micro:bit v1 running the image (QEMU).
# The suites that share no board, process or timing run on two workers, a test file to each
# (its fixtures and broker stay in one process); the ones that drive emulated boards, seat
# processes and fault timings run alone, as they were shown to fail beside another worker on
# 2 cores. The slowest of each part are printed.
PARALLEL_TESTS := tests/api tests/core tests/contract tests/firmware tests/seatlink
test: deps image lint typecheck typecheck-boards
	$(BIN)/pytest -n 2 --dist loadfile --durations=10 $(PARALLEL_TESTS)
	$(BIN)/pytest --durations=10 $(addprefix --ignore=,$(PARALLEL_TESTS))
	$(BIN)/pytest hil_tests

# The HIL suite against emulated micro:bits (QEMU); PORT=/dev/ttyACM0 for a real board.
hil: deps image
	$(BIN)/pytest hil_tests $(if $(PORT),--port $(PORT))

demo: deps image
	$(BIN)/seatlink demo

bench: deps image
	$(PY) -m tools.bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis artifacts build dist *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
