"""Boot and heartbeat: what a seat says when it starts, and that it keeps saying it."""

from __future__ import annotations

import re

import pytest

from gateway.seatlink.codec import SettingKey, State
from gateway.seatlink.messages import PROTOCOL_VERSION, Heartbeat
from hil_tests.dut import OFF
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil


def test_boot_greets_with_a_hello_and_a_logged_out_snapshot(seat: Seat) -> None:
    hello, snapshot = seat.hello, seat.boot_snapshot
    assert hello is not None and snapshot is not None
    assert hello.protocol == PROTOCOL_VERSION
    assert hello.boot >= 1
    assert hello.firmware
    assert re.fullmatch(r"[0-9A-F]+", hello.uid), hello.uid
    if seat.dut.board_name is not None:
        assert hello.board == seat.dut.board_name
    assert snapshot.state is State.LOGGED_OUT
    assert (snapshot.call, snapshot.pending_state, snapshot.misses, snapshot.dropped) == (
        0, None, 0, 0,
    )  # fmt: skip
    if seat.sees_light:
        seat.expect_steady(OFF)


def test_every_reset_is_a_new_boot(seat: Seat) -> None:
    assert seat.hello is not None
    first = seat.hello.boot
    assert seat.reboot().boot == first + 1


def test_heartbeats_come_on_a_ping_and_every_heartbeat_period(seat: Seat) -> None:
    assert seat.hello is not None
    pinged = seat.heartbeat()
    seat.settings({SettingKey.HEARTBEAT_S: 1})
    since = seat.mark()
    # keepalive off: these heartbeats must come by themselves, not answer pings
    first, second = (
        seat.wait_message(Heartbeat, timeout=3, since=since if i == 0 else None,
                          what="periodic heartbeat", keepalive=False)
        for i in range(2)
    )  # fmt: skip
    for beat in (pinged, first, second):
        # the heartbeat names the board and boot as the hello does
        assert (beat.boot, beat.firmware, beat.uid) == (
            seat.hello.boot, seat.hello.firmware, seat.hello.uid,
        )  # fmt: skip
        assert (beat.errors, beat.bad_frames, beat.dropped_frames) == (0, 0, 0)
        if seat.dut.backend != "virtual":  # CPython has no fixed heap to report
            assert beat.free_heap > 0
    assert pinged.uptime_s <= first.uptime_s < second.uptime_s
