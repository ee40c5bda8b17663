"""The durable outbox: every seat event on disk before the seat hears its ack.

Design requirements (issue 3, rules-from-seeds §5 "accurate records, failover without loss"):

- A seat event is acknowledged to the seat only after `put` has committed it, so a gateway
  killed at any instant (SIGKILL, power loss) has either not acked the event (the seat
  resends it) or has it on disk. SQLite in WAL mode with synchronous=FULL.
- A resend after a crash is recognised: the newest sequence taken from each board and boot
  is stored in the same transaction as the event, so a repeat is refused even though the
  gateway's link session started afresh.
- The event id names the frame for good: `<board>-<boot>-<n>`, n the frame's ordinal in
  its boot (1, 2, ... on past the seq's wrap at 65535; docs/mqtt.md). The ordinal of the
  newest frame is stored beside its seq, so after a restart n goes on from it and a frame
  resent gets the id it had.
- Events leave in the order they came, oldest first; per seat that is the seat's order.
  `pending` hands them out and `delivered` removes them once the broker has them (QoS 1
  PUBACK). Until then they stay, across broker outages and restarts: at-least-once, and
  the event id lets every subscriber drop a repeat.
- Bounded: past `max_events` the oldest are dropped, and events older than `max_age_s` are
  dropped by `expire`; each drop is counted, per seat and in total, in the same database,
  and reported (`stats`). Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from gateway.seatlink.codec import MAX_SEQ, next_ordinal, seq_is_new, seq_of_ordinal

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    seat TEXT NOT NULL,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    board TEXT NOT NULL,
    boot INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_n INTEGER NOT NULL,
    PRIMARY KEY (board, boot)
);
CREATE TABLE IF NOT EXISTS links (
    link TEXT PRIMARY KEY,
    board TEXT NOT NULL,
    boot INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS board_names (
    board TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped (
    seat TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (seat, reason)
);
"""

# schema version -> the statements that bring a file of the version before it up to it
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # the ordinal of the newest frame of each board and boot (the event id's n). A version 1
    # gateway counted no wraps: its ids were <board>-<boot>-<seq>, so n goes on from seq.
    2: ("ALTER TABLE seen ADD COLUMN last_n INTEGER NOT NULL DEFAULT 0",
        "UPDATE seen SET last_n = last_seq"),
}


class OutboxError(RuntimeError):
    """The outbox database cannot be used (wrong schema version, bad settings)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One event waiting for the broker."""

    id: int  # the outbox's own order
    event_id: str
    seat: str
    created: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class Record:
    """A seat event to store: `put_many` takes a batch of these in one transaction."""

    board: str
    boot: int
    seq: int
    seat: str
    payload: bytes
    # the frame's ordinal in its boot, which the payload's id carries; None: the outbox
    # counts it on from the newest stored of that boot (seq when none is)
    n: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int  # events waiting
    oldest_age_s: float | None
    dropped: dict[str, dict[str, int]]  # seat -> reason -> count
    dropped_total: int


def event_id(board: str, boot: int, n: int) -> str:
    """The idempotent id of a seat event: the same frame always gets the same id. `n` is the
    frame's ordinal in its boot, never its seq: the seq names two frames once it wraps.
    The payload's seq is `seq_of_ordinal(n)`."""
    return f"{board}-{boot}-{n}"


