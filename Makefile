# seatlink developer and CI entry points. `make test` is what .ci/run runs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.stamp

# Debian packages the emulated-board tests, the wallboard test (chromium) and the demo need.
DEB_PKGS := qemu-system-arm firmware-microbit-micropython mosquitto mosquitto-clients chromium

# Board file : MicroPython port whose stubs it is type-checked against.
BOARD_PORTS := pico:rp2 esp32:esp32

# Lint only the directories that exist (hil_tests/ and tools/ may not yet). The firmware is
# linted too: pyflakes catches a missing import that the bundle's inlining would hide.
RUFF_PATHS := $(wildcard firmware boards gateway tests hil_tests tools)

.PHONY: deps venv test hil lint typecheck typecheck-boards demo bench clean

deps:
	@missing=""; \
	for p in $(DEB_PKGS); do \
	  dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "deps: need root or sudo to install:$$missing" >&2; exit 1; fi; \
	echo "deps: installing$$missing"; \
	$$sudo apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

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

# The HIL suite runs here on virtual seats (the bundled firmware under CPython in real time):
# the firmware does not boot on the emulated micro:bit v1 yet (heap, see docs/seat.md), so the
# QEMU run is `make hil` until it does. The rig's own QEMU tests are in tests/rig.
test: deps lint typecheck typecheck-boards
	$(BIN)/pytest
	$(BIN)/pytest hil_tests --backend virtual

# The HIL suite against emulated micro:bits (QEMU); PORT=/dev/ttyACM0 for a real board.
hil: deps venv
	$(BIN)/pytest hil_tests $(if $(PORT),--port $(PORT))

demo: deps venv
	$(BIN)/seatlink demo

bench: deps venv
	$(PY) -m tools.bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis artifacts build dist *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
