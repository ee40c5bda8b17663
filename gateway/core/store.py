"""The core's event store: every seat and call event once, append-only (issue 5).

`open_store(url)` opens it: SQLite by default (`sqlite:///relative/core.db`,
`sqlite:////absolute/core.db` as in SQLAlchemy, or a plain path), PostgreSQL by URL
(`postgresql://user@host:port/db`, psycopg 3). Both run the same SQL, the same migrations and
the same test suite.

What it keeps:

- `event`: every seat event (`seat/{seat}/event`) and call event (`call/{call}/event`) once,
  by its idempotent id (`<board>-<boot>-<n>`, `<pbx>-<call>-<step>`), with the payload
  text exactly as received. A seat's events by time are the agent-state timeline, a call's
  events by step are its call record. Rows are never changed or removed: the module has no
  statement that would, and triggers refuse anyone's UPDATE or DELETE (and, on PostgreSQL,
  TRUNCATE).
- `rejected`: bad input, one row per distinct message (topic + payload; a redelivery of the
  same bad message is counted again but stored once), with the reason, a readable detail and
  the payload truncated to `RAW_LIMIT` characters. Bad input never reaches `event`.
- `sign_in`: every change of who is signed in at a seat (`seat/{seat}/agent`, issue 19) once,
  by its id, with the payload as received: the sign-in intervals that book each seat event
  to an agent (docs/kpi.md, Keys). Append-only like `event`; read with `sign_ins()`, followed
  with `sign_in_tail()`. The API's retained copy handed over again is a repeat by id.
- `schema_version`: the migrations applied (`MIGRATIONS`, applied at open, one transaction
  each). A database newer than this code is refused before anything is written.

`type` of a row: a call event's `type` (`answer`, `release`, ...); a seat event's `type`
(`hello`, `snapshot`, `reject`) or, for `type` `event`, `event:<data.event>`
(`event:answered`, `event:state`, ...). `seq` of a row: the seat link's sequence number, or
the call's step: `events()` returns (t, seq, id) order, so two steps of one call at the same
instant keep their order (`...-10` sorts before `...-9` as text).

Ingest (`EventStore.ingest`) takes a batch of (topic, payload) as they came from MQTT and
writes it in one transaction: a batch is all stored or, on a database error, none of it
(`StoreError`; do not acknowledge it). Reprocessing is idempotent: the same batch again
stores nothing and leaves every table as it was.

SQLite runs in WAL mode with synchronous=FULL: a committed batch survives a power cut.
Measured with 100,000 seat events in batches of 1,000 to 10,000, NORMAL was no faster within
the noise: a commit's cost is writing the batch's B-tree pages into the log, not the one sync.
So ingest in batches (hundreds to thousands of messages), never one transaction per event.
One writer per SQLite file. On PostgreSQL, writers serialise on an advisory lock so that the
counts of duplicates are exact. An `EventStore` is for one thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import ValidationError

from gateway.contract.payloads import (
    SCHEMA_VERSION,
    CallEvent,
    SeatAgent,
    SeatEvent,
    seat_event_n,
)
from gateway.contract.topics import ID_PATTERN, Parsed, TopicError, Topics
from gateway.db_url import parse_db_url, without_password
from gateway.seatlink.codec import MAX_SEQ, NUMBER_MAX, EventCode

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "AlertAction",
    "LATEST_VERSION",
    "MAX_SKEW_S",
    "MIGRATIONS",
    "PAYLOAD_LIMIT",
    "RAW_LIMIT",
    "EventStore",
    "IngestResult",
    "Migration",
    "Reject",
    "StoreError",
    "StoredEvent",
    "StoredSignIn",
    "open_store",
]

MAX_SKEW_S = 300.0  # an event stamped further ahead of the ingest clock is refused
MAX_AGE_S = 30 * 86400.0  # ... or further behind: an edge outbox holds days, not months
MAX_SNAPSHOT_S = 7 * 86400  # a snapshot's time in its state: more is a broken board clock
PAYLOAD_LIMIT = 64 * 1024  # bytes; a seat or call event is a few hundred
RAW_LIMIT = 2048  # characters of a rejected payload kept in `rejected.raw`
DETAIL_LIMIT = 500
TOPIC_LIMIT = 512
PAGE = 1000  # rows per query of `events()`
TOPIC_CACHE = 100_000  # topics parsed once (one per seat and call)
SEAT_EVENT_NAMES = frozenset(code.name.lower() for code in EventCode)

_BIGINT = 2**63 - 1
# PostgreSQL advisory locks, each keyed by (this key, a hash of the schema the store's tables
# are in): stores in other schemas of one database (other sites, tests) never wait on each
# other or take each other's lead
_LOCK_KEY = 0x5EA7C0BE  # the store's writers and migrations
_LEADER_KEY = 0x5EA7C0BF  # the core worker that leads


AlertAction = Literal["acknowledged", "resolved", "cleared"]


class StoreError(RuntimeError):
    """The store cannot be opened or written: a message a person can act on."""


class Reject(StrEnum):
    """Why a message was refused (the `reason` of `rejected` and of the counts)."""

    UNKNOWN_TOPIC = "unknown_topic"  # not a topic of this site's contract
    TOO_LARGE = "too_large"  # payload above PAYLOAD_LIMIT bytes
    NOT_JSON = "not_json"  # not UTF-8 JSON (NaN and Infinity are not JSON)
    WRONG_VERSION = "wrong_version"  # "v" is not 1
    SCHEMA = "schema"  # not the contract's model, or an id, range or time that cannot be
    TOPIC_MISMATCH = "topic_mismatch"  # the payload's seat or call is not the topic's
    UNKNOWN_SEAT = "unknown_seat"  # a seat event of a seat not in `known_seats`
    CLOCK_SKEW = "clock_skew"  # t more than max_skew_s ahead of the ingest clock
    ID_CONFLICT = "id_conflict"  # an id already stored (or earlier in the batch) with other content


# --- schema -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. `common` runs on both dialects ({collate_c} becomes the byte-order
    collation of PostgreSQL, nothing on SQLite, whose default is byte order), then the
    dialect's own statements."""

    version: int
    summary: str
    common: tuple[str, ...]
    sqlite: tuple[str, ...] = ()
    postgresql: tuple[str, ...] = ()

    def statements(self, dialect: Literal["sqlite", "postgresql"]) -> tuple[str, ...]:
        collate_c = ' COLLATE "C"' if dialect == "postgresql" else ""
        own = self.sqlite if dialect == "sqlite" else self.postgresql
        return tuple(s.format(collate_c=collate_c) for s in self.common) + own


