"""GPIO over qtest: inputs by name, the light with timestamps, resets, reconnects."""

from __future__ import annotations

import time

import pytest

from gateway.rig import BLUE, GREEN, RED, EmulatedBoard, Gpio

pytestmark = pytest.mark.hil


@pytest.fixture
def mirror(board: EmulatedBoard, mirror_main: bytes) -> EmulatedBoard:
    board.install({"main.py": mirror_main})
    board.gpio.wait_light(0, timeout=2)
    return board


def test_inputs_reach_the_light_with_timestamps(mirror: EmulatedBoard) -> None:
    gpio = mirror.gpio
    gpio.clear_history()
    t_in = gpio.hang_up()  # hanger 1: mirrored to red
    t_out = gpio.wait_light(RED, since_ns=t_in, timeout=2)
    assert 0 < t_out - t_in < 500_000_000  # the loop polls every 2 ms
    assert gpio.light() == RED
    assert (t_out, RED) in gpio.light_history()

    t_in = gpio.press("ready")
    assert gpio.wait_light(RED | GREEN, since_ns=t_in, timeout=2) > t_in
    gpio.press("wrap")
    gpio.wait_light(RED | GREEN | BLUE, timeout=2)
    gpio.lift()
    gpio.release("ready")
    gpio.release("wrap")
    t_off = gpio.wait_light(0, timeout=2)

    history = gpio.light_history()
    assert [t for t, _ in history] == sorted(t for t, _ in history)
    assert history[-1] == (t_off, 0)


def test_wait_light_takes_a_predicate_and_times_out(mirror: EmulatedBoard) -> None:
    gpio = mirror.gpio
    t_in = gpio.hang_up()  # hanger 1: mirrored to red
    assert gpio.wait_light(lambda rgb: bool(rgb & RED), since_ns=t_in, timeout=2) >= t_in
    with pytest.raises(TimeoutError):
        gpio.wait_light(BLUE, timeout=0.2)


def test_unknown_input_name(board: EmulatedBoard) -> None:
    with pytest.raises(KeyError, match="hanger"):
        board.gpio.press("nope")


def test_reset_reapplies_driven_inputs(mirror: EmulatedBoard) -> None:
    gpio = mirror.gpio
    gpio.hang_up()  # hanger 1: mirrored to red
    gpio.wait_light(RED, timeout=2)
    t_reset = time.monotonic_ns()
    mirror.reset()
    # Reset turns the outputs off; main.py then mirrors the re-driven hanger again.
    t_dark = gpio.wait_light(0, since_ns=t_reset + 1, timeout=2)
    assert gpio.wait_light(RED, since_ns=t_dark + 1, timeout=3) > t_dark


def test_cpu_reset_through_qtest(mirror: EmulatedBoard) -> None:
    gpio = mirror.gpio
    gpio.press("wrap")
    gpio.wait_light(BLUE, timeout=2)
    t_reset = time.monotonic_ns()
    gpio.reset()  # AIRCR SYSRESETREQ written over qtest
    t_dark = gpio.wait_light(0, since_ns=t_reset + 1, timeout=2)
    assert gpio.wait_light(BLUE, since_ns=t_dark + 1, timeout=3) > t_dark


def test_firmware_reset_is_noticed(mirror: EmulatedBoard) -> None:
    """machine.reset() from the board: the rig learns of it (QMP RESET) and re-drives."""
    gpio = mirror.gpio
    gpio.hang_up()  # hanger 1: mirrored to red
    gpio.wait_light(RED, timeout=2)
    t_reset = time.monotonic_ns()
    with mirror.repl() as repl:
        repl.hard_reset()
    t_dark = gpio.wait_light(0, since_ns=t_reset + 1, timeout=2)
    assert gpio.wait_light(RED, since_ns=t_dark + 1, timeout=3) > t_dark


def test_a_new_client_sees_a_light_already_on_and_its_fall(mirror: EmulatedBoard) -> None:
    """qtest forgets reported levels on connect; the rig re-reads them from the registers."""
    mirror.gpio.press("ready")
    mirror.gpio.wait_light(GREEN, timeout=2)
    address = mirror.gpio_address
    mirror.release_gpio()
    with Gpio.connect(address) as gpio:
        assert gpio.light() == GREEN
        # ready is still driven high from the first connection
        t_in = gpio.release("ready")
        assert gpio.wait_light(0, since_ns=t_in, timeout=2) > t_in


def test_bad_line_is_refused_before_it_can_abort_qemu(board: EmulatedBoard) -> None:
    from gateway.rig.qtest import QtestPort

    board.release_gpio()
    port = QtestPort.connect(board.gpio_address)
    try:
        with pytest.raises(ValueError):
            port.drive(32, 1)
        assert port.readl(0x50000514) != 0  # still talking; QEMU alive
    finally:
        port.close()
    assert board.running
