"""Hold: the reminder pattern, the over-limit alert, and the hook left alone on hold."""

from __future__ import annotations

import time

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, SettingKey, State, Why
from hil_tests.dut import OFF, RED, WHITE, YELLOW
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil

REMIND_S, LIMIT_S = 5, 6  # the shortest the seat takes: the reminder, then the limit 1 s on


def test_hold_reminder_then_over_limit_alert(seat: Seat) -> None:
    seat.settings({SettingKey.HOLD_REMIND_S: REMIND_S, SettingKey.HOLD_LIMIT_S: LIMIT_S})
    seat.login()
    seat.send(messages.connected(401))
    seat.wait_state(State.TALKING)
    held = time.monotonic_ns()
    seat.send(messages.hold(401))
    assert seat.wait_state(State.HOLD, why=Why.HOST).call == 401
    if seat.sees_light:
        seat.expect_blinking(YELLOW, OFF, since_ns=held)
        # the reminder: white 100 ms on / 100 ms off for 1 s every REMIND_S
        seat.wait_colours([WHITE, OFF, WHITE], timeout=REMIND_S + 3, since_ns=held)
    over = seat.wait_event(EventCode.HOLD_OVER_LIMIT, state=State.HOLD, timeout=LIMIT_S + 3)
    assert over.call == 401
    assert over.ms is not None and over.ms >= LIMIT_S * 1000
    if seat.sees_light:
        seat.expect_blinking(RED, YELLOW)  # over the limit: red / yellow every 125 ms
    snapshot = seat.snapshot()
    assert snapshot.state is State.HOLD and snapshot.hold_over_limit
    assert len(seat.events(EventCode.HOLD_OVER_LIMIT)) == 1  # one alert per hold

    seat.send(messages.hold(401, on=False))
    seat.wait_state(State.TALKING, why=Why.HOST)
    if seat.sees_light:
        seat.expect_steady(RED)
    assert not seat.snapshot().hold_over_limit


@pytest.mark.gpio
def test_hanging_up_on_hold_does_not_release_the_call(seat: Seat) -> None:
    seat.login()
    seat.send(messages.offer(402))
    seat.wait_state(State.RINGING)
    seat.lift()
    seat.wait_state(State.TALKING, why=Why.HOOK)
    seat.send(messages.hold(402))
    seat.wait_state(State.HOLD)
    since = seat.mark()
    seat.hang_up()  # the agent steps away with the caller on hold
    assert seat.wait_event(EventCode.HOOK, since=since).on is False
    seat.settle()
    seat.no_state_change(since=since)
    assert not seat.events(EventCode.RELEASED, since=since)
    snapshot = seat.snapshot()
    assert (snapshot.state, snapshot.call, snapshot.off_hook) == (State.HOLD, 402, False)
    seat.expect_blinking(YELLOW, OFF)
    seat.send(messages.released(402))  # the far end hangs up: ACW, as ever
    seat.wait_state(State.ACW, why=Why.HOST)
    seat.expect_steady(YELLOW)
