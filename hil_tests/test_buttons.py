"""Agent states from the READY and HELP buttons, with the light checked (docs/seat.md)."""

from __future__ import annotations

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Reason, SettingKey, State, Why
from hil_tests.dut import BLUE, GREEN, MAGENTA, OFF
from hil_tests.seat import Seat

pytestmark = [pytest.mark.hil, pytest.mark.gpio]


def test_ready_press_logs_in_and_the_light_turns_green(seat: Seat) -> None:
    seat.expect_steady(OFF)
    seat.press("ready")
    event = seat.wait_state(State.READY, why=Why.BUTTON)
    assert event.reason is None
    seat.expect_steady(GREEN)


def test_ready_press_in_ready_pauses_and_quick_presses_step_the_reason(seat: Seat) -> None:
    seat.press("ready")
    seat.wait_state(State.READY)
    seat.press("ready")
    seat.wait_state(State.NOT_READY, reason=Reason.BREAK, why=Why.BUTTON)
    seat.expect_steady(BLUE)
    # pressed again within step_ms (2 s): the next reason, the light stays blue
    seat.press("ready")
    seat.wait_state(State.NOT_READY, reason=Reason.MEAL, why=Why.BUTTON)
    seat.press("ready")
    seat.wait_state(State.NOT_READY, reason=Reason.MEETING, why=Why.BUTTON)
    seat.expect_steady(BLUE)
    assert seat.snapshot().reason is Reason.MEETING


def test_ready_press_after_the_step_time_returns_to_ready(seat: Seat) -> None:
    seat.settings({SettingKey.STEP_MS: 300})
    seat.press("ready")
    seat.wait_state(State.READY)
    seat.press("ready")
    seat.wait_state(State.NOT_READY, reason=Reason.BREAK)
    seat.wait_light(BLUE)
    seat.pump(0.5)  # longer than step_ms: the next press does not step the reason
    seat.press("ready")
    seat.wait_state(State.READY, why=Why.BUTTON)
    seat.expect_steady(GREEN)


def test_long_ready_press_logs_out(seat: Seat) -> None:
    seat.settings({SettingKey.LONG_MS: 1000})
    seat.press("ready")
    seat.wait_state(State.READY)
    seat.wait_light(GREEN)
    held = seat.set_input("ready", 1)
    seat.wait_state(State.LOGGED_OUT, why=Why.BUTTON, timeout=4)
    seat.wait_light(OFF, since_ns=held)  # while the button is still held
    since = seat.mark()
    seat.set_input("ready", 0)
    seat.settle()
    seat.no_state_change(since=since)  # the release that ends a long press is no press
    seat.expect_steady(OFF)


def test_help_press_asks_for_help_with_a_magenta_flash_and_again_clears_it(seat: Seat) -> None:
    seat.press("ready")
    seat.wait_state(State.READY)
    since = seat.mark()
    pressed = seat.press("help")
    asked = seat.wait_event(EventCode.HELP)
    assert asked.on is True and asked.state is State.READY
    # the help overlay: magenta for 300 ms of every 2 s cycle, over the state's green
    seat.wait_colours([MAGENTA, GREEN], timeout=3, since_ns=pressed)
    assert seat.snapshot().help
    seat.press("help")
    cleared = seat.wait_event(EventCode.HELP)
    assert cleared.on is False
    assert not seat.snapshot().help
    seat.no_state_change(since=since)  # HELP leaves the state alone


def test_idle_not_ready_seat_logs_itself_out(seat: Seat) -> None:
    seat.settings({SettingKey.IDLE_S: 1})
    seat.press("ready")
    seat.wait_state(State.READY)
    seat.press("ready")
    seat.wait_state(State.NOT_READY, reason=Reason.BREAK)
    seat.wait_state(State.LOGGED_OUT, why=Why.TIMER, timeout=4)
    seat.expect_steady(OFF)
    seat.send(messages.set_state(State.READY))  # the host can log it back in
    seat.wait_state(State.READY, why=Why.HOST)
    seat.expect_steady(GREEN)
