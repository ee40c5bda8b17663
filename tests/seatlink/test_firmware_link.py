"""The host session against the real firmware: every firmware module runs under CPython on a
stand-in board (conftest.FakeBoard) whose serial line is a socket pair, main loop and all."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from seatlink_support import RunningSeat, SocketPort

from gateway.seatlink import messages
from gateway.seatlink.codec import (
    MAX_SEQ,
    ErrorCode,
    EventCode,
    Frame,
    Kind,
    Reason,
    SettingKey,
    State,
    Why,
    crc16,
    encode,
)
from gateway.seatlink.messages import Event, Heartbeat, Hello, Reject, Snapshot, parse_message
from gateway.seatlink.session import Session

Seat = tuple[SocketPort, RunningSeat]


def open_session(seat: Seat, **options: float | int) -> Session:
    session = Session(seat[0], ack_timeout=0.5, attempts=4, **options)  # type: ignore[arg-type]
    session.sync()
    return session


def event(session: Session, code: EventCode, timeout: float = 3.0, **want: object) -> Event:
    def match(frame: Frame) -> bool:
        if frame.kind is not Kind.EVENT:
            return False
        ev = parse_message(frame)
        assert isinstance(ev, Event)
        return ev.code is code and all(getattr(ev, k) == v for k, v in want.items())

    found = parse_message(session.wait_for(match, timeout=timeout))
    assert isinstance(found, Event)
    return found


def message(session: Session, kind: Kind, test: Callable[[Frame], bool] = lambda f: True) -> object:
    return parse_message(session.wait_for(lambda f: f.kind is kind and test(f), timeout=3))


def heartbeat(session: Session) -> Heartbeat:
    mark = session.mark()
    session.ping()
    beat = parse_message(
        session.wait_for(lambda f: f.kind is Kind.HEARTBEAT, timeout=2, since=mark)
    )
    assert isinstance(beat, Heartbeat)
    return beat


def drain(session: Session, quiet: float = 0.5) -> None:
    """Poll until nothing at all (frames, repeats, acks) has come for `quiet` seconds: longer
    than the seat's first retransmission timeout (300 ms), so a pending resend is in."""
    while True:
        before = len(session.received)
        session.poll(quiet)
        if len(session.received) == before:
            return


def test_boot_hello_then_snapshot(seat: Seat) -> None:
    session = open_session(seat)
    hello = message(session, Kind.HELLO)
    assert hello == Hello(1, 1, 1, "0.1.0", "1234ABCD", "cpython")
    snapshot = message(session, Kind.SNAPSHOT)
    assert isinstance(snapshot, Snapshot)
    assert snapshot.state is State.LOGGED_OUT and snapshot.pending_state is None
    assert (snapshot.call, snapshot.dropped, snapshot.flags) == (0, 0, 0)


def test_inbound_call_through_hold_and_acw(seat: Seat) -> None:
    session = open_session(seat)
    session.send(messages.set_state(State.READY))
    event(session, EventCode.STATE, state=State.READY, why=Why.HOST)
    session.send(messages.offer(4711))
    event(session, EventCode.STATE, state=State.RINGING, call=4711)
    session.send(messages.connected(4711))
    answered = event(session, EventCode.ANSWERED, call=4711)
    assert answered.ms is not None and 0 <= answered.ms < 1000
    event(session, EventCode.STATE, state=State.TALKING, why=Why.HOST)
    session.send(messages.hold(4711))
    event(session, EventCode.STATE, state=State.HOLD)
    session.send(messages.hold(4711, on=False))
    event(session, EventCode.STATE, state=State.TALKING)
    session.send(messages.released(4711))
    event(session, EventCode.RELEASED, why=Why.HOST)
    event(session, EventCode.STATE, state=State.ACW, call=4711)
    session.sync()  # a Q asks for a fresh snapshot
    now = message(session, Kind.SNAPSHOT)
    assert isinstance(now, Snapshot) and now.state is State.ACW and now.call == 4711


