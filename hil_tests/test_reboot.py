"""A seat that restarts in the middle of a call: the host learns it from a new hello and a
fresh snapshot, and carries on with the same session."""

from __future__ import annotations

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, State, Why
from gateway.seatlink.messages import Snapshot
from hil_tests.dut import GREEN, OFF, RED
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil


def test_reboot_mid_call_sends_a_new_hello_and_a_fresh_snapshot(seat: Seat) -> None:
    assert seat.hello is not None
    boot = seat.hello.boot
    seat.login()
    seat.send(messages.offer(701))
    seat.wait_state(State.RINGING)
    if seat.drives_inputs:
        seat.lift()
        seat.wait_state(State.TALKING, why=Why.HOOK)
        seat.wait_light(RED)
    else:
        seat.send(messages.connected(701))
        seat.wait_state(State.TALKING, why=Why.HOST)
    since = seat.mark()

    seat.dut.reset()  # mid-call; the host session goes on as a gateway's would

    hello = seat.wait_hello(since=since)
    assert hello.boot == boot + 1
    assert seat.session.reboots == 1
    fresh = seat.wait_message(Snapshot, what="the snapshot after the new hello")
    assert (fresh.state, fresh.call, fresh.pending_state, fresh.misses) == (
        State.LOGGED_OUT, 0, None, 0,
    )  # fmt: skip
    if seat.drives_inputs:
        # the headset is still off its hanger: the new boot takes that as where the desk
        # is (its snapshot says so), not as the agent lifting it: no event
        assert fresh.off_hook
        assert not seat.events(EventCode.HOOK, since=since)
    if seat.sees_light:
        seat.expect_steady(OFF)
    # the new boot's heartbeat names it too; its uptime went back, but the hello said so
    # already: not a second restart
    assert seat.heartbeat().boot == boot + 1
    assert seat.session.reboots == 1
    seat.send(messages.set_state(State.READY))  # the same session, its seqs running on
    seat.wait_state(State.READY, why=Why.HOST)
    if seat.sees_light:
        seat.expect_steady(GREEN)
