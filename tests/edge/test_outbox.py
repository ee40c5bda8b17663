"""gateway.edge.outbox: seat events on disk (real SQLite), in order, never lost silently."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.edge.outbox import Outbox, OutboxError, Record, event_id
from gateway.seatlink.codec import MAX_SEQ, next_seq, seq_of_ordinal


def put(box: Outbox, seq: int, *, board: str = "B1", boot: int = 1, seat: str = "s1") -> bool:
    return box.put(board=board, boot=boot, seq=seq, seat=seat, payload=f"e{seq}".encode())


def test_events_leave_in_the_order_they_came_and_go_once_delivered(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        for seq, seat in [(1, "s1"), (1, "s2"), (2, "s1"), (2, "s2")]:
            assert box.put(board=f"B-{seat}", boot=1, seq=seq, seat=seat, payload=b"x")
        first = box.pending()
        assert [(e.seat, e.event_id) for e in first] == [
            ("s1", "B-s1-1-1"), ("s2", "B-s2-1-1"), ("s1", "B-s1-1-2"), ("s2", "B-s2-1-2")]
        box.delivered([first[0].id, first[1].id])
        assert [e.event_id for e in box.pending()] == ["B-s1-1-2", "B-s2-1-2"]
        assert box.stats().depth == 2


def test_a_repeat_is_refused_also_after_delivery_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        assert put(box, 5)
        assert not put(box, 5)  # the seat resent it: stored once
        assert not put(box, 4)  # behind the newest from this board and boot
        box.delivered(e.id for e in box.pending())
    with Outbox(path) as box:  # a new gateway process: its link session starts afresh
        assert not put(box, 5)
        assert put(box, 6)
        assert put(box, 5, boot=2)  # the board rebooted: its numbers start again
        assert [e.event_id for e in box.pending()] == [event_id("B1", 1, 6), "B1-2-5"]


def test_sequence_numbers_wrap(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert put(box, 65535)
        assert put(box, 1)  # after 65535 comes 1
        assert not put(box, 65535)


def test_ids_count_the_frames_of_a_boot_on_past_the_wrap(tmp_path: Path) -> None:
    """seq names two frames once it wraps; the id's n names one: 1, 2, ... past 65535, also
    after a restart, and from 1 again in the next boot."""
    path = tmp_path / "o.db"
    total = MAX_SEQ + 10
    seqs = [1]
    while len(seqs) < total:
        seqs.append(next_seq(seqs[-1]))
    with Outbox(path) as box:
        records = [Record("B1", 1, seq, "s1", b"x") for seq in seqs]
        assert all(box.put_many(records))
        ids = [e.event_id for e in box.pending(limit=total)]
        assert ids == [f"B1-1-{n}" for n in range(1, total + 1)]  # distinct, increasing
        assert [seq_of_ordinal(int(i.rsplit("-", 1)[1])) for i in ids] == seqs
        assert not put(box, 10)  # the seat resent the newest: the one id it has is kept
        assert box.last_ordinal("B1", 1) == total
    with Outbox(path) as box:  # a new gateway process
        assert not put(box, 10) and not put(box, 5)
        assert put(box, 11) and put(box, 14)  # 12 and 13: dropped by the seat's full queue
        assert put(box, 1, boot=2) and put(box, 2, boot=2)
        assert [e.event_id for e in box.pending(limit=total + 10)][total:] == [
            f"B1-1-{MAX_SEQ + 11}", f"B1-1-{MAX_SEQ + 14}", "B1-2-1", "B1-2-2"]
        assert box.last_ordinal("B1", 1) == MAX_SEQ + 14 and box.last_seq("B1", 1) == 14


def test_an_ordinal_given_must_be_one_of_its_seq(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The link numbers the frames it takes (the payload's id has n): the outbox stores
    that n, and refuses one that cannot be its seq's."""
    with Outbox(tmp_path / "o.db") as box:
        for n in (0, 5, MAX_SEQ + 5):
            with pytest.raises(ValueError, match=f"ordinal {n} is not one of seq 4"):
                box.put(board="B1", boot=1, seq=4, seat="s1", payload=b"x", n=n)
        assert box.stats().depth == 0
        # the count of a boot this gateway first hears past its wrap: n as the link says
        assert box.put(board="B1", boot=1, seq=4, seat="s1", payload=b"x", n=MAX_SEQ + 4)
        assert put(box, 5)  # and on from it
        assert [e.event_id for e in box.pending()] == [f"B1-1-{MAX_SEQ + 4}",
                                                       f"B1-1-{MAX_SEQ + 5}"]  # fmt: skip
        # a count that disagrees with the stored one by a wrap is a bug of the caller's: the
        # payload already has its n, so the stored id is the same, and the log says so
        with caplog.at_level(logging.WARNING, logger="gateway.edge.outbox"):
            assert box.put(board="B1", boot=1, seq=6, seat="s1", payload=b"x", n=6)
        assert "seq 6 given ordinal 6, the outbox counts 65541" in caplog.text
        assert box.pending()[-1].event_id == "B1-1-6"