class Outbox:
    """Open with `with Outbox(path) as box:`. One process writes a given file."""

    MAX_EVENTS = 100_000
    MAX_AGE_S = 7 * 24 * 3600.0

    def __init__(
        self,
        path: str | Path,
        *,
        max_events: int = MAX_EVENTS,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_events < 1:
            raise OutboxError(f"max_events must be at least 1, not {max_events}")
        if max_age_s <= 0:
            raise OutboxError(f"max_age_s must be positive, not {max_age_s}")
        self.path = Path(path)
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._tx():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._check_version()
            self._leased = 0  # the newest id `pending` handed out (being published)
            # count(*) reads the whole table: keep the depth here, for a put at a time
            (self._depth,) = self._db.execute("SELECT count(*) FROM events").fetchone()
        except BaseException:
            self._db.close()
            raise

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return
        version = int(row[0]) if str(row[0]).isdigit() else 0
        if not 1 <= version <= SCHEMA_VERSION:
            # a newer gateway's file: what it added this one would not keep up to date
            raise OutboxError(f"{self.path}: outbox schema {row[0]}, this gateway reads "
                              f"{SCHEMA_VERSION}")  # fmt: skip
        if version < SCHEMA_VERSION:
            # in the opening transaction: a file is upgraded whole or not at all
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    self._db.execute(statement)
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'",
                             (str(SCHEMA_VERSION),))  # fmt: skip

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(self, *, board: str, boot: int, seq: int, seat: str, payload: bytes,
            n: int | None = None) -> bool:  # fmt: skip
        """Store a seat event; True if new, False for a repeat (already stored, or already
        delivered: its seq is not after the newest seen from that board and boot). Ack the
        seat after this returns, whichever it is. `n`: as in Record."""
        return self.put_many([Record(board, boot, seq, seat, payload, n)])[0]

    def put_many(self, records: list[Record], delete: Iterable[int] = ()) -> list[bool]:
        """`put` for a batch, in one transaction (one disk sync for all of them): all are
        stored or, on an error, none. Whether each was new, in order. `delete`: events the
        broker has (as `delivered`), removed in the same transaction."""
        for r in records:
            if not 1 <= r.seq <= MAX_SEQ:
                raise ValueError(f"seq {r.seq} is not a reliable sequence number "
                                 f"(1..{MAX_SEQ})")  # fmt: skip
            if r.boot < 0:
                raise ValueError(f"boot counter {r.boot} is negative")
            if r.n is not None and (r.n < 1 or seq_of_ordinal(r.n) != r.seq):
                raise ValueError(f"ordinal {r.n} is not one of seq {r.seq} "
                                 f"((n - 1) % {MAX_SEQ} + 1 == seq)")  # fmt: skip
        fresh: list[bool] = []
        depth = self._depth
        try:
            with self._tx():
                for r in records:
                    row = self._db.execute(
                        "SELECT last_seq, last_n FROM seen WHERE board = ? AND boot = ?",
                        (r.board, r.boot)).fetchone()
                    if row is not None and not seq_is_new(r.seq, row[0]):
                        fresh.append(False)
                        continue
                    n = self._ordinal(r, row)
                    self._db.execute(
                        "INSERT INTO seen (board, boot, last_seq, last_n) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (board, boot) DO UPDATE SET last_seq = excluded.last_seq, "
                        "last_n = excluded.last_n", (r.board, r.boot, r.seq, n))
                    self._db.execute(
                        "INSERT INTO events (event_id, seat, created, payload) "
                        "VALUES (?, ?, ?, ?)",
                        (event_id(r.board, r.boot, n), r.seat, self._clock(), r.payload))
                    self._depth += 1
                    fresh.append(True)
                gone = [(i,) for i in delete]
                if gone:
                    cur = self._db.executemany("DELETE FROM events WHERE id = ?", gone)
                    self._depth -= max(cur.rowcount, 0)
                self._trim()
        except BaseException:
            self._depth = depth
            raise
        return fresh

    @staticmethod
    def _ordinal(r: Record, row: tuple[int, int] | None) -> int:
        # nothing stored of this boot: its first frame here is seq (no wrap known before it)
        n = r.seq if row is None else next_ordinal(row[1], r.seq)
        if r.n is None:
            return n
        if row is not None and r.n != n:
            # the payload already carries r.n: the stored id must be the same; but ids of
            # this boot may now repeat or skip, which only a bug in the caller's count does
            log.warning("%s boot %d: seq %d given ordinal %d, the outbox counts %d",
                        r.board, r.boot, r.seq, r.n, n)  # fmt: skip
        return r.n

    def _trim(self) -> None:
        excess = self._depth - self.max_events
        if excess > 0:
            # never what `pending` handed out: it is being published, and counting it as
            # dropped would count an event that reaches the broker
            self._drop("SELECT id, seat FROM events WHERE id > ? ORDER BY id LIMIT ?",
                       (self._leased, excess), "overflow")  # fmt: skip

    def _drop(self, query: str, args: tuple[object, ...], reason: str) -> int:
        rows = self._db.execute(query, args).fetchall()
        for _, seat in rows:
            self._db.execute(
                "INSERT INTO dropped VALUES (?, ?, 1) ON CONFLICT (seat, reason) "
                "DO UPDATE SET count = count + 1", (seat, reason))
        self._db.executemany("DELETE FROM events WHERE id = ?", [(r[0],) for r in rows])
        self._depth -= len(rows)
        return len(rows)

    def remember_link(self, link: str, *, board: str, boot: int) -> None:
        """Which board (and boot) was last heard on a link: after a gateway restart a seat
        that booted long ago sends no new hello, and its frames still need their ids."""
        with self._tx():
            self._db.execute("INSERT INTO links VALUES (?, ?, ?) ON CONFLICT (link) DO UPDATE "
                             "SET board = excluded.board, boot = excluded.boot",
                             (link, board, boot))  # fmt: skip

    def remember_board_name(self, board: str, name: str) -> None:
        """The board type a board's hello named (microbit, pico, esp32, virtual): after a
        gateway restart a seat that booted long ago sends no new hello, and a firmware
        update must still know what the board takes. (A table of its own, not a schema
        step: a gateway that does not know it leaves it alone.)"""
        with self._tx():
            self._db.execute("INSERT INTO board_names VALUES (?, ?) ON CONFLICT (board) DO "
                             "UPDATE SET name = excluded.name", (board, name))  # fmt: skip

    def board_name(self, board: str) -> str | None:
        row = self._db.execute("SELECT name FROM board_names WHERE board = ?",
                               (board,)).fetchone()  # fmt: skip
        return None if row is None else str(row[0])

    def last_seq(self, board: str, boot: int) -> int | None:
        """The newest seq stored from this board and boot: a gateway that starts again
        takes the seat's frames from the one after it, so older unacked ones are not
        overtaken by newer ones and dropped as repeats."""
        row = self._db.execute("SELECT last_seq FROM seen WHERE board = ? AND boot = ?",
                               (board, boot)).fetchone()  # fmt: skip
        return None if row is None else int(row[0])

    def last_ordinal(self, board: str, boot: int) -> int | None:
        """The ordinal (the event id's n) of the newest frame stored from this board and
        boot; its seq is `seq_of_ordinal` of it. A link's count goes on from it."""
        row = self._db.execute("SELECT last_n FROM seen WHERE board = ? AND boot = ?",
                               (board, boot)).fetchone()  # fmt: skip
        return None if row is None else int(row[0])

    def linked_board(self, link: str) -> tuple[str, int] | None:
        row = self._db.execute("SELECT board, boot FROM links WHERE link = ?",
                               (link,)).fetchone()  # fmt: skip
        return None if row is None else (str(row[0]), int(row[1]))

    def expire(self) -> int:
        """Drop (and count) events older than max_age_s; how many were dropped."""
        depth = self._depth
        try:
            with self._tx():
                return self._drop("SELECT id, seat FROM events WHERE created < ?",
                                  (self._clock() - self.max_age_s,), "expired")  # fmt: skip
        except BaseException:
            self._depth = depth
            raise

    def pending(self, limit: int = 100, *, after: int = 0) -> list[Entry]:
        """The oldest events not yet delivered (past id `after`), in the order they came.
        They count as being published from now: overflow spares them."""
        rows = read_pending(self._db, after, limit)
        if rows:
            self.lease(rows[-1].id)
        return rows

    def checkpoint_every(self, pages: int) -> None:
        """Let commits checkpoint the WAL only past `pages` (a checkpointer of one's own
        does it sooner, off the commit path: a commit that checkpoints waits for it)."""
        self._db.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    def lease(self, up_to: int) -> None:
        """Events up to this id are being published: overflow spares them."""
        self._leased = max(self._leased, up_to)

    def delivered(self, ids: Iterable[int]) -> None:
        """The broker has these (PUBACK): remove them for good."""
        with self._tx():
            cur = self._db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
        self._depth -= max(cur.rowcount, 0)

    def stats(self) -> OutboxStats:
        (oldest,) = self._db.execute("SELECT min(created) FROM events").fetchone()
        depth = self._depth
        dropped: dict[str, dict[str, int]] = {}
        for seat, reason, count in self._db.execute("SELECT seat, reason, count FROM dropped"):
            dropped.setdefault(seat, {})[reason] = count
        total = sum(c for by_reason in dropped.values() for c in by_reason.values())
        age = None if oldest is None else max(0.0, self._clock() - oldest)
        return OutboxStats(depth=depth, oldest_age_s=age, dropped=dropped, dropped_total=total)


def read_pending(db: sqlite3.Connection, after: int, limit: int) -> list[Entry]:
    rows = db.execute("SELECT id, event_id, seat, created, payload FROM events WHERE id > ? "
                      "ORDER BY id LIMIT ?", (after, limit)).fetchall()  # fmt: skip
    return [Entry(*row) for row in rows]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one write at a time, all or nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
