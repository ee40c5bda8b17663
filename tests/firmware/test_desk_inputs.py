"""The agent at the desk (docs/seat.md): the headset hanger and the call button as two
inputs, auto-answer, the sign-in the gateway tells the seat about (host N), and the host's
K and L where the product owner decided how they end (issue 19)."""

from __future__ import annotations

import pytest
from seat_helpers import (
    ACW,
    AUTO,
    AWAY,
    EV_ANSWER,
    EV_HOOK,
    EV_REFUSED,
    EV_RELEASE,
    EV_STATE,
    HK,
    HOLD,
    HOST,
    IN_ANSWER,
    IN_HANGER,
    IN_READY,
    K_AUTO_ANSWER_MS,
    KEY,
    NR,
    OFF,
    OUT,
    READY,
    RING,
    TALK,
    G,
    R,
    Seat,
    state_events,
)
from test_seat_behaviour import CALL, offer

ERR_WRONG_STATE, ERR_OTHER_CALL, ERR_OUT_OF_RANGE, ERR_ALREADY = 2, 3, 4, 6


def codes_since(seat: Seat, t: int) -> list[int]:
    return [f.code for f in seat.events(since=t)]


def last_reject(seat: Seat) -> tuple[int, ...]:
    rejects = seat.of_kind("X")
    assert rejects, "the seat refused nothing"
    return rejects[-1].ints


# --- ANSWER: the headset's call button ----------------------------------------------------


def test_answer_button_answers_a_ringing_call_and_releases_a_talking_one(seat: Seat) -> None:
    seat.hook(True)  # the agent wears the headset: the hanger is empty
    seat.login()
    t = seat.now
    offer(seat)
    seat.tap(IN_ANSWER)
    assert seat.state == TALK and seat.light_at(seat.now) == R
    seat.advance(3000)
    seat.tap(IN_ANSWER)
    assert seat.state == ACW
    assert state_events(seat.events(since=t)) == [(RING, 0, HOST), (TALK, 0, KEY), (ACW, 0, KEY)]
    assert codes_since(seat, t) == [EV_STATE, EV_ANSWER, EV_STATE, EV_RELEASE, EV_STATE]


def test_answer_button_does_nothing_on_hold_in_acw_or_without_a_call(seat: Seat) -> None:
    seat.hook(True)
    t = seat.now
    seat.tap(IN_ANSWER)  # logged out
    seat.login()
    seat.tap(IN_ANSWER)  # Ready, no call
    offer(seat)
    seat.tap(IN_ANSWER)
    seat.send("P", CALL, 1)
    assert seat.state == HOLD
    held = seat.now
    seat.tap(IN_ANSWER)
    assert seat.state == HOLD and codes_since(seat, held) == []
    seat.send("P", CALL, 0)
    seat.tap(IN_ANSWER)
    assert seat.state == ACW
    acw = seat.now
    seat.tap(IN_ANSWER)
    assert seat.state == ACW and codes_since(seat, acw) == []
    assert [st for st, _, _ in state_events(seat.events(since=t))] == [
        READY, RING, TALK, HOLD, TALK, ACW]  # fmt: skip


def test_a_held_answer_button_is_one_press(seat: Seat) -> None:
    seat.hook(True)
    seat.login()
    offer(seat)
    seat.press(IN_ANSWER, 2000)  # held down through the answer: it does not release too
    assert seat.state == TALK
    seat.release(IN_ANSWER, 500)
    assert seat.state == TALK


# --- HANGER -------------------------------------------------------------------------------


def test_lifting_the_headset_answers_and_hanging_it_up_releases(seat: Seat) -> None:
    seat.login()
    t = seat.now
    offer(seat)
    seat.board.release(IN_HANGER)  # lifted off the hanger
    seat.advance(50)
    assert seat.state == TALK
    seat.board.press(IN_HANGER)
    seat.advance(50)
    assert seat.state == ACW
    assert state_events(seat.events(since=t)) == [(RING, 0, HOST), (TALK, 0, HK), (ACW, 0, HK)]
    hooks = [f.ints[4] for f in seat.events(since=t) if f.code == EV_HOOK]
    assert hooks == [1, 0]  # a = 1: lifted off the hanger


