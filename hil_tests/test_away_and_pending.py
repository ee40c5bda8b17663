"""Away on hook, and state changes asked for during a call (pending until it ends)."""

from __future__ import annotations

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Reason, SettingKey, State, Why
from hil_tests.dut import BLUE, GREEN, RED
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil


@pytest.mark.gpio
def test_headset_on_hook_in_ready_goes_away(seat: Seat) -> None:
    seat.settings({SettingKey.AWAY_S: 1})
    seat.lift()
    seat.press("ready")
    seat.wait_state(State.READY, why=Why.BUTTON)
    since = seat.mark()
    seat.expect_steady(GREEN, for_s=1.5)  # off hook for longer than away_s: still Ready
    seat.no_state_change(since=since)
    hung_up = seat.hang_up()
    seat.wait_state(State.NOT_READY, reason=Reason.AWAY, why=Why.HOOK, timeout=4)
    seat.wait_light(BLUE, since_ns=hung_up)
    seat.expect_steady(BLUE)


@pytest.mark.gpio
def test_ready_press_during_a_call_waits_for_the_end_of_after_call_work(seat: Seat) -> None:
    seat.login()
    seat.send(messages.offer(501))
    seat.wait_state(State.RINGING)
    seat.lift()
    seat.wait_state(State.TALKING)
    pressed = seat.press("ready")
    pending = seat.wait_event(EventCode.PENDING, state=State.TALKING)
    assert (pending.pending_state, pending.pending_reason) == (State.NOT_READY, Reason.BREAK)
    seat.press("ready")  # again within step_ms (2 s): the next reason, still pending
    assert seat.wait_event(EventCode.PENDING).pending_reason is Reason.MEAL
    # pending overlay: blue for the first 200 ms of each 2 s cycle, over talking's red
    seat.wait_colours([BLUE, RED], timeout=3, since_ns=pressed)
    snapshot = seat.snapshot()
    assert snapshot.state is State.TALKING
    assert (snapshot.pending_state, snapshot.pending_reason) == (State.NOT_READY, Reason.MEAL)

    seat.hang_up()
    seat.wait_state(State.ACW, why=Why.HOOK)
    assert seat.snapshot().pending_state is State.NOT_READY  # still pending through ACW
    seat.press("wrap")
    seat.wait_state(State.NOT_READY, reason=Reason.MEAL, why=Why.BUTTON)
    seat.expect_steady(BLUE)
    assert seat.snapshot().pending_state is None


@pytest.mark.gpio
def test_a_later_ready_press_withdraws_the_pending_change(seat: Seat) -> None:
    seat.settings({SettingKey.STEP_MS: 300})
    seat.login()
    seat.send(messages.connected(502))
    seat.wait_state(State.TALKING)
    seat.press("ready")
    assert seat.wait_event(EventCode.PENDING).pending_state is State.NOT_READY
    seat.pump(0.5)  # past step_ms: this press withdraws instead of stepping the reason
    seat.press("ready")
    withdrawn = seat.wait_event(EventCode.PENDING)
    assert withdrawn.pending_state is None and withdrawn.a == -1
    seat.send(messages.released(502))
    seat.wait_state(State.ACW)
    seat.press("wrap")
    seat.wait_state(State.READY, why=Why.BUTTON)
    seat.expect_steady(GREEN)


def test_host_state_change_while_ringing_applies_when_the_offer_is_cancelled(seat: Seat) -> None:
    seat.login()
    seat.send(messages.offer(503))
    seat.wait_state(State.RINGING)
    seat.send(messages.set_state(State.NOT_READY, reason=Reason.MEETING))
    pending = seat.wait_event(EventCode.PENDING, state=State.RINGING)
    assert (pending.pending_state, pending.pending_reason) == (State.NOT_READY, Reason.MEETING)
    seat.send(messages.cancel(503))
    seat.wait_state(State.NOT_READY, reason=Reason.MEETING, why=Why.HOST)
    if seat.sees_light:
        seat.expect_steady(BLUE)


def test_ring_no_answer_that_pauses_the_seat_discards_the_pending_change(seat: Seat) -> None:
    seat.login()
    seat.send(messages.offer(504, ring_limit=1, ring_ms=1000))
    seat.wait_state(State.RINGING)
    seat.send(messages.set_state(State.NOT_READY, reason=Reason.MEAL))
    seat.wait_event(EventCode.PENDING)
    seat.wait_event(EventCode.RING_NO_ANSWER, timeout=4)
    seat.wait_state(State.NOT_READY, reason=Reason.NO_ANSWER, why=Why.TIMER)  # RONA wins
    snapshot = seat.snapshot()
    assert (snapshot.reason, snapshot.pending_state) == (Reason.NO_ANSWER, None)