def test_hook_answers_and_releases(seat: Seat) -> None:
    session = open_session(seat)
    board = seat[1].fw.board
    session.send(messages.set_state(State.READY))
    session.send(messages.offer(7))
    event(session, EventCode.STATE, state=State.RINGING)
    board.pins = 0  # the headset lifted off its hanger
    assert event(session, EventCode.HOOK).on is True
    event(session, EventCode.ANSWERED, call=7)
    event(session, EventCode.STATE, state=State.TALKING, why=Why.HOOK)
    board.pins = 1  # and put back
    assert event(session, EventCode.HOOK).on is False
    event(session, EventCode.RELEASED, why=Why.HOOK)
    event(session, EventCode.STATE, state=State.ACW)


def test_ring_no_answer_goes_not_ready(seat: Seat) -> None:
    session = open_session(seat)
    session.send(messages.set_state(State.READY))
    session.send(messages.offer(8, ring_limit=1, ring_ms=1000))
    rona = event(session, EventCode.RING_NO_ANSWER, call=8)
    assert rona.ms is not None and rona.ms >= 1000 and rona.misses == 1
    event(session, EventCode.STATE, state=State.NOT_READY, reason=Reason.NO_ANSWER,
          why=Why.TIMER)  # fmt: skip


def test_state_asked_for_during_a_call_is_pending(seat: Seat) -> None:
    session = open_session(seat)
    session.send(messages.settings({SettingKey.ACW_S: 0}))
    session.send(messages.set_state(State.READY))
    session.send(messages.connected(9))  # outbound call from Ready
    event(session, EventCode.STATE, state=State.TALKING, call=9)
    session.send(messages.set_state(State.NOT_READY, reason=Reason.MEAL))
    pending = event(session, EventCode.PENDING)
    assert (pending.pending_state, pending.pending_reason) == (State.NOT_READY, Reason.MEAL)
    session.sync()
    snap = message(session, Kind.SNAPSHOT, lambda f: f.fields[5] >= 0)
    assert isinstance(snap, Snapshot) and snap.pending_reason is Reason.MEAL
    session.send(messages.released(9))
    event(session, EventCode.STATE, state=State.NOT_READY, reason=Reason.MEAL)


@pytest.mark.parametrize(
    ("kind", "fields", "error", "field"),
    [
        (Kind.CANCEL, [999], ErrorCode.OTHER_CALL, 1),
        (Kind.OFFER, [5], ErrorCode.WRONG_STATE, 0),  # logged out
        (Kind.OFFER, [0], ErrorCode.OUT_OF_RANGE, 1),
        (Kind.OFFER, [5, 11], ErrorCode.OUT_OF_RANGE, 2),
        (Kind.OFFER, [5, 3, 999], ErrorCode.OUT_OF_RANGE, 3),
        (Kind.SET_STATE, [2], ErrorCode.OUT_OF_RANGE, 2),  # Not Ready needs a reason
        (Kind.SET_STATE, [3], ErrorCode.OUT_OF_RANGE, 1),
        (Kind.SETTINGS, [4, 45, 1, 99], ErrorCode.OUT_OF_RANGE, 1),  # G: the field is the key
        (Kind.SETTINGS, [15, 1], ErrorCode.OUT_OF_RANGE, 15),
        (Kind.SETTINGS, [4], ErrorCode.MISSING, 0),
        (Kind.HELP, [], ErrorCode.MISSING, 1),
        (Kind.EXIT, [1], ErrorCode.UNKNOWN, 0),  # wrong magic: treated as unknown
        (Kind.EXIT, [], ErrorCode.UNKNOWN, 0),
    ],
)
def test_rejects(seat: Seat, kind: Kind, fields: list[int], error: ErrorCode, field: int) -> None:
    session = open_session(seat)
    seq = session.send_command(kind, fields)
    reject = message(session, Kind.REJECT)
    assert reject == Reject(reject.seq, seq, error, field)  # type: ignore[attr-defined]
    assert seat[1].fw.cfg.V[SettingKey.ACW_S] == SettingKey.ACW_S.default  # all or nothing