def test_hanging_up_during_hold_keeps_the_caller_on_hold(seat: Seat) -> None:
    seat.hook(True)
    seat.login()
    offer(seat)
    seat.tap(IN_ANSWER)
    seat.send("P", CALL, 1)
    seat.hook(False)  # the agent steps away, the caller waits
    seat.advance(20_000)
    assert seat.state == HOLD
    seat.send("P", CALL, 0)
    assert seat.state == TALK  # back, still hung up: ANSWER or lifting ends it
    seat.tap(IN_ANSWER)
    assert seat.state == ACW


def test_headset_on_its_hanger_pauses_a_ready_agent_but_a_worn_one_stays_ready(
    seat: Seat,
) -> None:
    seat.hook(True)
    seat.login()
    seat.advance(30_000)
    assert seat.state == READY  # wearing it: never away
    t = seat.now
    seat.hook(False)
    seat.advance(9_900)
    assert seat.state == READY
    seat.advance(200)
    assert (seat.state, seat.reason) == (NR, AWAY)
    assert state_events(seat.events(since=t)) == [(NR, AWAY, HK)]


@pytest.mark.parametrize("worn", [True, False])
def test_levels_at_boot_are_where_the_desk_is_not_events(code: str, worn: bool) -> None:
    s = Seat(bundled=code == "bundled")
    if worn:
        s.board.levels = 0  # the headset off its hanger from power-on
    s.start()
    try:
        s.advance(200)
        assert not s.events()  # no hook event, nothing answered
        snap = s.of_kind("S")[0]
        assert bool(snap.ints[4] & 2) is worn  # the snapshot's off-hook flag
        s.login()
        s.advance(15_000)
        assert s.state == (READY if worn else NR)  # away only with it on the hanger
    finally:
        s.close()


# --- auto-answer --------------------------------------------------------------------------


def test_auto_answer_answers_an_offer_after_its_delay_when_the_headset_is_worn(
    seat: Seat,
) -> None:
    seat.send("G", K_AUTO_ANSWER_MS, 1500)
    seat.hook(True)
    seat.login()
    t = seat.now
    rang = offer(seat)
    seat.advance(1400)
    assert seat.state == RING and seat.light_at(rang + 250) == R  # ringing meanwhile
    seat.advance(200)
    assert seat.state == TALK
    answer = next(f for f in seat.events(since=t) if f.code == EV_ANSWER)
    assert 1500 <= answer.ints[4] <= 1500 + 2 * 5  # within a loop pass of the delay
    assert state_events(seat.events(since=t))[-1] == (TALK, 0, AUTO)


def test_auto_answer_waits_for_a_headset_on_its_hanger_and_is_off_by_default(
    seat: Seat,
) -> None:
    seat.hook(True)
    seat.login()
    offer(seat)
    seat.advance(10_000)
    assert seat.state == RING  # off by default: the agent answers
    seat.tap(IN_ANSWER)
    seat.tap(IN_ANSWER)
    seat.advance(60_500)
    assert seat.state == READY
    seat.send("G", K_AUTO_ANSWER_MS, 1000)
    seat.hook(False)  # nobody wears it: an answered call would talk to nobody
    offer(seat, CALL + 1)
    seat.advance(5000)
    assert seat.state == RING
    seat.hook(True)  # lifted: answered at once, by the hanger
    assert seat.state == TALK
    assert state_events(seat.events())[-1] == (TALK, 0, HK)


