"""Hardware-in-the-loop fixtures: one seat board for the whole run, reset before each test.

    pytest hil_tests                          # emulated micro:bit in QEMU (default)
    pytest hil_tests --backend virtual        # the firmware under CPython, in real time
    pytest hil_tests --port /dev/ttyACM0      # a real board: protocol tests only

Tests marked `gpio` drive the seat's inputs or watch its light; they are skipped on a real
board, where nothing does. When a test fails, the board's whole serial log (with inputs,
resets and light changes) goes to artifacts/hil/<test>.serial.log (see serial_log.py).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from gateway.rig.qemu import unavailable_reason
from hil_tests.dut import AT_REST, BACKENDS, INPUTS, Dut, DutError, open_dut
from hil_tests.seat import Seat
from hil_tests.serial_log import attach, log_dir, save, save_for_report


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop tests (hil_tests/)")
    group.addoption("--backend", choices=BACKENDS, default=None,
                    help="what runs the seat firmware: qemu (default), virtual (CPython, "
                         "real time) or serial (a real board, needs --port)")  # fmt: skip
    group.addoption("--port", default=None, metavar="DEVICE",
                    help="a real seat board's serial device, e.g. /dev/ttyACM0 "
                         "(implies --backend serial)")  # fmt: skip
    group.addoption("--hil-log-dir", default=None, metavar="DIR",
                    help="where failed tests' serial logs go (default: next to --junitxml's "
                         "report, else artifacts/hil)")  # fmt: skip


def backend_of(config: pytest.Config) -> str:
    backend: str | None = config.getoption("backend", None)
    port: str | None = config.getoption("port", None)
    if port and backend not in (None, "serial"):
        raise pytest.UsageError(f"--port is a real board's device: it goes with --backend "
                                f"serial, not {backend}")  # fmt: skip
    if backend == "serial" and not port:
        raise pytest.UsageError("--backend serial needs --port DEVICE (e.g. /dev/ttyACM0)")
    return "serial" if port else backend or "qemu"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if backend_of(config) != "serial":
        return
    skip = pytest.mark.skip(
        reason="needs the seat's pins: nothing drives a real board's "
        "inputs or watches its light (--port runs protocol tests)"
    )
    for item in items:
        if item.get_closest_marker("gpio") is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    save_for_report(item, report)
    return report


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config) -> str:
    return backend_of(pytestconfig)


@pytest.fixture(scope="session")
def board(pytestconfig: pytest.Config, backend: str) -> Iterator[Dut]:
    """The board for the whole run, booted once with the firmware. If it never greets the
    host, this fails (once, cached by pytest) and every test reports why."""
    if backend == "qemu" and (missing := unavailable_reason()):
        if os.environ.get("CI") == "true":  # CI installs QEMU: a missing one is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    dut = open_dut(backend, device=pytestconfig.getoption("port"))
    try:
        dut.start()
        Seat(dut).reboot()
    except BaseException as exc:
        try:
            text = dut.serial_log_text()
        except Exception as log_exc:
            text = f"# the serial log could not be read: {log_exc!r}\n"
        path = save(log_dir(pytestconfig), f"{backend}-boot", text)
        dut.stop()
        if isinstance(exc, Exception):
            raise DutError(f"{exc}\n(the board's whole serial log: {path})") from exc
        raise
    try:
        yield dut
    finally:
        dut.stop()


@pytest.fixture
def seat(board: Dut, request: pytest.FixtureRequest) -> Iterator[Seat]:
    """The board just reset with its desk at rest (the headset on its hanger, nothing
    pressed), greeted by a fresh host session."""
    attach(request.node, board)  # before anything can fail: its log is saved either way
    board.note(f"test {request.node.nodeid}")
    if board.drives_inputs:
        for name in INPUTS:
            board.set_input(name, AT_REST.get(name, 0))
    handle = Seat(board)
    handle.reboot()
    handle.settle()
    yield handle
    board.note(f"end of test {request.node.nodeid}")
    board.check()