def raw_frame(body: bytes) -> bytes:
    """A frame the host codec would refuse to write, with a good CRC."""
    return body + b"*%04X\n" % crc16(body)


def test_unknown_kind_is_rejected_as_unknown(seat: Seat) -> None:
    session = open_session(seat)
    seq = session.send_command(Kind.SYNC) + 1  # the seq the seat expects next
    session.write(raw_frame(b"%d W 1" % seq))
    reject = message(session, Kind.REJECT)
    assert reject == Reject(reject.seq, seq, ErrorCode.UNKNOWN, 0)  # type: ignore[attr-defined]


def test_unknown_kind_without_fields_is_rejected_as_unknown(seat: Seat) -> None:
    session = open_session(seat)
    seq = session.send_command(Kind.SYNC) + 1
    session.write(raw_frame(b"%d W" % seq))
    reject = message(session, Kind.REJECT)
    assert isinstance(reject, Reject) and reject.error is ErrorCode.UNKNOWN


def test_settings_apply_all_or_nothing(seat: Seat) -> None:
    session = open_session(seat)
    cfg = seat[1].fw.cfg
    session.send(messages.settings({SettingKey.ACW_S: 0, SettingKey.RING_LIMIT: 5}))
    # the ack is written before the command is applied: a heartbeat comes a loop pass later
    heartbeat(session)
    assert (cfg.V[SettingKey.ACW_S], cfg.V[SettingKey.RING_LIMIT]) == (0, 5)
    session.send(messages.set_state(State.READY))
    session.send(messages.connected(3))
    event(session, EventCode.STATE, state=State.TALKING)
    session.send(messages.released(3))
    event(session, EventCode.STATE, state=State.READY, why=Why.HOST)  # no ACW at acw_s 0


def test_duplicate_and_early_frames_are_reacked_not_applied(seat: Seat) -> None:
    session = open_session(seat)
    seq = session.send(messages.help_flag(True))
    assert seq is not None
    event(session, EventCode.HELP, on=True)
    drain(session)
    acks_before = sum(1 for r in session.received if r.frame and r.frame.kind is Kind.ACK)
    session.write(encode(seq, Kind.HELP, [0]))  # a repeat of seq (other content: not applied)
    session.write(encode(seq + 5, Kind.HELP, [0]))  # early
    drain(session)
    acks = [r.frame for r in session.received if r.frame and r.frame.kind is Kind.ACK]
    assert [a.fields for a in acks[acks_before:]] == [(seq,), (seq,)]
    assert not [f for f in session.frames[-3:] if f.kind is Kind.EVENT and f.fields[0] == 6
                and f.fields[4] == 0]  # fmt: skip
    session.send(messages.help_flag(False))  # the next seq is still the one it expects
    event(session, EventCode.HELP, on=False)


def test_garbage_and_oversized_lines_are_counted_bad(seat: Seat) -> None:
    session = open_session(seat)
    session.write(b"hello seat\n")
    session.write(b"1 Q*0000\n")  # bad CRC
    session.write(raw_frame(b"0 T 1"))  # a reliable kind with seq 0
    session.write(b"9" * 65 + b"\n")  # longer than the seat keeps: dropped whole
    session.write(b"\n")  # blank: not bad
    session.write(b"\r\n")  # blank with the CR a terminal sends: not bad either
    beat = heartbeat(session)
    assert beat.bad_frames == 4 and beat.firmware == "0.1.0" and beat.free_heap == 9000
    assert (beat.boot, beat.uid) == (1, "1234ABCD")  # as the hello says
    session.send(messages.help_flag(True))  # the link still works
    event(session, EventCode.HELP, on=True)


