"""A call at the desk: answer and release by hook, after-call work by timer and by WRAP."""

from __future__ import annotations

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Reason, SettingKey, State, Why
from hil_tests.dut import BLUE, GREEN, OFF, RED, YELLOW
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil


def talk(seat: Seat, call: int) -> None:
    """Ready, then `call` offered and answered by lifting the handset."""
    seat.login()
    seat.send(messages.offer(call))
    seat.wait_state(State.RINGING)
    seat.lift()
    seat.wait_state(State.TALKING, why=Why.HOOK)


@pytest.mark.gpio
def test_offer_rings_and_lifting_the_handset_answers(seat: Seat) -> None:
    seat.login()
    seat.expect_steady(GREEN)
    offered = seat.mark()
    seat.send(messages.offer(101))
    ringing = seat.wait_state(State.RINGING, why=Why.HOST)
    assert ringing.call == 101
    seat.expect_blinking(RED, OFF, cycles=1)
    seat.lift()
    hook = seat.wait_event(EventCode.HOOK, since=offered)
    assert hook.on is True
    answered = seat.wait_event(EventCode.ANSWERED, state=State.RINGING)
    talking = seat.wait_state(State.TALKING, why=Why.HOOK)
    assert answered.call == talking.call == 101
    seat.expect_steady(RED)
    snapshot = seat.snapshot()
    assert (snapshot.state, snapshot.call, snapshot.off_hook, snapshot.misses) == (
        State.TALKING, 101, True, 0,
    )  # fmt: skip


@pytest.mark.gpio
def test_hanging_up_releases_the_call_into_after_call_work(seat: Seat) -> None:
    talk(seat, 102)
    since = seat.mark()
    seat.hang_up()
    assert seat.wait_event(EventCode.HOOK, since=since).on is False
    released = seat.wait_event(EventCode.RELEASED, state=State.TALKING)
    assert released.why is Why.HOOK and released.call == 102
    seat.wait_state(State.ACW, why=Why.HOOK)
    seat.expect_steady(YELLOW)


def test_after_call_work_timer_returns_to_ready(seat: Seat) -> None:
    seat.settings({SettingKey.ACW_S: 1})
    seat.login()
    seat.send(messages.connected(201))
    seat.wait_state(State.TALKING, why=Why.HOST)
    seat.send(messages.released(201))
    assert seat.wait_event(EventCode.RELEASED).why is Why.HOST
    seat.wait_state(State.ACW, why=Why.HOST)
    if seat.sees_light:
        seat.wait_light(YELLOW)
    seat.wait_state(State.READY, why=Why.TIMER, timeout=4)
    if seat.sees_light:
        seat.expect_steady(GREEN)


def test_after_call_work_timer_stays_not_ready_when_set(seat: Seat) -> None:
    seat.settings({SettingKey.ACW_S: 1, SettingKey.ACW_STAY_NR: 1})
    seat.login()
    seat.send(messages.connected(202))
    seat.wait_state(State.TALKING)
    seat.send(messages.released(202))
    seat.wait_state(State.ACW)
    seat.wait_state(State.NOT_READY, reason=Reason.WRAP, why=Why.TIMER, timeout=4)
    if seat.sees_light:
        seat.expect_steady(BLUE)


@pytest.mark.gpio
def test_wrap_press_ends_after_call_work_early(seat: Seat) -> None:
    talk(seat, 203)  # default acw_s: 60 s, far longer than this test
    seat.hang_up()
    seat.wait_state(State.ACW)
    seat.wait_light(YELLOW)
    seat.press("wrap")
    seat.wait_state(State.READY, why=Why.BUTTON)
    seat.expect_steady(GREEN)
    since = seat.mark()
    seat.press("wrap")  # outside ACW, WRAP does nothing
    seat.settle()
    seat.no_state_change(since=since)