def _sqlite_append_only(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{what} BEFORE {what.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never changed or "
        "removed'); END"
        for what in ("update", "delete")
    )


def _postgresql_append_only(table: str) -> tuple[str, ...]:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION seatlink_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION seatlink_append_only()",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event and rejected, append-only",
        common=(
            """CREATE TABLE event (
                id TEXT{collate_c} PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('seat', 'call')),
                seat TEXT,
                call BIGINT,
                seq BIGINT NOT NULL,
                type TEXT NOT NULL,
                t DOUBLE PRECISION NOT NULL,
                received DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL
            )""",
            "CREATE INDEX event_by_t ON event (t, seq, id)",
            "CREATE INDEX event_by_seat ON event (seat, t)",
            "CREATE INDEX event_by_call ON event (call, seq) WHERE call IS NOT NULL",
            """CREATE TABLE rejected (
                digest TEXT{collate_c} PRIMARY KEY,
                reason TEXT NOT NULL,
                detail TEXT NOT NULL,
                topic TEXT NOT NULL,
                event_id TEXT,
                raw TEXT NOT NULL,
                size BIGINT NOT NULL,
                received DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX rejected_by_received ON rejected (received)",
        ),
        sqlite=_sqlite_append_only("event") + _sqlite_append_only("rejected"),
        postgresql=(
            "CREATE FUNCTION seatlink_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only: rows are never changed or removed', "
            "TG_TABLE_NAME; END $$",
            *_postgresql_append_only("event"),
            *_postgresql_append_only("rejected"),
        ),
    ),
    Migration(
        2,
        "alerts and their actions, append-only; the order events were stored in",
        common=(
            """CREATE TABLE alert (
                id TEXT{collate_c} PRIMARY KEY,
                rule TEXT NOT NULL,
                seat TEXT NOT NULL,
                t DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL
            )""",
            "CREATE INDEX alert_by_t ON alert (t)",
            """CREATE TABLE alert_action (
                alert TEXT{collate_c} NOT NULL REFERENCES alert (id),
                action TEXT NOT NULL CHECK (action IN ('acknowledged', 'resolved', 'cleared')),
                who TEXT NOT NULL,
                t DOUBLE PRECISION NOT NULL,
                note TEXT NOT NULL,
                PRIMARY KEY (alert, action)
            )""",
        ),
        sqlite=_sqlite_append_only("alert") + _sqlite_append_only("alert_action"),
        postgresql=(
            # SQLite's rowid is this already: rows are never deleted, so it only grows
            "ALTER TABLE event ADD COLUMN n BIGINT GENERATED ALWAYS AS IDENTITY",
            "CREATE UNIQUE INDEX event_by_n ON event (n)",
            *_postgresql_append_only("alert"),
            *_postgresql_append_only("alert_action"),
        ),
    ),
    Migration(
        3,
        "sign_in: who is signed in at each seat, every change once, append-only (issue 19)",
        common=(
            """CREATE TABLE sign_in (
                id TEXT{collate_c} PRIMARY KEY,
                seat TEXT NOT NULL,
                agent TEXT,
                t DOUBLE PRECISION NOT NULL,
                received DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL
            )""",
            "CREATE INDEX sign_in_by_seat ON sign_in (seat, t)",
            "CREATE INDEX sign_in_by_t ON sign_in (t)",
        ),
        sqlite=_sqlite_append_only("sign_in"),
        postgresql=(
            "ALTER TABLE sign_in ADD COLUMN n BIGINT GENERATED ALWAYS AS IDENTITY",
            "CREATE UNIQUE INDEX sign_in_by_n ON sign_in (n)",
            *_postgresql_append_only("sign_in"),
        ),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

_SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
    "summary TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
)


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of `event`."""

    id: str
    kind: Literal["seat", "call"]
    seat: str | None  # seat events: the seat; call events: the seat the step concerns
    call: int | None  # call events only
    seq: int  # seat events: the link's sequence number; call events: the step
    type: str  # call: CallEvent.type; seat: hello, snapshot, reject or event:<data.event>
    t: float  # the event's own time (Unix seconds, the gateway's or the PBX's clock)
    received: float  # when the store took it (the ingest clock)
    payload: str  # the JSON text exactly as received

    def model(self) -> SeatEvent | CallEvent:
        """The payload as the contract's model."""
        cls = SeatEvent if self.kind == "seat" else CallEvent
        return cls.model_validate_json(self.payload, strict=True)


@dataclass(frozen=True, slots=True)
class StoredSignIn:
    """One row of `sign_in`: from `t` on, `agent` (None: nobody) is signed in at `seat`."""

    id: str
    seat: str
    agent: str | None
    t: float  # the API's clock
    received: float
    payload: str

    def model(self) -> SeatAgent:
        return SeatAgent.model_validate_json(self.payload, strict=True)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of one batch: every message is in exactly one of the counts."""

    stored: int = 0  # events and sign-in changes
    duplicates: int = 0  # ids already stored (or earlier in the batch) with the same content
    not_events: int = 0  # contract topics that carry no events (seat state, health, ...)
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    new: tuple[StoredEvent, ...] = ()  # the events stored, in batch order
    new_sign_ins: tuple[StoredSignIn, ...] = ()  # the sign-in changes stored

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class _NewSignIn:
    row: tuple[str, str, str | None, float, float, str]


@dataclass(frozen=True, slots=True)
class _Rejection:
    reason: Reject
    detail: str
    event_id: str | None = None


_Row = tuple[str, str, str | None, int | None, int, str, float, float, str]
_SignInRow = tuple[str, str, str | None, float, float, str]  # id seat agent t received payload
_SIGN_IN_COLUMNS = "id, seat, agent, t, received, payload"
_COLUMNS = "id, kind, seat, call, seq, type, t, received, payload"
_INSERT_EVENT = (
    f"INSERT INTO event ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)


# --- the two databases ------------------------------------------------------------------------


class _Backend(Protocol):
    dialect: Literal["sqlite", "postgresql"]
    where: str  # for messages (no password)
    errors: tuple[type[Exception], ...]  # the driver's errors

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def lock(self) -> None: ...

    def table_names(self) -> set[str]: ...

    def stored(self, ids: list[str]) -> list[tuple[str, str]]: ...

    order_column: str

    def try_lead(self) -> bool: ...

    def reconnect(self) -> None: ...

    def insert_events(self, rows: list[_Row]) -> set[str]: ...

    def prepare(self) -> None: ...

    def close(self) -> None: ...


class _Sqlite:
    dialect: Literal["sqlite", "postgresql"] = "sqlite"
    order_column = "rowid"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str) -> None:
        self.where = path
        if path != ":memory:" and not Path(path).parent.is_dir():
            raise StoreError(f"{path}: directory {Path(path).parent} does not exist")
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from None

    def prepare(self) -> None:
        # After the version check: a newer database is refused untouched.
        if self.where != ":memory:":
            (mode,) = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode != "wal":
                raise StoreError(f"{self.where}: cannot use write-ahead logging (journal "
                                 f"mode {mode}); is it on a network file system?")  # fmt: skip
        self._db.execute("PRAGMA synchronous=FULL")
        # A batch touches pages of five B-trees (rows, id, (t, seq, id), (seat, t), calls):
        # 64 MiB of page cache instead of 2 keeps them in memory (measured: about +20 %).
        self._db.execute(f"PRAGMA cache_size=-{64 * 1024}")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, () if params is None else params).fetchall()

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return self._db.executemany(sql, rows).rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now: one writer at a time
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def lock(self) -> None:
        pass  # BEGIN IMMEDIATE took it

    def try_lead(self) -> bool:
        return True

    def reconnect(self) -> None:
        pass  # a file: nothing to lose but a lock, which the next write takes again

    def table_names(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in rows}

    def stored(self, ids: list[str]) -> list[tuple[str, str]]:
        rows = self._db.execute("SELECT id, payload FROM event WHERE id IN "
                                "(SELECT value FROM json_each(?))", (json.dumps(ids),))  # fmt: skip
        return [(str(i), str(p)) for i, p in rows]

    def insert_events(self, rows: list[_Row]) -> set[str]:
        # Optimistic: insert, and only if some were there already find out which. Rows are
        # never deleted, so every row this insert added has a rowid above the largest before.
        ((before,),) = self._db.execute("SELECT coalesce(max(rowid), 0) FROM event")
        n = self._db.executemany(_INSERT_EVENT, rows).rowcount
        if n == len(rows):
            return set()
        added = {str(i) for (i,) in self._db.execute("SELECT id FROM event WHERE rowid > ?",
                                                     (before,))}  # fmt: skip
        return {r[0] for r in rows} - added

    def close(self) -> None:
        self._db.close()


class _Postgres:
    dialect: Literal["sqlite", "postgresql"] = "postgresql"
    order_column = "n"  # migration 2; given under the writers' lock, so in commit order

    def __init__(self, url: str) -> None:
        import psycopg

        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self.where = without_password(url)
        self._url = url
        self._leading = False
        try:
            self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                url, autocommit=True, connect_timeout=10)  # fmt: skip
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot connect: {exc}".strip()) from None

    def prepare(self) -> None:
        pass

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        if params is None:
            cur = self._conn.execute(sql.encode())  # no placeholders: '%' stays itself
        else:
            cur = self._conn.execute(sql.replace("?", "%s").encode(), params)
        return cur.fetchall() if cur.description is not None else []

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s").encode(), rows)
            return cur.rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def lock(self) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                           (_LOCK_KEY,))  # fmt: skip

    def reconnect(self) -> None:
        """A new connection if the server dropped this one (a restart, a killed backend):
        psycopg does not reconnect by itself. The leader's lock went with the old one."""
        import psycopg

        if not (self._conn.closed or self._conn.broken):
            return
        self._leading = False
        try:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot reconnect: {exc}".strip()) from None

    def try_lead(self) -> bool:
        # held by this connection until it closes: a worker that dies hands over at once
        if not self._leading:
            ((got,),) = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (_LEADER_KEY,))
            self._leading = bool(got)
        return self._leading

    def table_names(self) -> set[str]:
        # the tables the unqualified names resolve to (search_path), as the migrations see them
        names = ["schema_version", "event", "rejected", "alert", "alert_action", "sign_in"]
        rows = self._conn.execute("SELECT name FROM unnest(%s::text[]) AS name "
                                  "WHERE to_regclass(name) IS NOT NULL", (names,))  # fmt: skip
        return {str(name) for (name,) in rows}

    def stored(self, ids: list[str]) -> list[tuple[str, str]]:
        rows = self._conn.execute("SELECT id, payload FROM event WHERE id = ANY(%s)", (ids,))
        return [(str(i), str(p)) for i, p in rows]

    def insert_events(self, rows: list[_Row]) -> set[str]:
        ids = [r[0] for r in rows]
        there = {str(i) for (i,) in self._conn.execute("SELECT id FROM event WHERE id = ANY(%s)",
                                                       (ids,))}  # fmt: skip
        fresh = [r for r in rows if r[0] not in there]
        if fresh:
            n = self.execute_many(_INSERT_EVENT, fresh)
            if n != len(fresh):  # the writers' lock is held: nobody else inserts
                raise StoreError(f"{n} of {len(fresh)} new events inserted: another writer "
                                 "without the store's lock?")  # fmt: skip
        return there

    def close(self) -> None:
        self._conn.close()


# --- opening ----------------------------------------------------------------------------------


def open_store(
    url: str | Path,
    *,
    topics: Topics | None = None,
    known_seats: Collection[str] | None = None,
    max_skew_s: float = MAX_SKEW_S,
    max_age_s: float = MAX_AGE_S,
    clock: Callable[[], float] = time.time,
) -> EventStore:
    """Open (and migrate) the store at `url`:

    - `sqlite:///relative/core.db`, `sqlite:////absolute/core.db` (four slashes, as in
      SQLAlchemy), `sqlite:///:memory:`, or a plain path: SQLite;
    - `postgresql://user@host:port/db` (or `postgres://`, any libpq URI): PostgreSQL.

    `topics`: the site's topics, needed to ingest (a reader may leave it out).
    `known_seats`: seat events of other seats are rejected (`unknown_seat`); None: any seat.
    `max_skew_s`: an event whose `t` is further ahead of `clock()` is rejected (`clock_skew`),
    as is one more than `max_age_s` behind it.
    """
    dialect, target = parse_db_url(url, what="store")
    backend: _Backend = _Sqlite(target) if dialect == "sqlite" else _Postgres(target)
    try:
        store = EventStore(backend, topics=topics, known_seats=known_seats,
                           max_skew_s=max_skew_s, max_age_s=max_age_s, clock=clock)  # fmt: skip
        store.migrate()
    except BaseException:
        backend.close()
        raise
    return store


# --- the store --------------------------------------------------------------------------------


class EventStore:
    """Open with `open_store`; use as a context manager or call `close`."""

    def __init__(
        self,
        backend: _Backend,
        *,
        topics: Topics | None,
        known_seats: Collection[str] | None,
        max_skew_s: float,
        clock: Callable[[], float],
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        if not max_skew_s >= 0:
            raise ValueError(f"max_skew_s must be zero or more, not {max_skew_s}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be more than zero, not {max_age_s}")
        self.max_age_s = max_age_s
        self._db = backend
        self._topics = topics
        self.known_seats: Collection[str] | None = None if known_seats is None \
            else frozenset(known_seats)  # fmt: skip
        self.max_skew_s = max_skew_s
        self._clock = clock
        self._stored = 0
        self._duplicates = 0
        self._not_events = 0
        self._rejected: Counter[str] = Counter()
        self._topic_cache: dict[str, Parsed | str] = {}  # topic -> parsed, or why not

    @property
    def topics(self) -> Topics | None:
        """The site's topics: ingest takes its events and refuses other sites' topics."""
        return self._topics

    @topics.setter
    def topics(self, topics: Topics | None) -> None:
        self._topics = topics
        self._topic_cache.clear()

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return self._db.dialect

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """The database driver's errors (a reader's call may raise them; ingest and the
        alert calls raise StoreError)."""
        return self._db.errors

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The newest migration applied; 0 for an empty database."""
        tables = self._db.table_names()
        if "schema_version" not in tables:
            if tables & {"event", "rejected"} or (self.dialect == "sqlite" and tables):
                raise StoreError(f"{self._db.where}: not an event store of seatlink (tables "
                                 f"{', '.join(sorted(tables))} but no schema_version); "
                                 "nothing was changed")  # fmt: skip
            return 0
        rows = self._db.query("SELECT version FROM schema_version ORDER BY version")
        versions = [int(v) for (v,) in rows]
        if versions != list(range(1, len(versions) + 1)):
            raise StoreError(f"{self._db.where}: schema_version holds {versions}, not 1..n; "
                             "nothing was changed")  # fmt: skip
        return len(versions)

    def _check_not_newer(self, version: int) -> None:
        if version > LATEST_VERSION:
            raise StoreError(f"{self._db.where}: schema version {version} is newer than this "
                             f"code knows ({LATEST_VERSION}): upgrade seatlink to open it; "
                             "nothing was changed")  # fmt: skip

    def migrate(self) -> list[int]:
        """Apply the migrations the database lacks, each in one transaction; the versions
        applied. `open_store` calls it. A newer database raises before anything is written."""
        try:
            self._check_not_newer(self.schema_version())
            self._db.prepare()
            applied: list[int] = []
            for migration in MIGRATIONS:
                with self._db.transaction():
                    self._db.lock()
                    current = self.schema_version()  # again, under the lock
                    self._check_not_newer(current)
                    if current >= migration.version:
                        continue
                    self._db.query(_SCHEMA_VERSION_TABLE)
                    for statement in migration.statements(self._db.dialect):
                        self._db.query(statement)
                    self._db.query(
                        "INSERT INTO schema_version VALUES (?, ?, ?)",
                        (migration.version, migration.summary, self._clock()),
                    )
                    applied.append(migration.version)
            return applied
        except self._db.errors as exc:
            raise StoreError(f"{self._db.where}: cannot open the event store: {exc}") from exc

    # --- ingest ---------------------------------------------------------------------------

    def ingest(self, batch: Sequence[tuple[str, bytes]]) -> IngestResult:
        """Store a batch of (topic, payload) from MQTT in one transaction: new events into
        `event`, bad ones into `rejected`, repeats and non-events counted. Idempotent.
        `StoreError` if the database fails: then nothing of the batch is stored or counted."""
        topics = self._topics
        if topics is None:
            raise StoreError("this store was opened without topics=: it can read, not ingest")
        now = self._clock()
        rows: list[_Row] = []
        first: dict[str, str] = {}  # id -> payload of its first row in this batch
        again: list[tuple[_Row, str, bytes]] = []  # ids seen before: stored or in this batch
        rejects: list[tuple[_Rejection, str, bytes]] = []
        origin: dict[str, tuple[str, bytes]] = {}  # id -> (topic, payload) of a new row
        not_events = 0
        sign_ins: list[_SignInRow] = []
        first_sign_in: dict[str, str] = {}  # id -> payload, of this batch's sign-in changes
        sign_ins_again: list[tuple[_SignInRow, str, bytes]] = []
        origin_s: dict[str, tuple[str, bytes]] = {}
        for topic, payload in batch:
            outcome = self._check(topics, topic, payload, now)
            if outcome is None:
                not_events += 1
            elif isinstance(outcome, _Rejection):
                rejects.append((outcome, topic, payload))
            elif isinstance(outcome, _NewSignIn):
                row_s = outcome.row
                if row_s[0] in first_sign_in:
                    sign_ins_again.append((row_s, topic, payload))
                else:
                    first_sign_in[row_s[0]] = row_s[5]
                    origin_s[row_s[0]] = (topic, payload)
                    sign_ins.append(row_s)
            elif outcome[0] in first:
                again.append((outcome, topic, payload))
            else:
                first[outcome[0]] = outcome[8]
                origin[outcome[0]] = (topic, payload)
                rows.append(outcome)
        duplicates = 0
        try:
            with self._db.transaction():
                self._db.lock()
                there = self._db.insert_events(rows) if rows else set()
                known = dict(self._db.stored(sorted(there))) if there else {}
                fresh = [r for r in rows if r[0] not in there] if there else rows
                seen = [(r, *origin[r[0]]) for r in rows if r[0] in there]
                for row, topic, payload in seen + again:
                    if _same(known.get(row[0], first[row[0]]), row[8]):
                        duplicates += 1
                    else:
                        conflict = _Rejection(Reject.ID_CONFLICT, f"id {row[0]} is stored with "
                                              "other content", row[0])  # fmt: skip
                        rejects.append((conflict, topic, payload))
                fresh_sign_ins: list[_SignInRow] = []
                if sign_ins:
                    ids = [r[0] for r in sign_ins]
                    held = {str(i): str(p) for i, p in self._db.query(
                        f"SELECT id, payload FROM sign_in WHERE id IN "
                        f"({', '.join('?' * len(ids))})", ids)}  # fmt: skip
                    fresh_sign_ins = [r for r in sign_ins if r[0] not in held]
                    if fresh_sign_ins:
                        self._db.execute_many(
                            f"INSERT INTO sign_in ({_SIGN_IN_COLUMNS}) VALUES "
                            "(?, ?, ?, ?, ?, ?)", fresh_sign_ins)  # fmt: skip
                    # the retained copy handed over again after a reconnect: a repeat
                    seen_s = [(r, *origin_s[r[0]]) for r in sign_ins if r[0] in held]
                    for row_s, topic, payload in seen_s + sign_ins_again:
                        if _same(held.get(row_s[0], first_sign_in[row_s[0]]), row_s[5]):
                            duplicates += 1
                        else:
                            conflict = _Rejection(Reject.ID_CONFLICT, f"sign-in change id "
                                                  f"{row_s[0]} is stored with other content",
                                                  row_s[0])  # fmt: skip
                            rejects.append((conflict, topic, payload))
                if rejects:
                    self._db.execute_many(
                        "INSERT INTO rejected (digest, reason, detail, topic, event_id, raw, "
                        "size, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (digest) DO NOTHING",
                        [_rejected_row(r, topic, payload, now) for r, topic, payload in rejects],
                    )
        except self._db.errors as exc:
            raise StoreError(
                f"{self._db.where}: a batch of {len(batch)} messages was not stored: {exc}"
            ) from exc
        rejected = Counter(str(r.reason) for r, _, _ in rejects)
        stored = len(fresh) + len(fresh_sign_ins)
        self._stored += stored
        self._duplicates += duplicates
        self._not_events += not_events
        self._rejected.update(rejected)
        return IngestResult(stored=stored, duplicates=duplicates, not_events=not_events,
                            rejected=dict(rejected),
                            new=tuple(StoredEvent(*r) for r in fresh),  # type: ignore[arg-type]
                            new_sign_ins=tuple(StoredSignIn(*r)
                                               for r in fresh_sign_ins))  # fmt: skip

    def _check(self, topics: Topics, topic: str, payload: bytes,
               now: float) -> _Row | _NewSignIn | _Rejection | None:  # fmt: skip
        """The row to store, why not, or None for a contract topic that is no event."""
        parsed = self._topic_cache.get(topic)
        if parsed is None:
            try:
                parsed = topics.parse(topic)
            except TopicError as exc:
                parsed = str(exc)
            if len(self._topic_cache) >= TOPIC_CACHE:
                self._topic_cache.clear()
            self._topic_cache[topic] = parsed
        if isinstance(parsed, str):
            return _Rejection(Reject.UNKNOWN_TOPIC, parsed)
        name = parsed.spec.name
        if name == "seat_agent":
            return self._sign_in(parsed, payload, now)
        if name not in ("seat_event", "call_event"):
            return None
        if len(payload) > PAYLOAD_LIMIT:
            return _Rejection(Reject.TOO_LARGE, f"{len(payload)} bytes, more than "
                              f"{PAYLOAD_LIMIT}")  # fmt: skip
        cls = SeatEvent if name == "seat_event" else CallEvent
        model: SeatEvent | CallEvent | SeatAgent | _Rejection | None = None
        if b"NaN" not in payload and b"Infinity" not in payload:  # JSON has no NaN: see _parse
            try:
                model = cls.model_validate_json(payload, strict=True)
            except ValidationError:
                pass
        if model is None:
            model = _parse(cls, payload)
        if isinstance(model, _Rejection):
            return model
        assert not isinstance(model, SeatAgent)  # an event's model was asked for
        if "v" not in model.model_fields_set:  # the model's default is no version given
            return _Rejection(Reject.WRONG_VERSION, f"no payload version: this store reads v "
                              f"{SCHEMA_VERSION}", model.id)  # fmt: skip
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _Rejection(Reject.NOT_JSON, f"not UTF-8: {exc}")
        if isinstance(model, SeatEvent):
            return self._seat_row(parsed, model, text, now)
        return self._call_row(parsed, model, text, now)

    def _sign_in(self, parsed: Parsed, payload: bytes, now: float) -> _NewSignIn | _Rejection:
        """A change of who is signed in at a seat, checked like an event."""
        if len(payload) > PAYLOAD_LIMIT:
            return _Rejection(Reject.TOO_LARGE, f"{len(payload)} bytes, more than "
                              f"{PAYLOAD_LIMIT}")  # fmt: skip
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _Rejection(Reject.NOT_JSON, f"not UTF-8: {exc}")
        model = _parse(SeatAgent, payload)
        if isinstance(model, _Rejection):
            return model
        assert isinstance(model, SeatAgent)
        if "v" not in model.model_fields_set:
            return _Rejection(Reject.WRONG_VERSION, f"no payload version: this store reads v "
                              f"{SCHEMA_VERSION}", model.id)  # fmt: skip
        for what, value in (("seat", model.seat), ("agent", model.agent),
                            ("previous", model.previous)):  # fmt: skip
            if value is not None and not ID_PATTERN.fullmatch(value):
                return _Rejection(Reject.SCHEMA, f"{what} {value!r} is not 1-64 characters of "
                                  "A-Z a-z 0-9 _ . -", model.id)  # fmt: skip
        if not math.isfinite(model.t) or model.t < 0:
            return _Rejection(Reject.SCHEMA, f"t {model.t} is not a time", model.id)
        seat = parsed.ids["seat"]
        if model.seat != seat:
            return _Rejection(Reject.TOPIC_MISMATCH, f"seat {model.seat!r} on the topic of "
                              f"seat {seat!r}", model.id)  # fmt: skip
        if self.known_seats is not None and seat not in self.known_seats:
            return _Rejection(Reject.UNKNOWN_SEAT, f"seat {seat!r} is not a known seat",
                              model.id)  # fmt: skip
        # Ahead of the clock only: an agent signed in for weeks is handed over again, retained,
        # with its old t, and it is the truth still (a repeat, not a clock never set).
        if model.t > now + self.max_skew_s:
            return _Rejection(Reject.CLOCK_SKEW, f"t {model.t:.3f} is {model.t - now:.1f} s "
                              f"ahead of the store's clock (at most {self.max_skew_s:g} s)",
                              model.id)  # fmt: skip
        return _NewSignIn((model.id, seat, model.agent, model.t, now, text))

    def _seat_row(self, parsed: Parsed, m: SeatEvent, text: str,
                  now: float) -> _Row | _Rejection:  # fmt: skip
        def bad(detail: str) -> _Rejection:
            return _Rejection(Reject.SCHEMA, detail, m.id)

        if not ID_PATTERN.fullmatch(m.board):
            return bad(f"board {m.board!r} is not 1-64 characters of A-Z a-z 0-9 _ . -")
        if not 0 <= m.boot <= _BIGINT:
            return bad(f"boot {m.boot} out of range")
        if not 1 <= m.seq <= MAX_SEQ:
            return bad(f"seq {m.seq} is not 1..{MAX_SEQ}")
        if seat_event_n(m) is None:
            return _Rejection(Reject.SCHEMA, f"id {m.id!r} is not <board>-<boot>-<n> with "
                              f"(n - 1) % {MAX_SEQ} + 1 == seq ({m.board}-{m.boot}-{m.seq}, "
                              f"+ {MAX_SEQ} per wrap)")  # fmt: skip
        kind: str = m.type
        if m.type == "event":
            event = m.data.get("event")
            if not isinstance(event, str) or event not in SEAT_EVENT_NAMES:
                return bad(f"data.event {event!r} is not one of "
                           f"{' '.join(sorted(SEAT_EVENT_NAMES))}")  # fmt: skip
            kind = f"event:{event}"
        wrong = _bad_state(m)
        if wrong is not None:
            return bad(wrong)
        late = self._bad_time(m.t, m.id, now)
        if late is not None and late.reason is Reject.SCHEMA:
            return late
        seat = parsed.ids["seat"]
        if m.seat != seat:
            return _Rejection(Reject.TOPIC_MISMATCH, f"seat {m.seat!r} on the topic of seat "
                              f"{seat!r}", m.id)  # fmt: skip
        if self.known_seats is not None and seat not in self.known_seats:
            return _Rejection(Reject.UNKNOWN_SEAT, f"seat {seat!r} is not a known seat", m.id)
        if late is not None:
            return late
        return (m.id, "seat", seat, None, m.seq, kind, m.t, now, text)

    def _call_row(self, parsed: Parsed, m: CallEvent, text: str,
                  now: float) -> _Row | _Rejection:  # fmt: skip
        def bad(detail: str) -> _Rejection:
            return _Rejection(Reject.SCHEMA, detail, m.id)

        if not ID_PATTERN.fullmatch(m.pbx):
            return bad(f"pbx {m.pbx!r} is not 1-64 characters of A-Z a-z 0-9 _ . -")
        if not 1 <= m.call <= NUMBER_MAX:
            return bad(f"call {m.call} is not 1..{NUMBER_MAX}")
        if not 1 <= m.step <= _BIGINT:
            return bad(f"step {m.step} out of range")
        if m.id != f"{m.pbx}-{m.call}-{m.step}":
            return _Rejection(Reject.SCHEMA, f"id {m.id!r} is not <pbx>-<call>-<step> "
                              f"({m.pbx}-{m.call}-{m.step})")  # fmt: skip
        if m.seat is not None and not ID_PATTERN.fullmatch(m.seat):
            return bad(f"seat {m.seat!r} is not 1-64 characters of A-Z a-z 0-9 _ . -")
        late = self._bad_time(m.t, m.id, now)
        if late is not None and late.reason is Reject.SCHEMA:
            return late
        if str(m.call) != parsed.ids["call"]:
            return _Rejection(Reject.TOPIC_MISMATCH, f"call {m.call} on the topic of call "
                              f"{parsed.ids['call']!r}", m.id)  # fmt: skip
        # Call events are not checked against known_seats: a call record with a step left
        # out would be worse than a step naming a seat this site does not list.
        if late is not None:
            return late
        return (m.id, "call", m.seat, m.call, m.step, m.type, m.t, now, text)

    def _bad_time(self, t: float, event_id: str, now: float) -> _Rejection | None:
        if not math.isfinite(t) or t < 0:
            return _Rejection(Reject.SCHEMA, f"t {t} is not a time", event_id)
        if t < now - self.max_age_s:
            detail = (f"t {t:.3f} is {(now - t) / 86400:.1f} days before the store's clock (at "
                      f"most {self.max_age_s / 86400:g}): a clock never set?")  # fmt: skip
            return _Rejection(Reject.CLOCK_SKEW, detail, event_id)
        if t > now + self.max_skew_s:
            detail = (f"t {t:.3f} is {t - now:.1f} s ahead of the store's clock (at most "
                      f"{self.max_skew_s:g} s)")  # fmt: skip
            return _Rejection(Reject.CLOCK_SKEW, detail, event_id)
        return None

    # --- reading --------------------------------------------------------------------------

    def events(
        self,
        *,
        kind: Literal["seat", "call"] | None = None,
        since: float | None = None,
        until: float | None = None,
        seat: str | None = None,
        call: int | None = None,
    ) -> Iterator[StoredEvent]:
        """Stored events with since <= t < until, in (t, seq, id) order. `seat`: the seat's
        own events and the call steps naming it (add kind= for one of them); `call`: the
        call's steps. Read in pages: an ingest between two pages is fine."""
        where: list[str] = []
        args: list[Any] = []
        for column, op, value in (("kind", "=", kind), ("t", ">=", since), ("t", "<", until),
                                  ("seat", "=", seat), ("call", "=", call)):  # fmt: skip
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        after: tuple[float, int, str] | None = None
        while True:
            conditions = where + ([] if after is None else ["(t, seq, id) > (?, ?, ?)"])
            sql = (f"SELECT {_COLUMNS} FROM event"
                   + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
                   + " ORDER BY t, seq, id LIMIT ?")  # fmt: skip
            rows = self._db.query(sql, [*args, *(after or ()), PAGE])
            for row in rows:
                yield StoredEvent(*row)
            if len(rows) < PAGE:
                return
            last = rows[-1]
            after = (last[6], last[4], last[0])

    def sign_ins(self, *, since: float | None = None, until: float | None = None,
                 seat: str | None = None) -> list[StoredSignIn]:
        """The sign-in changes with t < until in (seat, t, id) order; with `since`, those
        from `since` on and each seat's last before it (who was signed in at `since`)."""
        where: list[str] = []
        args: list[Any] = []
        if until is not None:
            where.append("t < ?")
            args.append(until)
        if seat is not None:
            where.append("seat = ?")
            args.append(seat)
        base = " AND ".join(where) if where else "1 = 1"
        sql = f"SELECT {_SIGN_IN_COLUMNS} FROM sign_in WHERE {base}"
        if since is not None:
            sql += (" AND (t >= ? OR NOT EXISTS (SELECT 1 FROM sign_in l WHERE l.seat = "
                    "sign_in.seat AND l.t < ? AND (l.t, l.id) > (sign_in.t, sign_in.id)))")
            args += [since, since]
        rows = self._db.query(sql + " ORDER BY seat, t, id", args)
        return [StoredSignIn(*r) for r in rows]

    def sign_in_tail(self, after: int = 0, *,
                     limit: int = PAGE) -> list[tuple[int, StoredSignIn]]:  # fmt: skip
        """Sign-in changes in the order they were stored, after position `after`."""
        col = self._db.order_column
        rows = self._db.query(f"SELECT {col}, {_SIGN_IN_COLUMNS} FROM sign_in WHERE {col} > ? "
                              f"ORDER BY {col} LIMIT ?", (after, limit))  # fmt: skip
        return [(int(r[0]), StoredSignIn(*r[1:])) for r in rows]

    def sign_in_position(self) -> int:
        col = self._db.order_column
        ((n,),) = self._db.query(f"SELECT coalesce(max({col}), 0) FROM sign_in")
        return int(n)

    def tail(self, after: int = 0, *, limit: int = PAGE) -> list[tuple[int, StoredEvent]]:
        """Events in the order they were stored, after position `after` (0: from the first):
        (position, event). What every core worker follows, whichever of them stored it."""
        col = self._db.order_column
        rows = self._db.query(f"SELECT {col}, {_COLUMNS} FROM event WHERE {col} > ? "
                              f"ORDER BY {col} LIMIT ?", (after, limit))  # fmt: skip
        return [(int(r[0]), StoredEvent(*r[1:])) for r in rows]

    def position(self) -> int:
        """The position of the newest stored event (0: none)."""
        col = self._db.order_column
        ((n,),) = self._db.query(f"SELECT coalesce(max({col}), 0) FROM event")
        return int(n)

    # --- alerts ---------------------------------------------------------------------------

    def add_alert(self, *, id: str, rule: str, seat: str, t: float, payload: str) -> bool:
        """Store a raised alert once; False if its id is stored already (another worker, or
        a replay of the same events, raised it first)."""
        try:
            with self._db.transaction():
                rows = self._db.query(
                    "INSERT INTO alert (id, rule, seat, t, payload) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id", (id, rule, seat, t, payload))
        except self._db.errors as exc:
            raise StoreError(f"{self._db.where}: alert {id} was not stored: {exc}") from exc
        return bool(rows)

    def act_on_alert(self, *, id: str, action: AlertAction, who: str, t: float,
                     note: str = "") -> Literal["done", "unknown", "again"]:  # fmt: skip
        """Record what became of an alert: `unknown` if no such alert, `again` if that was
        done to it already (the first stays: who acknowledged it first, and when)."""
        try:
            with self._db.transaction():
                if not self._db.query("SELECT 1 FROM alert WHERE id = ?", (id,)):
                    return "unknown"
                rows = self._db.query(
                    "INSERT INTO alert_action (alert, action, who, t, note) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (alert, action) DO NOTHING RETURNING 1",
                    (id, action, who, t, _clean(note, DETAIL_LIMIT)))  # fmt: skip
        except self._db.errors as exc:
            raise StoreError(f"{self._db.where}: alert {id} was not updated: {exc}") from exc
        return "done" if rows else "again"

    def alert(self, id: str) -> dict[str, Any] | None:
        """One alert as `alerts()` gives them, or None."""
        rows = self._db.query("SELECT seat FROM alert WHERE id = ?", (id,))
        if not rows:
            return None
        return next(a for a in self.alerts(seat=rows[0][0]) if a["alert"].get("id", id) == id)

    def reconnect(self) -> None:
        """After a database error: reopen a connection the server dropped (PostgreSQL)."""
        self._db.reconnect()

    def try_lead(self) -> bool:
        """Whether this store's worker leads (publishes what one worker should): always on
        SQLite (one writer per file), the holder of a session lock on PostgreSQL."""
        return self._db.try_lead()

    def alerts(self, *, open_only: bool = False, since: float | None = None,
               seat: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Alerts oldest first, each with its payload and actions (action -> who, t, note).
        Open: neither resolved by a person nor cleared by its condition ending."""
        where, args = [], []
        for column, op, value in (("t", ">=", since), ("seat", "=", seat)):
            if value is not None:
                where.append(f"a.{column} {op} ?")
                args.append(value)
        if open_only:  # in SQL: the history of ended alerts is not read
            where.append("NOT EXISTS (SELECT 1 FROM alert_action e WHERE e.alert = a.id AND "
                         "e.action IN ('resolved', 'cleared'))")  # fmt: skip
        rows = self._db.query(
            "SELECT a.id, a.payload, x.action, x.who, x.t, x.note FROM alert a "
            "LEFT JOIN alert_action x ON x.alert = a.id"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY a.t, a.id", args)  # fmt: skip
        out: dict[str, dict[str, Any]] = {}
        for alert_id, payload, action, who, t, note in rows:
            entry = out.setdefault(alert_id, {"alert": json.loads(payload), "actions": {}})
            if action is not None:
                entry["actions"][action] = {"who": who, "t": t, "note": note}
        return list(out.values())

    def alerts_version(self) -> tuple[int, int]:
        """Changes when an alert or an action is added (by any worker): (alerts, actions)."""
        ((alerts, actions),) = self._db.query(
            "SELECT (SELECT count(*) FROM alert), (SELECT count(*) FROM alert_action)")
        return int(alerts), int(actions)

    def rejected(self) -> list[dict[str, Any]]:
        """The rows of `rejected`, oldest first."""
        rows = self._db.query("SELECT digest, reason, detail, topic, event_id, raw, size, "
                              "received FROM rejected ORDER BY received, digest")  # fmt: skip
        keys = ("digest", "reason", "detail", "topic", "event_id", "raw", "size", "received")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def counts(self) -> dict[str, Any]:
        """For health: what this store took since it was opened (`session`: a redelivered bad
        message counts each time) and what the database holds (`db`: events by kind,
        distinct rejected messages by reason)."""
        kinds = dict(self._db.query("SELECT kind, count(*) FROM event GROUP BY kind"))
        reasons = dict(self._db.query("SELECT reason, count(*) FROM rejected GROUP BY reason"))
        ((sign_ins,),) = self._db.query("SELECT count(*) FROM sign_in")
        return {
            "session": {
                "stored": self._stored,
                "duplicates": self._duplicates,
                "not_events": self._not_events,
                "rejected": dict(sorted(self._rejected.items())),
                "rejected_total": sum(self._rejected.values()),
            },
            "db": {
                "events": sum(int(n) for n in kinds.values()),
                "seat_events": int(kinds.get("seat", 0)),
                "call_events": int(kinds.get("call", 0)),
                "sign_ins": int(sign_ins),
                "rejected": {str(k): int(v) for k, v in sorted(reasons.items())},
                "rejected_total": sum(int(n) for n in reasons.values()),
            },
        }


# --- helpers ----------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(cls: type[SeatEvent] | type[CallEvent] | type[SeatAgent],
           payload: bytes) -> SeatEvent | CallEvent | SeatAgent | _Rejection:  # fmt: skip
    """The slow path, for a payload the fast one refused: why, or the model after all."""
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        return _Rejection(Reject.NOT_JSON, f"not JSON: {exc}")
    except RecursionError:  # thousands of nested arrays: JSON, but nobody's event
        return _Rejection(Reject.SCHEMA, "nested too deeply")
    if not isinstance(obj, dict):
        return _Rejection(Reject.SCHEMA, f"a JSON {type(obj).__name__}, not an object")
    raw_id = obj.get("id")
    event_id = raw_id if isinstance(raw_id, str) and _ID_LIKE.fullmatch(raw_id) else None
    version = obj.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        return _Rejection(Reject.WRONG_VERSION, f"payload version {version!r}: this store "
                          f"reads v {SCHEMA_VERSION}", event_id)  # fmt: skip
    try:
        return cls.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        return _Rejection(Reject.SCHEMA, f"not a {cls.__name__}: {problems}", event_id)


_ID_LIKE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
_STATES = frozenset({"logged_out", "ready", "not_ready", "ringing", "talking", "hold", "acw"})


def _bad_state(m: SeatEvent) -> str | None:
    """What is wrong with the state a state event or snapshot says (the timeline is built
    from these fields; the rest of `data` is the seat's to report), or None."""
    d = m.data
    if m.type == "snapshot" or (m.type == "event" and d.get("event") == "state"):
        state, reason, call = d.get("state"), d.get("reason"), d.get("call")
        if not isinstance(state, str) or state not in _STATES:
            return f"data.state {state!r} is not one of {' '.join(sorted(_STATES))}"
        if reason is not None and not (isinstance(reason, str) and ID_PATTERN.fullmatch(reason)):
            return f"data.reason {reason!r} is not a reason name"
        if call is not None and (type(call) is not int or not 0 <= call <= NUMBER_MAX):
            return f"data.call {call!r} is not a call number"
    if m.type == "snapshot":
        secs = d.get("secs", 0)
        if type(secs) not in (int, float) or not 0 <= secs <= MAX_SNAPSHOT_S:
            return f"data.secs {secs!r} is not 0..{MAX_SNAPSHOT_S} seconds"
    return None


def _same(a: str, b: str) -> bool:
    """Whether two payloads of one id say the same (byte-equal, or equal as JSON)."""
    return a == b or json.loads(a) == json.loads(b)


def _clean(text: str, limit: int) -> str:
    """Storable in either database: no NUL, no lone surrogate; at most `limit` characters."""
    safe = text[: limit + 1].encode("utf-8", "backslashreplace").decode("utf-8")
    safe = safe.replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def _rejected_row(r: _Rejection, topic: str, payload: bytes, now: float) -> tuple[Any, ...]:
    digest = hashlib.sha256(topic.encode("utf-8", "surrogatepass") + b"\x00" + payload)
    raw = payload[: RAW_LIMIT * 4 + 4].decode("utf-8", "backslashreplace")
    return (digest.hexdigest(), str(r.reason), _clean(r.detail, DETAIL_LIMIT),
            _clean(topic, TOPIC_LIMIT), None if r.event_id is None else _clean(r.event_id, 200),
            _clean(raw, RAW_LIMIT), len(payload), now)  # fmt: skip