def test_auto_answer_out_of_range_is_refused(seat: Seat) -> None:
    seq = seat.send("G", K_AUTO_ANSWER_MS, 10_001)
    assert last_reject(seat) == (seq, ERR_OUT_OF_RANGE, K_AUTO_ANSWER_MS)
    assert seat.sim.V[K_AUTO_ANSWER_MS] == 0


# --- sign-in (host N) ---------------------------------------------------------------------


def test_login_with_nobody_signed_in_is_refused_and_the_light_says_so(seat: Seat) -> None:
    seat.send("N", 0)
    t = seat.now
    seat.tap(IN_READY)
    assert seat.state == OUT
    refused = [f.ints for f in seat.events(since=t)]
    assert [(f[0], f[4]) for f in refused] == [(EV_REFUSED, 1)]
    seat.advance(2000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 600) == R and seat.light_at(cycle + 1200) == OFF
    seat.advance(4000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 600) == OFF  # the flash ends
    seat.send("N", 1)  # the agent signed in at the desk's page
    seat.tap(IN_READY)
    assert seat.state == READY and seat.light_at(seat.now) == G


def test_a_seat_not_told_since_boot_takes_a_login(seat: Seat) -> None:
    seat.login()  # the gateway down at boot: the desk still works


def test_signing_out_logs_the_seat_out_after_the_call(seat: Seat) -> None:
    seat.send("N", 1)
    seat.hook(True)
    seat.login()
    offer(seat)
    seat.tap(IN_ANSWER)
    seat.send("N", 0)  # a supervisor signed the agent out mid-call
    assert seat.state == TALK
    seat.tap(IN_ANSWER)
    seat.advance(61_000)
    assert seat.state == OUT  # the pending log-out applied after ACW
    seat.send("N", 1)
    seat.login()
    seat.send("N", 0)
    assert seat.state == OUT  # no call: at once
    assert state_events(seat.events())[-1] == (OUT, 0, HOST)


def test_a_bad_sign_in_flag_is_refused_and_changes_nothing(seat: Seat) -> None:
    seat.login()
    seq = seat.send("N", 2)
    assert last_reject(seat) == (seq, ERR_OUT_OF_RANGE, 1)
    seq = seat.send("N")
    assert last_reject(seat) == (seq, 5, 1)
    assert seat.state == READY


# --- the product owner's decisions on K and L ---------------------------------------------


def test_connected_to_a_logged_out_seat_is_wrong_state(seat: Seat) -> None:
    seq = seat.send("K", CALL)
    assert last_reject(seat) == (seq, ERR_WRONG_STATE, 0)
    assert seat.state == OUT


@pytest.mark.parametrize("acw_s", [60, 0])
def test_released_after_the_agent_hung_up_is_already_released(seat: Seat, acw_s: int) -> None:
    seat.send("G", 4, acw_s)
    seat.hook(True)
    seat.login()
    offer(seat)
    seat.tap(IN_ANSWER)
    seat.tap(IN_ANSWER)  # the agent ends the call...
    after = seat.now
    seq = seat.send("L", CALL)  # ...as the PBX's own release crosses it
    assert last_reject(seat) == (seq, ERR_ALREADY, 0)
    assert seat.state == (ACW if acw_s else READY)
    assert codes_since(seat, after) == []  # nothing released twice
    seq = seat.send("L", CALL + 5)
    assert last_reject(seat) == (seq, ERR_OTHER_CALL, 1)  # another call is still an error


def test_released_of_a_call_that_came_back_releases_it(seat: Seat) -> None:
    # the same call id again (a transfer back to this seat): L releases it, not "already"
    seat.hook(True)
    seat.login()
    offer(seat)
    seat.tap(IN_ANSWER)
    seat.tap(IN_ANSWER)
    seat.tap(1 << 2)  # WRAP ends ACW
    assert seat.state == READY
    offer(seat)
    seat.tap(IN_ANSWER)
    seat.send("L", CALL)
    assert seat.state == ACW
    assert state_events(seat.events())[-1] == (ACW, 0, HOST)
