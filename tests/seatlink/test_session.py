"""The host session against a tiny scripted seat: a plain thread on the other end of a socket
pair that speaks the protocol's receive rules and sends whatever the test tells it to."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from gateway.seatlink import messages
from gateway.seatlink.codec import (
    MAX_SEQ,
    Direction,
    Field,
    Frame,
    FrameError,
    Kind,
    State,
    decode,
    encode,
    next_seq,
)
from gateway.seatlink.session import AckTimeout, RxStatus, Session, SessionError, SessionTimeout

SNAP = [0, 0, 0, 0, 0, -1, 0, 0, 0]
EVENT = [6, 0, 0, 0, 1, 0]  # help asked
HELLO = [1, 1, "0.1.0", "1234ABCD", "cpython"]  # boot 1


def beat(uptime: int, boot: int) -> list[Field]:
    """A heartbeat's fields: uptime, then the health counters, boot, firmware and board."""
    return [uptime, 9000, 5, 0, 0, 0, 0, 0, boot, "0.1.0", "1234ABCD"]


class Peer:
    """The seat end, as rx.py takes frames: in order or not at all, Q always; acks each.

    lose_first: copies of each reliable frame to ignore (lost on the way in);
    lose_ack: copies of each reliable frame to apply without acking (ack lost on the way out);
    deaf: ignore everything; snapshot_on_sync: answer Q with a snapshot, as the seat does.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lose_first = 0
        self.lose_ack = 0
        self.deaf = False
        self.snapshot_on_sync = True
        self.expected: int | None = None
        self.tx_seq = 0
        self.applied: list[Frame] = []
        self.acks: list[int] = []
        self.pings = 0
        self.bad: list[bytes] = []
        self.seen: Counter[int] = Counter()
        self.got: queue.Queue[Frame] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="peer", daemon=True)

    def start(self) -> Peer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def send(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)

    def emit(self, kind: Kind, fields: Sequence[Field] = (), *, seq: int | None = None) -> int:
        """Send a seat frame; reliable ones take the next seq unless one is given."""
        if kind.sequenced and seq is None:
            self.tx_seq = next_seq(self.tx_seq)
            seq = self.tx_seq
        seq = 0 if seq is None else seq
        self.send(encode(seq, kind, fields))
        return seq

    def _run(self) -> None:
        self.sock.settimeout(0.02)
        buf = b""
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._line(line + b"\n")

    def _line(self, line: bytes) -> None:
        try:
            frame = decode(line, direction=Direction.HOST_TO_SEAT)
        except FrameError:
            self.bad.append(line)
            return
        self.got.put(frame)
        if self.deaf:
            return
        if frame.kind is Kind.ACK:
            self.acks.append(int(frame.fields[0]))
            return
        if frame.kind is Kind.PING:
            self.pings += 1
            health = [1, 9000, 5, len(self.bad), 0, 0, 0, 0]
            self.emit(Kind.HEARTBEAT, [*health, 1, "0.1.0", "1234ABCD"])
            return
        self.seen[frame.seq] += 1
        copy = self.seen[frame.seq]
        if copy <= self.lose_first:
            return
        if frame.kind is Kind.SYNC or self.expected is None or frame.seq == self.expected:
            self.expected = next_seq(frame.seq)
            self.applied.append(frame)
            if copy - self.lose_first > self.lose_ack:
                self.send(encode(0, Kind.ACK, [frame.seq]))
            if frame.kind is Kind.SYNC and self.snapshot_on_sync:
                self.emit(Kind.SNAPSHOT, SNAP)
        elif copy - self.lose_first > self.lose_ack:
            self.send(encode(0, Kind.ACK, [(self.expected - 2) % MAX_SEQ + 1]))


@pytest.fixture
def peer(socket_pair: tuple[object, socket.socket]) -> Iterator[Peer]:
    running = Peer(socket_pair[1]).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def session(socket_pair: tuple[object, socket.socket], peer: Peer) -> Session:
    return Session(socket_pair[0], ack_timeout=0.15, attempts=3)  # type: ignore[arg-type]


def settle(session: Session, peer: Peer, quiet: float = 0.1) -> None:
    """Let in-flight frames arrive on both ends: poll until neither end has had anything
    new for `quiet` seconds."""
    while True:
        before = (len(session.received), peer.got.qsize())
        session.poll(quiet)
        if (len(session.received), peer.got.qsize()) == before:
            return


def kinds(frames: Sequence[Frame]) -> str:
    return "".join(f.kind.value for f in frames)


# --- host -> seat ----------------------------------------------------------------------------


def test_first_command_is_preceded_by_a_sync(session: Session, peer: Peer) -> None:
    seq = session.send(messages.set_state(State.READY))
    assert seq == 2
    assert [(f.seq, f.kind) for f in peer.applied] == [(1, Kind.SYNC), (2, Kind.SET_STATE)]
    assert peer.applied[1].fields == (State.READY,)
    snapshot = session.wait_for(lambda f: f.kind is Kind.SNAPSHOT, timeout=1)
    assert snapshot.seq == 1 and session.retransmits == 0
    settle(session, peer)
    assert peer.acks == [1]  # the snapshot, acked


def test_lost_command_is_resent(session: Session, peer: Peer) -> None:
    peer.lose_first = 1
    assert session.send_command(Kind.HELP, [1]) == 2
    assert session.retransmits == 2  # the Q and the U, once each
    assert kinds(peer.applied) == "QU"


def test_lost_ack_resend_is_acked_not_reapplied(session: Session, peer: Peer) -> None:
    peer.lose_ack = 1
    session.send_command(Kind.HELP, [1])
    # each arrived twice; the U is applied once, the Q twice: the seat always takes a Q
    assert kinds(peer.applied) == "QQU"
    assert peer.seen == Counter({1: 2, 2: 2})
    assert session.retransmits == 2


def test_no_ack_at_all_raises_then_resyncs(session: Session, peer: Peer) -> None:
    session.sync()
    peer.deaf = True
    with pytest.raises(AckTimeout, match="U seq 2 not acked after 3 sends"):
        session.send_command(Kind.HELP, [1])
    sent = [f for f in list(peer.got.queue) if f.kind is Kind.HELP]
    assert [f.seq for f in sent] == [2, 2, 2]
    peer.deaf = False
    # the seat may not have seq 2: the next command starts with a Q, which it always takes
    assert session.send_command(Kind.HELP, [0]) == 4
    assert [(f.seq, f.kind.value) for f in peer.applied] == [(1, "Q"), (3, "Q"), (4, "U")]


def test_stale_ack_does_not_count(session: Session, peer: Peer) -> None:
    session.sync()
    peer.deaf = True
    peer.send(encode(0, Kind.ACK, [1]))  # a re-ack of the Q, not of the command
    with pytest.raises(AckTimeout):
        session.send_command(Kind.HELP, [1])


def test_host_seq_wraps_to_one(socket_pair: tuple[object, socket.socket], peer: Peer) -> None:
    session = Session(socket_pair[0], first_seq=MAX_SEQ - 1, ack_timeout=0.15)  # type: ignore[arg-type]
    assert session.send_command(Kind.HELP, [1]) == MAX_SEQ
    assert session.send_command(Kind.HELP, [0]) == 1
    assert [f.seq for f in peer.applied] == [MAX_SEQ - 1, MAX_SEQ, 1]
    assert session.retransmits == 0


def test_unsequenced_and_bad_commands(session: Session, peer: Peer) -> None:
    with pytest.raises(ValueError, match="not a reliable host command"):
        session.send_command(Kind.PING)
    with pytest.raises(ValueError, match="not a reliable host command"):
        session.send_command(Kind.EVENT, [1])
    with pytest.raises(FrameError):
        session.send_command(Kind.OFFER, [-5])
    assert session.send(messages.ping()) is None
    session.wait_for(lambda f: f.kind is Kind.HEARTBEAT, timeout=1)
    assert peer.pings == 1 and peer.applied == []


def test_raw_write_reaches_the_seat_as_garbage(session: Session, peer: Peer) -> None:
    session.write(b"\x00\xffnot a frame\n")
    session.sync()
    assert peer.bad == [b"\x00\xffnot a frame\n"]
    assert session.tx_log.startswith(b"\x00\xffnot a frame\n1 Q*")


# --- seat -> host ----------------------------------------------------------------------------


def test_seat_frames_acked_in_order_duplicates_dropped(session: Session, peer: Peer) -> None:
    for seq in (1, 2, 2, 3, 1):
        peer.emit(Kind.EVENT, EVENT, seq=seq)
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1, 2, 3]
    assert session.duplicates == 2
    assert peer.acks == [1, 2, 2, 3, 3]  # cumulative: a repeat is acked with the last in order


def test_gap_is_dropped_and_resynced(session: Session, peer: Peer) -> None:
    peer.snapshot_on_sync = False
    peer.emit(Kind.EVENT, EVENT, seq=1)
    for seq in (3, 4, 5):  # 2 lost on the way
        peer.emit(Kind.EVENT, EVENT, seq=seq)
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1]
    assert session.out_of_order == 3 and session.resyncs == 1
    assert peer.acks == [1, 1, 1, 1]
    assert kinds(peer.applied) == "Q"  # one Q for the gap, not one per frame past it
    # the seat resends from the first unacked (go-back-N), then the snapshot the Q asked for
    for seq in (2, 3, 4, 5):
        peer.emit(Kind.EVENT, EVENT, seq=seq)
    peer.emit(Kind.SNAPSHOT, SNAP, seq=6)
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1, 2, 3, 4, 5, 6]
    assert peer.acks[-5:] == [2, 3, 4, 5, 6]
    assert session.resyncs == 1
    statuses = [r.status for r in session.received]
    assert statuses.count(RxStatus.OUT_OF_ORDER) == 3


def test_gap_during_a_command_defers_the_sync(session: Session, peer: Peer) -> None:
    session.sync()
    session.poll(0.05)  # the snapshot (seq 1)
    peer.snapshot_on_sync = False
    peer.lose_first = 1  # the command is resent: a gap opens while it waits
    peer.emit(Kind.EVENT, EVENT, seq=3)
    assert session.send_command(Kind.HELP, [1]) == 2
    # the Q went out after the U was acked, with the next seq
    assert [(f.seq, f.kind.value) for f in peer.applied] == [(1, "Q"), (2, "U"), (3, "Q")]
    assert session.resyncs == 1


def test_jump_to_a_snapshot_that_dropped_frames_is_taken(session: Session, peer: Peer) -> None:
    # the seat's queue overflowed: ten frames gone, counted, a snapshot in their place
    peer.emit(Kind.SNAPSHOT, SNAP, seq=1)
    peer.emit(Kind.SNAPSHOT, [*SNAP[:8], 10], seq=12)
    peer.emit(Kind.EVENT, EVENT, seq=13)
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1, 12, 13]
    assert session.skipped == 10 and session.resyncs == 0 and session.out_of_order == 0
    assert peer.acks == [1, 12, 13]


def test_jump_to_a_snapshot_that_dropped_nothing_waits(session: Session, peer: Peer) -> None:
    # what the firmware does after a lost frame: the host's Q gets a snapshot queued behind
    # the lost one, and the seat sends that new frame before its timer resends the old ones
    peer.snapshot_on_sync = False
    peer.emit(Kind.SNAPSHOT, SNAP, seq=1)
    peer.emit(Kind.EVENT, EVENT, seq=3)  # 2 lost
    settle(session, peer)
    peer.emit(Kind.SNAPSHOT, SNAP, seq=4)  # for the Q; dropped count unchanged
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1]
    assert session.out_of_order == 2 and session.skipped == 0
    for seq, kind, fields in ((2, Kind.EVENT, EVENT), (3, Kind.EVENT, EVENT),
                              (4, Kind.SNAPSHOT, SNAP)):  # fmt: skip
        peer.emit(kind, fields, seq=seq)  # go-back-N
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1, 2, 3, 4]


def test_frame_too_far_behind_is_not_acked(session: Session, peer: Peer) -> None:
    # a seat that restarted its count (its hello lost): an ack of 50 would ack its new frames
    for seq in range(40, 51):
        peer.emit(Kind.EVENT, EVENT, seq=seq)
    settle(session, peer)
    peer.emit(Kind.SNAPSHOT, SNAP, seq=2)
    peer.emit(Kind.EVENT, EVENT, seq=41)  # a real repeat: acked
    settle(session, peer)
    assert session.stale == 1 and session.duplicates == 1
    assert peer.acks[-1:] == [50] and peer.acks.count(50) == 2
    assert [r.status for r in session.received[-2:]] == [RxStatus.STALE, RxStatus.DUPLICATE]


def test_heartbeat_uptime_going_back_restarts_the_count(session: Session, peer: Peer) -> None:
    old = [100, 9000, 5, 0, 0, 0, 0, 0, "0.1.0"]  # older firmware: no boot counter to compare
    for seq in range(40, 45):
        peer.emit(Kind.EVENT, EVENT, seq=seq)
    peer.emit(Kind.HEARTBEAT, old)
    peer.emit(Kind.HEARTBEAT, [2, *old[1:]])  # rebooted; its hello was lost
    peer.emit(Kind.SNAPSHOT, SNAP, seq=2)
    settle(session, peer)
    assert session.reboots == 1 and session.stale == 0
    assert session.frames[-1].kind is Kind.SNAPSHOT and session.frames[-1].seq == 2
    assert kinds(peer.applied) == "Q"  # and a Q for a snapshot of the restarted seat


def test_new_boot_restarts_the_count(session: Session, peer: Peer) -> None:
    hello = [1, 1, "0.1.0", "1234ABCD", "cpython"]
    for seq, kind, fields in ((1, Kind.HELLO, hello), (2, Kind.SNAPSHOT, SNAP),
                              (3, Kind.EVENT, EVENT)):  # fmt: skip
        peer.emit(kind, fields, seq=seq)
    peer.emit(Kind.HELLO, hello, seq=1)  # resent: same boot, a duplicate
    peer.emit(Kind.HELLO, [1, 2, *hello[2:]], seq=1)  # reset: boot 2
    peer.emit(Kind.SNAPSHOT, SNAP, seq=2)
    settle(session, peer)
    assert [(f.seq, f.kind.value) for f in session.frames] == [
        (1, "B"), (2, "S"), (3, "E"), (1, "B"), (2, "S")
    ]  # fmt: skip
    assert session.reboots == 1 and session.duplicates == 1
    assert peer.acks == [1, 2, 3, 3, 1, 2]


def test_heartbeat_with_another_boot_restarts_the_count(session: Session, peer: Peer) -> None:
    for seq, kind, fields in ((1, Kind.HELLO, HELLO), (2, Kind.SNAPSHOT, SNAP),
                              (3, Kind.EVENT, EVENT)):  # fmt: skip
        peer.emit(kind, fields, seq=seq)
    peer.emit(Kind.HEARTBEAT, beat(100, 1))  # the boot the hello named: nothing new
    settle(session, peer)
    assert session.reboots == 0 and session.rx.boot == 1
    # rebooted, its hello lost; the uptime did not go back (the last heartbeat seen was
    # early in the old boot), the boot counter says it all the same
    peer.tx_seq = 2  # the new boot's hello and snapshot: the Q's snapshot comes next
    peer.emit(Kind.HEARTBEAT, beat(200, 2))
    peer.emit(Kind.SNAPSHOT, SNAP, seq=2)  # without the restart: a repeat of the old 2
    settle(session, peer)
    assert session.reboots == 1 and session.duplicates == 0 and session.stale == 0
    assert kinds(peer.applied) == "Q"  # and a Q for a snapshot of the restarted seat
    assert [(f.seq, f.kind.value) for f in session.frames if f.seq][3:] == [(2, "S"), (3, "S")]
    assert session.rx.boot == 2  # the heartbeat's: the count started after it


def test_restart_seen_in_the_hello_is_not_counted_again(session: Session, peer: Peer) -> None:
    peer.emit(Kind.HELLO, HELLO, seq=1)
    peer.emit(Kind.HEARTBEAT, beat(100, 1))
    peer.emit(Kind.HELLO, [1, 2, *HELLO[2:]], seq=1)  # reset: boot 2
    peer.emit(Kind.SNAPSHOT, SNAP, seq=2)
    peer.emit(Kind.HEARTBEAT, beat(5, 2))  # the new boot's uptime is lower: not news
    peer.emit(Kind.EVENT, EVENT, seq=3)
    settle(session, peer)
    assert session.reboots == 1 and session.resyncs == 0
    assert [(f.seq, f.kind.value) for f in session.frames if f.seq] == [
        (1, "B"), (1, "B"), (2, "S"), (3, "E")
    ]  # fmt: skip
    assert peer.acks == [1, 1, 2, 3]


def test_resent_hello_after_a_heartbeat_is_still_a_resend(session: Session, peer: Peer) -> None:
    peer.emit(Kind.HEARTBEAT, beat(0, 1))  # before any frame: its boot is the count's
    peer.emit(Kind.HELLO, HELLO, seq=1)
    peer.emit(Kind.SNAPSHOT, SNAP, seq=2)
    peer.emit(Kind.HELLO, HELLO, seq=1)  # resent (its ack was lost): same boot
    settle(session, peer)
    assert session.reboots == 0 and session.duplicates == 1
    assert peer.acks == [1, 2, 2]


def test_seat_seq_wraps_to_one(session: Session, peer: Peer) -> None:
    for seq in (MAX_SEQ - 1, MAX_SEQ, 1, MAX_SEQ):
        peer.emit(Kind.EVENT, EVENT, seq=seq)
    settle(session, peer)
    assert [f.seq for f in session.frames] == [MAX_SEQ - 1, MAX_SEQ, 1]
    assert session.duplicates == 1


def test_garbage_between_frames_is_skipped_and_counted(session: Session, peer: Peer) -> None:
    junk = [
        b"MicroPython v1.9.2-34-gd64154c73 on 2017-09-01\r\n",
        b"\x00\x03\xff\xfe binary\n",
        b"x" * 1000 + b"\n",  # overlong: dropped whole at its newline
        b"1 E 6 0 0 0 1 0*0000\n",  # bad CRC
        b"\r\n",  # blank: not garbage
    ]
    for line in junk:
        peer.send(line)
    peer.emit(Kind.EVENT, EVENT, seq=1)
    peer.send(b"partial li")
    settle(session, peer)
    assert [f.seq for f in session.frames] == [1]
    assert session.garbage == 4
    notes = [r.note for r in session.received if r.status is RxStatus.GARBAGE]
    assert notes[2] == "line longer than 255 bytes" and notes[3].startswith("crc:")
    assert session.raw_log == b"".join(junk) + encode(1, Kind.EVENT, EVENT) + b"partial li"
    peer.send(b"ne\n")
    session.poll(0.05)
    assert session.garbage == 5


def test_frame_split_across_reads(session: Session, peer: Peer) -> None:
    for byte in encode(1, Kind.EVENT, EVENT):
        peer.send(bytes([byte]))
        time.sleep(0.001)
    assert session.wait_for(lambda f: f.kind is Kind.EVENT, timeout=1).seq == 1


def test_wait_for_cursor_since_and_timeout(session: Session, peer: Peer) -> None:
    for seq in (1, 2, 3):
        peer.emit(Kind.EVENT, [6, 0, 0, 0, seq % 2, 0], seq=seq)
    assert session.wait_for(lambda f: f.fields[4] == 0, timeout=1).seq == 2
    assert session.wait_for(lambda f: f.fields[4] == 1, timeout=1).seq == 3  # after 2
    assert session.wait_for(lambda f: f.fields[4] == 1, since=0).seq == 1
    mark = session.mark()
    with pytest.raises(SessionTimeout):
        session.wait_for(lambda f: f.kind is Kind.EVENT, timeout=0.1, since=mark)
    peer.emit(Kind.EVENT, EVENT, seq=4)
    assert session.wait_for(lambda f: f.kind is Kind.EVENT, timeout=1, since=mark).seq == 4


def test_records_and_transcript(session: Session, peer: Peer) -> None:
    session.sync()
    session.poll(0.05)
    times = [r.t for r in session.received]
    assert times == sorted(times) and all(t >= session.started for t in times)
    text = session.transcript().decode()
    lines = text.splitlines()
    assert lines[0].endswith("> 1 Q*723B")
    assert any(line.endswith("< 0 A 1*20A5") for line in lines)
    assert any(" < 1 S " in line for line in lines)
    assert any(line.endswith("> 0 A 1*20A5") for line in lines)  # the snapshot's ack


def test_session_checks_its_arguments(socket_pair: tuple[object, socket.socket]) -> None:
    with pytest.raises(ValueError):
        Session(socket_pair[0], attempts=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Session(socket_pair[0], first_seq=0)  # type: ignore[arg-type]


def test_reentrant_send_is_refused(session: Session, peer: Peer) -> None:
    session._inflight = 7  # as if called from inside a pump
    with pytest.raises(SessionError, match="already waiting"):
        session.send_command(Kind.SYNC)
