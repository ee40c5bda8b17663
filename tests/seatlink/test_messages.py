"""Typed seat messages and host command builders."""

from __future__ import annotations

from typing import Any

import pytest
from seatlink_support import load_vectors

from gateway.seatlink import messages as m
from gateway.seatlink.codec import (
    MAX_SEQ,
    ErrorCode,
    EventCode,
    Field,
    Frame,
    FrameError,
    Kind,
    Reason,
    SettingKey,
    SnapshotFlag,
    State,
    Why,
    decode,
)
from gateway.seatlink.messages import (
    Ack,
    Command,
    Event,
    Heartbeat,
    Hello,
    MessageError,
    Reject,
    Snapshot,
    parse_message,
)

SEAT_VECTORS = [v for v in load_vectors() if v["direction"] == "seat->host" and "frame" in v]


@pytest.mark.parametrize("vector", SEAT_VECTORS, ids=[v["name"] for v in SEAT_VECTORS])
def test_every_seat_vector_is_a_message(vector: dict[str, Any]) -> None:
    message = parse_message(decode(vector["line"].encode()))
    assert type(message).KIND.value == vector["frame"]["kind"]


def test_hello() -> None:
    frame = Frame(1, Kind.HELLO, (1, 7, "0.1.0", 12345678, "microbit"))
    assert parse_message(frame) == Hello(1, 1, 7, "0.1.0", "12345678", "microbit")


def test_snapshot() -> None:
    snap = parse_message(Frame(2, Kind.SNAPSHOT, (4, 0, 4711, 42, 7, 2, 2, 1, 10)))
    assert snap == Snapshot(2, State.TALKING, None, 4711, 42, SnapshotFlag(7), State.NOT_READY,
                            Reason.MEAL, 1, 10)  # fmt: skip
    assert isinstance(snap, Snapshot) and snap.help and snap.off_hook and snap.hold_over_limit


def test_snapshot_ignores_a_stale_pending_reason() -> None:
    snap = parse_message(Frame(2, Kind.SNAPSHOT, (1, 0, 0, 0, 0, -1, 6, 0, 0)))
    assert isinstance(snap, Snapshot)
    assert (snap.pending_state, snap.pending_reason, snap.help) == (None, None, False)


@pytest.mark.parametrize(
    ("fields", "props"),
    [
        ((1, 3, 0, 4711, 4, 0), {"why": Why.HOST, "ms": None, "on": None}),
        ((2, 3, 0, 4711, 2500, 0), {"ms": 2500, "why": None}),
        ((3, 3, 0, 4711, 15000, 2), {"ms": 15000, "misses": 2}),
        ((4, 4, 0, 4711, 2, 0), {"why": Why.HOOK}),
        ((5, 5, 0, 4711, 30000, 0), {"ms": 30000}),
        ((6, 1, 0, 0, 1, 0), {"on": True}),
        ((7, 4, 0, 4711, 2, 2), {"pending_state": State.NOT_READY, "pending_reason": Reason.MEAL}),
        ((7, 4, 0, 4711, -1, 0), {"pending_state": None, "pending_reason": None}),
        ((8, 0, 0, 0, 0, 0), {"on": False}),
    ],
)
def test_event_properties(fields: tuple[int, ...], props: dict[str, object]) -> None:
    event = parse_message(Frame(3, Kind.EVENT, fields))
    assert isinstance(event, Event) and event.code is EventCode(fields[0])
    for name, value in props.items():
        assert getattr(event, name) == value, name


def test_reject_heartbeat_ack() -> None:
    assert parse_message(Frame(6, Kind.REJECT, (12, 3, 1))) == Reject(
        6, 12, ErrorCode.OTHER_CALL, 1
    )
    fields = (3600, 9123, 12, 0, 0, 1, 3, 0, 7, "0.1.0", "1234ABCD")
    beat = parse_message(Frame(0, Kind.HEARTBEAT, fields))
    assert beat == Heartbeat(3600, 9123, 12, 0, 0, 1, 3, 0, 7, "0.1.0", "1234ABCD")
    assert parse_message(Frame(0, Kind.ACK, (9,))) == Ack(9)


def test_heartbeat_names_the_board_as_the_hello_does() -> None:
    # the vectors' hello and heartbeat come from the same board and boot
    vectors = {v["name"]: v for v in load_vectors()}
    hello = parse_message(decode(vectors["hello"]["line"].encode()))
    beat = parse_message(decode(vectors["heartbeat"]["line"].encode()))
    assert isinstance(hello, Hello) and isinstance(beat, Heartbeat)
    assert (beat.boot, beat.uid, beat.firmware) == (hello.boot, hello.uid, hello.firmware)
    # a uid of digits only decodes as a number: the message gives it back as text
    digits = parse_message(Frame(0, Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, 8, 9, "v", 12345678)))
    assert isinstance(digits, Heartbeat) and digits.uid == "12345678"


def test_heartbeat_from_older_firmware_has_no_boot_or_uid() -> None:
    # firmware flashed before the heartbeat named the board: 9 fields, firmware last
    beat = parse_message(Frame(0, Kind.HEARTBEAT, (3600, 9123, 12, 0, 0, 1, 3, 0, "0.1.0")))
    assert beat == Heartbeat(3600, 9123, 12, 0, 0, 1, 3, 0, None, "0.1.0", None)


