"""The ring limit (RONA): the seat gives up on an unanswered call by itself, host or not."""

from __future__ import annotations

import time

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Reason, SettingKey, State, Why
from hil_tests.dut import BLUE, GREEN, OFF, RED
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil

DEFAULT_RING_LIMIT = SettingKey.RING_LIMIT.default
DEFAULT_RING_MS = SettingKey.RING_MS.default


def ring_out_silently(seat: Seat, offer: messages.Command, deadline_ms: int) -> int:
    """Offer a call, then keep the host link silent (nothing read, acked or pinged) until
    the seat has given up: its light turns blue (Not Ready, no answer), or, with no light
    to watch, well past the deadline. Returns when the offer went out (monotonic_ns)."""
    offered = time.monotonic_ns()
    seat.send(offer)
    if seat.sees_light:
        seat.wait_light(BLUE, timeout=deadline_ms / 1000 + 5, since_ns=offered, pump=False)
    else:
        seat.quiet(deadline_ms / 1000 + 1.5)
    return offered


def check_rang_until_blue(seat: Seat, offered: int) -> None:
    """The light blinked red from the offer until it turned blue, and stays blue."""
    changes = seat.light_changes(offered)
    blue_at = next(i for i, (_, rgb) in enumerate(changes) if rgb == BLUE)
    ringing = [rgb for _, rgb in changes[1:blue_at]]
    assert ringing.count(RED) >= 2 and set(ringing) <= {RED, OFF}, ringing
    seat.expect_steady(BLUE)


def test_ring_timeout_at_the_limit_with_the_host_link_silent(seat: Seat) -> None:
    ring_limit, ring_ms = 2, 1000
    deadline_ms = ring_limit * ring_ms
    seat.login()
    offer = messages.offer(301, ring_limit=ring_limit, ring_ms=ring_ms)
    offered = ring_out_silently(seat, offer, deadline_ms)

    assert seat.wait_state(State.RINGING, why=Why.HOST).call == 301
    rona = seat.wait_event(EventCode.RING_NO_ANSWER, state=State.RINGING)
    assert rona.call == 301 and rona.misses == 1
    assert rona.ms is not None
    # the seat's own count of the ring: at the limit, and not one more ring
    assert deadline_ms <= rona.ms < deadline_ms + ring_ms
    seat.wait_state(State.NOT_READY, reason=Reason.NO_ANSWER, why=Why.TIMER)
    if seat.sees_light:
        check_rang_until_blue(seat, offered)
    snapshot = seat.snapshot()
    assert (snapshot.state, snapshot.reason, snapshot.call, snapshot.misses) == (
        State.NOT_READY, Reason.NO_ANSWER, 0, 1,
    )  # fmt: skip


def test_default_ring_timeout_is_three_rings_of_five_seconds(seat: Seat) -> None:
    deadline_ms = DEFAULT_RING_LIMIT * DEFAULT_RING_MS
    assert deadline_ms == 15_000  # docs/seat.md: answer within 3 rings
    seat.login()
    offered = ring_out_silently(seat, messages.offer(302), deadline_ms)

    rona = seat.wait_event(EventCode.RING_NO_ANSWER, state=State.RINGING)
    assert rona.call == 302 and rona.misses == 1
    assert rona.ms is not None
    assert deadline_ms <= rona.ms < deadline_ms + DEFAULT_RING_MS
    seat.wait_state(State.NOT_READY, reason=Reason.NO_ANSWER, why=Why.TIMER)
    if seat.sees_light:
        check_rang_until_blue(seat, offered)


def test_ring_no_answer_below_the_miss_limit_returns_to_ready(seat: Seat) -> None:
    seat.settings({SettingKey.MISS_LIMIT: 2})
    seat.login()
    seat.send(messages.offer(303, ring_limit=1, ring_ms=1000))
    first = seat.wait_event(EventCode.RING_NO_ANSWER, timeout=4)
    assert first.misses == 1
    seat.wait_state(State.READY, why=Why.TIMER)
    if seat.sees_light:
        seat.wait_light(GREEN)
    seat.send(messages.offer(304, ring_limit=1, ring_ms=1000))
    second = seat.wait_event(EventCode.RING_NO_ANSWER, timeout=4)
    assert second.misses == 2 and second.call == 304
    seat.wait_state(State.NOT_READY, reason=Reason.NO_ANSWER, why=Why.TIMER)
    if seat.sees_light:
        seat.expect_steady(BLUE)


def test_cancelled_offer_returns_to_ready(seat: Seat) -> None:
    seat.login()
    seat.send(messages.offer(305))
    seat.wait_state(State.RINGING)
    seat.send(messages.cancel(305))
    seat.wait_state(State.READY, why=Why.HOST)
    if seat.sees_light:
        seat.expect_steady(GREEN)
    assert seat.snapshot().call == 0
