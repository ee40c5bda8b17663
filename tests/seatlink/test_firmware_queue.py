"""The seat's queue of unacked frames (firmware/link.py, rx.py's Q) driven frame by frame
under CPython, source and linked bundle alike: what a collapse tells the host, and what a
host's resync may and may not cost the queue."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from seatlink_support import FakeBoard, load_firmware

from gateway.seatlink.codec import QUEUE_SIZE, Direction, Kind, decode, encode
from gateway.seatlink.messages import Heartbeat, Snapshot, parse_message


@pytest.fixture
def fw(tmp_path: Path, firmware_dir: Path) -> types.SimpleNamespace:
    fw = load_firmware(FakeBoard(tmp_path), firmware_dir)
    fw.seat.emit = fw.link.enq  # as loop.run wires it
    fw.tx.UID = b"1234ABCD"  # as loop.boot sets it
    return fw


def queued(fw: types.SimpleNamespace) -> list[tuple[int, str, int]]:
    """(seq, kind, Q's a slot) of every queued frame, oldest first."""
    L, Q, c = fw.tx.L, fw.tx.Q, fw.c
    out = []
    for i in range(L[c["COUNT"]]):
        j = (L[c["HEAD"]] + i) % QUEUE_SIZE * 8
        out.append((Q[j], chr(Q[j + 1]), Q[j + 6]))
    return out


def events(fw: types.SimpleNamespace, n: int) -> None:
    for _ in range(n):
        fw.link.enq(6, 0, 0)  # a help event (cleared)


def sent_snapshot(fw: types.SimpleNamespace, index: int) -> Snapshot:
    fw.board.written.clear()
    fw.tx.send(index, 0)
    snap = parse_message(decode(bytes(fw.board.written), direction=Direction.SEAT_TO_HOST))
    assert isinstance(snap, Snapshot)
    return snap


def host_line(fw: types.SimpleNamespace, seq: int, kind: Kind) -> None:
    line = bytearray(encode(seq, kind, []))
    fw.rx.feed(line, len(line))


def test_a_collapse_snapshot_names_the_first_frame_dropped(fw: types.SimpleNamespace) -> None:
    events(fw, QUEUE_SIZE)  # seqs 1..10, nobody acking
    events(fw, 1)
    assert queued(fw) == [(11, "S", 1), (12, "E", 0)]
    assert fw.tx.L[fw.c["DROP"]] == QUEUE_SIZE
    snap = sent_snapshot(fw, 0)
    assert (snap.seq, snap.dropped, snap.gone_from) == (11, 10, 1)


def test_a_second_collapse_hands_on_where_the_loss_began(fw: types.SimpleNamespace) -> None:
    events(fw, QUEUE_SIZE + 1)  # collapse: 1..10 gone, S 11 says so
    events(fw, QUEUE_SIZE - 2)  # 13..20 queued behind S 11 and E 12: full again
    events(fw, 1)  # 11..20 gone too: the host still misses everything from 1
    assert queued(fw) == [(21, "S", 1), (22, "E", 0)]
    assert sent_snapshot(fw, 0).gone_from == 1


def test_a_collapse_after_acks_begins_at_the_oldest_unacked(fw: types.SimpleNamespace) -> None:
    events(fw, QUEUE_SIZE + 1)  # S 11 (from 1), E 12
    fw.link.ack(11)  # the host took the snapshot: the collapse is over for it
    events(fw, QUEUE_SIZE)  # 12..21 full, then 22 collapses them
    assert queued(fw)[0] == (22, "S", 12)


def test_a_resync_neither_piles_up_snapshots_nor_collapses_the_queue(
    fw: types.SimpleNamespace,
) -> None:
    """Under heavy loss a host asks again and again (a Q per gap, another 0.15 s later):
    each Q queued a snapshot, and a Q on a full queue dropped all ten frames it was asking
    for. A queued snapshot is rendered afresh when resent: one is enough."""
    L, c = fw.tx.L, fw.c
    events(fw, 7)
    for seq in range(1, 8):
        host_line(fw, seq, Kind.SYNC)
    assert [k for _, k, _ in queued(fw)].count("S") == 1
    assert (L[c["COUNT"]], L[c["DROP"]]) == (8, 0)
    events(fw, 2)  # the queue is full: 7 events, the Q's snapshot, 2 events
    host_line(fw, 8, Kind.SYNC)
    assert (L[c["COUNT"]], L[c["DROP"]]) == (QUEUE_SIZE, 0)  # nothing dropped for a Q


def test_a_resync_resends_at_once_and_from_the_first_timeout(fw: types.SimpleNamespace) -> None:
    L, c = fw.tx.L, fw.c
    events(fw, 3)
    for _ in range(3):  # sent, never acked: the timeout backs off 300 -> 2400 ms
        fw.link.tick(0)
        fw.link.tick(0)
        fw.link.tick(0)
        fw.link.tick(L[c["RTO"]])
    assert L[c["RTO"]] > c["RTO0"]
    host_line(fw, 1, Kind.SYNC)
    assert (L[c["RTO"]], L[c["RT"]], L[c["NEXT"]]) == (c["RTO0"], 0, 0)


def test_a_heartbeat_says_which_frames_the_seat_holds(fw: types.SimpleNamespace) -> None:
    events(fw, 4)
    fw.link.ack(1)
    fw.board.written.clear()
    fw.tx.send(-1, 0)
    beat = parse_message(decode(bytes(fw.board.written), direction=Direction.SEAT_TO_HOST))
    assert isinstance(beat, Heartbeat)
    assert (beat.queue_depth, beat.newest_seq) == (3, 4)  # it holds 2, 3 and 4