@pytest.mark.parametrize(
    ("kind", "fields", "words"),
    [
        (Kind.HELLO, (1, 7, "0.1.0", "x"), "4 fields, expected 5"),
        (Kind.HELLO, (0, 7, "0.1.0", "x", "y"), "protocol 0"),
        (Kind.SNAPSHOT, (7, 0, 0, 0, 0, -1, 0, 0, 0), "state 7"),
        (Kind.SNAPSHOT, (1, 11, 0, 0, 0, -1, 0, 0, 0), "reason 11"),
        (Kind.SNAPSHOT, (1, 0, 0, 0, 8, -1, 0, 0, 0), "flags 8"),
        (Kind.SNAPSHOT, (1, 0, 0, 0, 0, -2, 0, 0, 0), "pending state -2"),
        (Kind.SNAPSHOT, (1, 0, -1, 0, 0, -1, 0, 0, 0), "call -1"),
        (Kind.EVENT, (10, 1, 0, 0, 0, 0), "code 10"),
        (Kind.EVENT, (1, 1, 0, 0, 7, 0), "why 7"),
        (Kind.EVENT, (3, 3, 0, 1, 100, 0), "misses 0"),
        (Kind.EVENT, (6, 1, 0, 0, 2, 0), "on 2"),
        (Kind.EVENT, (7, 4, 0, 1, 2, 11), "pending reason 11"),
        (Kind.REJECT, (0, 1, 0), "command seq 0"),
        (Kind.REJECT, (1, 7, 0), "error 7"),
        (Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, -8, 9, "v", "AB"), "errors -8"),
        (Kind.HEARTBEAT, ("x", 2, 3, 4, 5, 6, 7, 8, 9, "v", "AB"), "uptime is text"),
        (Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, 8, "v", "v", "AB"), "boot is text"),
        (Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, 8, -9, "v", "AB"), "boot -9"),
        (Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, 8, 9, "v"), "10 fields, expected 12"),
        (Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, -8, "v"), "errors -8"),  # older firmware
        (Kind.HEARTBEAT, (1, 2, 3, 4, 5, 6, 7, 8), "8 fields, expected 12"),
        (Kind.ACK, (0,), "acked seq 0"),
        (Kind.ACK, (MAX_SEQ + 1,), "65536"),
        (Kind.OFFER, (1,), "not a frame the seat sends"),
    ],
)
def test_bad_messages_say_why(kind: Kind, fields: tuple[Field, ...], words: str) -> None:
    seq = 0 if not kind.sequenced else 5
    with pytest.raises(MessageError, match=words) as caught:
        parse_message(Frame(seq, kind, fields))
    assert isinstance(caught.value, FrameError)


def test_from_frame_checks_the_kind() -> None:
    with pytest.raises(MessageError, match="expected a B frame"):
        Hello.from_frame(Frame(0, Kind.ACK, (1,)))


# --- builders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "kind", "fields"),
    [
        (m.offer(4711), Kind.OFFER, (4711,)),
        (m.offer(4711, ring_limit=3), Kind.OFFER, (4711, 3)),
        (m.offer(4711, ring_limit=3, ring_ms=5000), Kind.OFFER, (4711, 3, 5000)),
        (m.cancel(4711), Kind.CANCEL, (4711,)),
        (m.connected(4711), Kind.CONNECTED, (4711,)),
        (m.hold(4711), Kind.HOLD, (4711, 1)),
        (m.hold(4711, on=False), Kind.HOLD, (4711, 0)),
        (m.released(4711), Kind.RELEASED, (4711,)),
        (m.set_state(State.READY), Kind.SET_STATE, (1,)),
        (m.set_state(State.LOGGED_OUT), Kind.SET_STATE, (0,)),
        (m.set_state(State.NOT_READY, reason=Reason.SUPERVISOR), Kind.SET_STATE, (2, 10)),
        (m.settings({SettingKey.RING_LIMIT: 4, SettingKey.ACW_S: 45}), Kind.SETTINGS,
         (1, 4, 4, 45)),
        (m.help_flag(True), Kind.HELP, (1,)),
        (m.help_flag(False), Kind.HELP, (0,)),
        (m.sync(), Kind.SYNC, ()),
        (m.ping(), Kind.PING, ()),
        (m.exit_to_repl(), Kind.EXIT, (24231,)),
        (m.ack(9), Kind.ACK, (9,)),
    ],
)  # fmt: skip
def test_builders(command: Command, kind: Kind, fields: tuple[int, ...]) -> None:
    assert command == Command(kind, fields)
    assert all(type(v) is int for v in command.fields)  # enums go out as plain numbers
    seq = MAX_SEQ if kind.sequenced else 0
    assert decode(command.encode(seq)) == command.frame(seq)
    assert Command.from_frame(command.frame(seq)) == command


@pytest.mark.parametrize(
    "build",
    [
        lambda: m.offer(0),
        lambda: m.offer(100_000_000),
        lambda: m.offer(1, ring_ms=5000),
        lambda: m.offer(1, ring_limit=11),
        lambda: m.offer(1, ring_limit=3, ring_ms=999),
        lambda: m.cancel(-1),
        lambda: m.set_state(State.TALKING),
        lambda: m.set_state(State.NOT_READY),
        lambda: m.set_state(State.READY, reason=Reason.MEAL),
        lambda: m.set_state(State(9)),
        lambda: m.settings({}),
        lambda: m.settings({SettingKey.ACW_S: 601}),
        lambda: m.settings({k: k.default for k in list(SettingKey)[:6]}),
        lambda: m.ack(0),
    ],
)
def test_builders_refuse_what_the_seat_would_reject(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_command_is_checked_only_against_the_wire() -> None:
    # out of range for the seat (it answers X 4/1), but readable: tests send such on purpose
    assert Command(Kind.OFFER, (0,)).fields == (0,)
    with pytest.raises(FrameError):
        Command(Kind.OFFER, (-1,))
    with pytest.raises(ValueError, match="not a frame the host sends"):
        Command(Kind.EVENT, (1, 1, 0, 0, 0, 0))