def test_an_outbox_of_schema_1_is_upgraded_and_its_counts_go_on(tmp_path: Path) -> None:
    """A file the gateway before ordinals wrote: its ids were <board>-<boot>-<seq>, so a
    boot's n goes on from its seq, and what waits for the broker stays."""
    path = tmp_path / "o.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE, seat TEXT NOT NULL, created REAL NOT NULL,
            payload BLOB NOT NULL);
        CREATE TABLE seen (board TEXT NOT NULL, boot INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, PRIMARY KEY (board, boot));
        CREATE TABLE links (link TEXT PRIMARY KEY, board TEXT NOT NULL, boot INTEGER NOT NULL);
        CREATE TABLE dropped (seat TEXT NOT NULL, reason TEXT NOT NULL,
            count INTEGER NOT NULL, PRIMARY KEY (seat, reason));
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO seen VALUES ('B1', 1, 65534);
        INSERT INTO events (event_id, seat, created, payload)
            VALUES ('B1-1-65534', 's1', 1000.0, x'65');
    """)
    db.close()
    with Outbox(path) as box:
        assert box.last_ordinal("B1", 1) == 65534
        assert not put(box, 65534)
        assert put(box, 65535) and put(box, 1)
        assert [e.event_id for e in box.pending()] == ["B1-1-65534", "B1-1-65535",
                                                       f"B1-1-{MAX_SEQ + 1}"]  # fmt: skip
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    db.close()
    with Outbox(path) as box:  # upgraded once: opened again as it is
        assert box.last_ordinal("B1", 1) == MAX_SEQ + 1


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        for seq in (0, 65536, -1):
            with pytest.raises(ValueError, match="not a reliable sequence number"):
                put(box, seq)
        with pytest.raises(ValueError, match="negative"):
            put(box, 1, boot=-1)
        assert box.stats().depth == 0
        assert put(box, 1)  # and nothing was marked seen
    with pytest.raises(OutboxError, match="max_events"):
        Outbox(tmp_path / "p.db", max_events=0)


def test_overflow_drops_the_oldest_and_counts_them_per_seat(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_events=3) as box:
        for seq in range(1, 6):
            put(box, seq, seat="s1" if seq < 3 else "s2")
        assert [e.event_id for e in box.pending()] == ["B1-1-3", "B1-1-4", "B1-1-5"]
        stats = box.stats()
        assert stats.dropped == {"s1": {"overflow": 2}} and stats.dropped_total == 2


def test_overflow_spares_events_being_published(tmp_path: Path) -> None:
    """What the drainer holds reaches the broker: dropping it would count a delivered
    event as lost. The next oldest go instead."""
    with Outbox(tmp_path / "o.db", max_events=3) as box:
        for seq in (1, 2):
            put(box, seq)
        in_flight = box.pending()
        for seq in (3, 4, 5):
            put(box, seq)
        assert [e.event_id for e in box.pending()] == ["B1-1-1", "B1-1-2", "B1-1-5"]
        assert box.stats().dropped_total == 2  # 3 and 4
        box.delivered(e.id for e in in_flight)
        assert box.stats().depth == 1


def test_old_events_expire_counted(tmp_path: Path) -> None:
    now = [1000.0]
    with Outbox(tmp_path / "o.db", max_age_s=60, clock=lambda: now[0]) as box:
        put(box, 1)
        now[0] += 30
        put(box, 2)
        now[0] += 40  # the first is 70 s old, the second 40 s
        assert box.stats().oldest_age_s == 70
        assert box.expire() == 1
        assert [e.event_id for e in box.pending()] == ["B1-1-2"]
        assert box.stats().dropped == {"s1": {"expired": 1}}


def test_another_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(OutboxError, match="outbox schema 99"):
        Outbox(path)


WRITER = """
import sys
from gateway.edge.outbox import Outbox
box = Outbox(sys.argv[1])
seq = int(sys.argv[2])  # the seat resends from its first unacked frame
while True:
    seq = seq % 65535 + 1
    box.put(board="B1", boot=1, seq=seq, seat="s1", payload=b"x" * 200)
    print(seq, flush=True)  # the ack the seat would get: only after put returned
"""


def test_every_acked_event_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    acked: list[int] = []
    for round_ in range(3):
        first_unacked = acked[-1] if acked else 0
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(first_unacked)],
                                env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while len(acked) < 50 + 87 * round_ and time.monotonic() < deadline:
            acked.append(int(proc.stdout.readline()))
        proc.send_signal(signal.SIGKILL)  # mid-stream, whatever it was doing
        proc.wait(timeout=10)
        proc.stdout.close()
        with Outbox(path) as box:
            stored = [int(e.event_id.rsplit("-", 1)[1]) for e in box.pending(limit=10_000)]
        assert set(acked) <= set(stored)  # nothing acked is lost, across every kill
        assert stored == sorted(set(stored))  # nothing twice, in the order it came
