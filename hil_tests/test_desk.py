"""The agent at the desk on the board: the call button (ANSWER), the headset hanger, auto-
answer, the sign-in the gateway tells the seat (N), and how K and L end (issue 19)."""

from __future__ import annotations

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import ErrorCode, EventCode, SettingKey, State, Why
from gateway.seatlink.messages import Command, Reject
from hil_tests.dut import GREEN, OFF, RED, YELLOW
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil


def rejected(seat: Seat, command: Command) -> Reject:
    seq = seat.send(command)
    return seat.wait_message(Reject, lambda r: r.command_seq == seq, what=f"X for {seq}")


@pytest.mark.gpio
def test_the_call_button_answers_and_releases_a_worn_headset_stays_ready(seat: Seat) -> None:
    seat.lift()  # the agent wears the headset from the start of the shift
    seat.login()
    seat.settings({SettingKey.AWAY_S: 1})
    seat.expect_steady(GREEN, for_s=1.5)  # worn: never away
    seat.send(messages.offer(801))
    seat.wait_state(State.RINGING)
    seat.press_answer()
    answered = seat.wait_event(EventCode.ANSWERED, state=State.RINGING)
    assert answered.call == 801
    seat.wait_state(State.TALKING, why=Why.ANSWER_BUTTON)
    seat.expect_steady(RED)
    seat.press_answer()
    released = seat.wait_event(EventCode.RELEASED, state=State.TALKING)
    assert released.why is Why.ANSWER_BUTTON and released.call == 801
    seat.wait_state(State.ACW, why=Why.ANSWER_BUTTON)
    seat.expect_steady(YELLOW)


@pytest.mark.gpio
def test_the_call_button_does_nothing_on_hold(seat: Seat) -> None:
    seat.lift()
    seat.login()
    seat.send(messages.offer(802))
    seat.wait_state(State.RINGING)
    seat.press_answer()
    seat.wait_state(State.TALKING)
    seat.send(messages.hold(802))
    seat.wait_state(State.HOLD)
    since = seat.mark()
    seat.press_answer()
    seat.settle()
    seat.no_state_change(since=since)
    assert seat.snapshot().state is State.HOLD


@pytest.mark.gpio
def test_auto_answer_picks_up_for_a_worn_headset_only(seat: Seat) -> None:
    seat.settings({SettingKey.AUTO_ANSWER_MS: 1000})
    seat.login()  # the headset on its hanger: nobody to talk to
    seat.send(messages.offer(803))
    seat.wait_state(State.RINGING)
    seat.expect_blinking(RED, OFF, cycles=2)  # 2 s of ringing, past the delay
    assert seat.snapshot().state is State.RINGING
    seat.send(messages.cancel(803))
    seat.wait_state(State.READY)
    seat.lift()
    offered = seat.mark()
    seat.send(messages.offer(804))
    seat.wait_state(State.RINGING)
    answered = seat.wait_event(EventCode.ANSWERED, since=offered, timeout=4)
    assert answered.call == 804 and 1000 <= answered.a < 2000  # ms it rang
    seat.wait_state(State.TALKING, why=Why.AUTO_ANSWER)
    seat.expect_steady(RED)


@pytest.mark.gpio
def test_login_is_refused_while_nobody_is_signed_in(seat: Seat) -> None:
    seat.send(messages.agent_signed_in(False))
    since = seat.mark()
    seat.press("ready")
    refused = seat.wait_event(EventCode.LOGIN_REFUSED, since=since)
    assert refused.state is State.LOGGED_OUT and refused.a == 1
    seat.wait_light(RED)  # the red flash over the dark light
    seat.wait_light(OFF)
    assert seat.snapshot().state is State.LOGGED_OUT
    seat.send(messages.agent_signed_in(True))
    seat.press("ready")
    seat.wait_state(State.READY, why=Why.BUTTON)
    seat.expect_steady(GREEN)
    seat.send(messages.agent_signed_in(False))  # signed out from the desk's page
    seat.wait_state(State.LOGGED_OUT, why=Why.HOST)
    seat.expect_steady(OFF)


def test_connected_to_a_logged_out_seat_is_wrong_state(seat: Seat) -> None:
    refused = rejected(seat, messages.connected(805))
    assert (refused.error, refused.field) == (ErrorCode.WRONG_STATE, 0)
    assert seat.snapshot().state is State.LOGGED_OUT


def test_released_after_the_seat_released_the_call_is_already(seat: Seat) -> None:
    seat.login()
    seat.send(messages.connected(806))
    seat.wait_state(State.TALKING)
    seat.send(messages.released(806))
    seat.wait_state(State.ACW)
    since = seat.mark()
    refused = rejected(seat, messages.released(806))  # the PBX's copy, crossing
    assert (refused.error, refused.field) == (ErrorCode.ALREADY, 0)
    seat.settle()
    seat.no_state_change(since=since)
