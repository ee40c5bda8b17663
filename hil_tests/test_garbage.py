"""Garbage and damaged frames on the line: counted, ignored, and the seat carries on; commands
it reads but cannot apply are rejected and change nothing."""

from __future__ import annotations

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import ErrorCode, EventCode, Kind, SettingKey, State, Why, crc16
from gateway.seatlink.messages import Command, Reject
from hil_tests.dut import GREEN, RED
from hil_tests.seat import Seat

pytestmark = pytest.mark.hil


def framed(body: bytes) -> bytes:
    """A line with a correct CRC around any body, also one the host codec would refuse."""
    return body + b"*%04X\n" % crc16(body)


def test_garbage_and_damaged_frames_are_counted_and_ignored(seat: Seat) -> None:
    seat.login()
    before = seat.heartbeat()
    seq = seat.next_host_seq()  # what the seat takes next: a damaged frame must not use it up
    good_offer = messages.offer(601).encode(seq)
    damaged = good_offer.replace(b"601", b"691")  # CRC no longer matches
    bad_lines = [
        b"\x00\xff\xfe noise \x80\n",
        b"AT+GMR\r\n",
        b"\x03\x03\x04\x02\n",  # Ctrl-C/D/B are data to the running firmware, not the REPL's
        damaged,
        good_offer.replace(b"*", b"*0"),  # five CRC digits
        good_offer[: good_offer.index(b"*")] + b"\n",  # no CRC
        good_offer.lower(),  # lower-case kind (and CRC)
        framed(b"%d O  601" % seq),  # double space
        framed(b"%d O abc" % seq),  # text where a number goes
        framed(b"0 O 601"),  # reliable kind with seq 0
        framed(b"%d O 100000000" % seq),  # number over 8 digits
        framed(b"%d G " % seq + b" ".join([b"1"] * 11)),  # eleven fields
        b"7" * 100 + b"\n",  # longer than the seat's 64-byte line: dropped whole
    ]
    since = seat.mark()
    for line in bad_lines:
        seat.write_raw(line)
    seat.write_raw(b"\n")  # a blank line: skipped, not counted
    seat.write_raw(b"\r\n")  # also with the CR a terminal sends
    after = seat.settle()

    assert after.bad_frames - before.bad_frames == len(bad_lines)
    assert after.errors == before.errors == 0
    assert not seat.rejects(since=since)
    seat.no_state_change(since=since)
    if seat.sees_light:
        seat.expect_steady(GREEN)
    # the seat still expects `seq` (no Q since): the same offer, undamaged, is taken and rings
    assert seat.send(messages.offer(601)) == seq
    assert seat.wait_state(State.RINGING, why=Why.HOST).call == 601
    if seat.sees_light:
        seat.wait_light(RED)


def test_commands_the_seat_cannot_apply_are_rejected_and_change_nothing(seat: Seat) -> None:
    seat.login()

    def rejected(command: Command) -> Reject:
        seq = seat.send(command)
        return seat.wait_message(Reject, lambda r: r.command_seq == seq, what=f"X for {seq}")

    # all or nothing: one value out of range refuses the whole G, naming the key
    refused = rejected(Command(Kind.SETTINGS, (SettingKey.ACW_S, 30, SettingKey.RING_LIMIT, 0)))
    assert (refused.error, refused.field) == (ErrorCode.OUT_OF_RANGE, SettingKey.RING_LIMIT)
    refused = rejected(Command(Kind.CANCEL, (999,)))
    assert (refused.error, refused.field) == (ErrorCode.OTHER_CALL, 1)
    refused = rejected(Command(Kind.EXIT, (1,)))  # Z without its magic
    assert (refused.error, refused.field) == (ErrorCode.UNKNOWN, 0)
    seat.send(messages.offer(602))
    seat.wait_state(State.RINGING)
    refused = rejected(messages.offer(603))
    assert (refused.error, refused.field) == (ErrorCode.WRONG_STATE, 0)
    snapshot = seat.snapshot()
    assert (snapshot.state, snapshot.call) == (State.RINGING, 602)

    # a kind the host codec has no name for, hand-framed, with the seq the seat expects
    seq = seat.next_host_seq()
    since = seat.mark()
    seat.write_raw(framed(b"%d W 1" % seq))
    unknown = seat.wait_message(Reject, since=since, what="X for the unknown kind W")
    assert (unknown.command_seq, unknown.error, unknown.field) == (seq, ErrorCode.UNKNOWN, 0)
    seat.session.sync()  # W used up a seq the host session does not know of: resync
    seat.send(messages.cancel(602))
    seat.wait_state(State.READY, why=Why.HOST)


def test_host_raises_and_clears_the_help_flag(seat: Seat) -> None:
    seat.login()
    seat.send(messages.help_flag(True))
    assert seat.wait_event(EventCode.HELP).on is True
    assert seat.snapshot().help
    seat.send(messages.help_flag(False))  # a supervisor answered
    assert seat.wait_event(EventCode.HELP).on is False
    assert not seat.snapshot().help