def test_seat_resends_what_is_not_acked(seat: Seat) -> None:
    session = open_session(seat)
    drain(session)
    seat[1].fw.board.pins = 0  # the headset lifted: an event while the host is not reading
    time.sleep(1.0)  # no reads, no acks: the seat times out and resends (300 ms, then 600)
    event(session, EventCode.HOOK, on=True)
    drain(session)
    assert session.duplicates >= 1
    assert heartbeat(session).retransmits >= 1
    assert seat[1].counters["count"] == 0  # all acked in the end


def test_lost_seat_frame_is_recovered_in_order(seat: Seat) -> None:
    session = open_session(seat)
    drain(session)
    board = seat[1].fw.board
    board.lose = 2  # the seat's 2nd write from now: U 1's ack, then the help event
    session.send(messages.help_flag(True))
    session.send(messages.help_flag(False))  # its event arrives before the lost one is resent
    drain(session)
    assert board.lost and b" E 6 " in board.lost[0]
    helps = [f.fields[4] for f in session.frames if f.kind is Kind.EVENT]
    assert helps == [1, 0]  # each once, in order
    assert session.out_of_order >= 1 and session.resyncs == 1
    assert session.frames[-1].kind is Kind.SNAPSHOT  # the Q's snapshot, behind the resent two


def test_queue_overflow_collapses_into_a_snapshot(seat: Seat) -> None:
    session = open_session(seat)
    drain(session)
    board = seat[1].fw.board
    board.link_up = False  # the cable is out: the host hears nothing, acks nothing
    for i in range(12):  # 12 hook events for a queue of 10
        board.pins = i % 2  # lifted, hung up, ...
        time.sleep(0.06)
    assert seat[1].counters["drop"] == 10
    board.link_up = True
    snap = message(session, Kind.SNAPSHOT, lambda f: f.fields[8] > 0)
    assert isinstance(snap, Snapshot) and snap.dropped == 10 and snap.state is State.LOGGED_OUT
    drain(session)
    hooks = [f for f in session.frames if f.kind is Kind.EVENT]
    assert [f.fields[4] for f in hooks] == [1, 0]  # the two queued after the collapse
    assert session.skipped == 10  # the jump is exactly the frames the seat dropped
    assert heartbeat(session).dropped_frames == 10


def test_a_host_that_missed_the_hello_learns_the_board_from_a_heartbeat(seat: Seat) -> None:
    port, running = seat
    board = running.fw.board
    board.link_up = False  # no host listening yet: what the seat writes is lost...
    port.timeout = 0.05
    while port.read(4096):  # ...and so is what it wrote before
        pass
    for i in range(12):  # the hello, the snapshot and 12 hook events for a queue of 10
        board.pins = i % 2  # lifted, hung up, ...
        time.sleep(0.06)
    assert running.counters["drop"] == 10  # the hello went with the collapse
    board.link_up = True
    session = open_session(seat)
    drain(session)
    assert Kind.HELLO not in {f.kind for f in session.frames}
    beat = heartbeat(session)
    assert (beat.boot, beat.uid, beat.firmware) == (1, "1234ABCD", "0.1.0")
    assert session.rx.beat_boot == 1
    # the count was under way before the first heartbeat: the receiver does not vouch for
    # its boot (the seat might have restarted in between); the heartbeat's is there to take
    assert session.rx.boot is None and session.reboots == 0


def test_host_seq_wraps_through_the_seat(seat: Seat) -> None:
    session = open_session(seat, first_seq=MAX_SEQ - 1)
    assert session.send(messages.help_flag(True)) == MAX_SEQ
    assert session.send(messages.help_flag(False)) == 1
    event(session, EventCode.HELP, on=False)
    assert session.retransmits == 0


def test_exit_to_repl_stops_the_loop(seat: Seat) -> None:
    session = open_session(seat)
    session.send(messages.exit_to_repl())
    seat[1].thread.join(timeout=2)
    assert not seat[1].thread.is_alive()
    assert seat[1].fw.board.kbd_calls[-1] == 3  # Ctrl-C works again
    assert seat[1].fw.board.lights[-1] == 0
