"""gateway.edge.outbox: seat events on disk (real SQLite), in order, never lost silently."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.edge.outbox import Outbox, OutboxError, event_id


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
