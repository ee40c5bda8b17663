"""The inventory: which board sits at which seat, and the settings each seat is pushed.

Design requirements:

- The edge gateway bridges a board only when the uid of its hello is bound to a seat here;
  any other board is quarantined (reported on `gateway/{gateway}/quarantine`, not bridged)
  until facilities staff provision it. An empty inventory is valid: everything quarantined.
- Staff edit it while the gateway runs, so `InventoryWatcher.check` re-reads it without a
  restart. A bad edit, a half-saved file or a file that disappears keeps the inventory the
  gateway already had: reported in `.error`, counted in `.errors`, never raised.
- Everything is checked when read, with the file, entry and key at fault named, so a typo
  shows up in the gateway's report instead of as a seat rejecting its settings (X 4) later.
- Two sources: a TOML or JSON file edited by hand, or an SQLite database (`sqlite:///path`)
  written by a provisioning tool through `InventoryDb`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from gateway.contract.topics import TopicError, check_id
from gateway.seatlink.codec import SETTINGS, SettingKey

__all__ = [
    "SQLITE_PREFIX",
    "UID_MAX",
    "Inventory",
    "InventoryDb",
    "InventoryError",
    "InventoryWatcher",
    "SeatBinding",
    "load_inventory",
]

SQLITE_PREFIX = "sqlite:///"
UID_MAX = 32  # hex digits; boards in use carry 8 (micro:bit) or 16 (RP2040, ESP32)
_UID = re.compile(rf"[0-9A-Fa-f]{{1,{UID_MAX}}}")
_TOP_KEYS = ("defaults", "seat")
_SEAT_KEYS = ("seat", "board", "name", "settings")
_BY_NAME: Mapping[str, SettingKey] = {spec.name: key for key, spec in SETTINGS.items()}
# firmware/cfg.py's shorter names for keys docs/seat.md names in full: one name per key in
# the inventory, but a file written from the firmware's names gets pointed the right way.
_HINTS = {k.name.lower(): s.name for k, s in SETTINGS.items() if k.name.lower() != s.name}

# A provisioning tool may add columns of its own; these are the ones the gateway reads.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS boards (board TEXT PRIMARY KEY, seat TEXT UNIQUE NOT NULL, "
    "name TEXT, settings TEXT)",
    "CREATE TABLE IF NOT EXISTS defaults (name TEXT PRIMARY KEY, value INTEGER)",
)
# A provisioning commit holds the lock for milliseconds. The gateway waits briefly, as its
# loop waits meanwhile, and a read that times out is tried again at the next check.
_READ_BUSY_S = 0.25
_WRITE_BUSY_S = 5.0


class InventoryError(ValueError):
    """An inventory that cannot be used; the message names the source and what is at fault."""


class _Busy(InventoryError):
    """A writer held the database past the busy timeout: the rows may be fine, read again."""


@dataclass(frozen=True, slots=True)
class SeatBinding:
    """One seat's board. Equal bindings need the same settings; the hash leaves them out."""

    board: str  # the board's uid, upper-case hex as in its hello
    seat: str  # a topic id
    name: str | None  # facilities' label for the desk
    # the inventory's defaults, then the seat's own on top; only settings the inventory
    # names: the seat runs on its built-in default (docs/seat.md) for the others
    settings: Mapping[SettingKey, int] = field(hash=False)


class Inventory:
    """One consistent read of a source: `by_board(uid)` for a hello, `by_seat(id)` for a
    command. Immutable; a watcher replaces it as a whole."""

    def __init__(self, source: str, seats: Iterable[SeatBinding]) -> None:
        self.source = source
        self.seats = tuple(seats)
        self._by_board = {b.board: b for b in self.seats}
        self._by_seat = {b.seat: b for b in self.seats}
        if len(self._by_board) != len(self.seats) or len(self._by_seat) != len(self.seats):
            raise InventoryError(f"{source}: a board or a seat is bound twice")

    def by_board(self, uid: str) -> SeatBinding | None:
        return self._by_board.get(uid.upper())

    def by_seat(self, seat: str) -> SeatBinding | None:
        return self._by_seat.get(seat)

    def same_bindings(self, other: Inventory) -> bool:
        """Whether both bind the same boards to the same seats, names and settings (entry
        order and source aside)."""
        return self._by_board == other._by_board

    def __repr__(self) -> str:
        return f"Inventory({self.source!r}, {len(self.seats)} seats)"


# --- validation -----------------------------------------------------------------------------


def _setting(where: str, name: object, value: object) -> tuple[SettingKey, int]:
    key = _BY_NAME.get(name) if isinstance(name, str) else None
    if key is None:
        hint = _HINTS.get(name) if isinstance(name, str) else None
        known = f"did you mean {hint!r}?" if hint else "known: " + ", ".join(_BY_NAME)
        raise InventoryError(f"{where}: unknown setting {name!r} ({known})")
    # bool is an int to Python but `true` is no setting value in TOML or JSON
    if type(value) is not int:
        raise InventoryError(f"{where}: {value!r} is not a whole number")
    if not key.accepts(value):
        raise InventoryError(f"{where}: {value} is out of range "
                             f"{key.minimum}..{key.maximum}")  # fmt: skip
    return key, value


def _settings(where: str, table: object) -> dict[SettingKey, int]:
    """`where` names the table: the key is appended to it (`... settings.acw_s`)."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise InventoryError(f"{where} must be a table of setting = value, not {table!r}")
    return dict(_setting(f"{where}.{name}", name, value) for name, value in table.items())


def _uid(where: str, value: object) -> str:
    if value is None:
        raise InventoryError(f"{where}: board (the board's uid) is missing")
    if not isinstance(value, str):
        # an all-digit uid written unquoted reads as a number, its leading zeros lost
        raise InventoryError(f"{where}: board {value!r} must be a string of hex digits "
                             "(in quotes)")  # fmt: skip
    if not _UID.fullmatch(value):
        raise InventoryError(f"{where}: board {value!r} is not 1-{UID_MAX} hex digits")
    return value.upper()


def _seat_id(where: str, value: object) -> str:
    if value is None:
        raise InventoryError(f"{where}: seat (the seat id) is missing")
    if not isinstance(value, str):
        raise InventoryError(f"{where}: seat {value!r} must be a string")
    try:
        return check_id("seat", value)
    except TopicError as exc:
        raise InventoryError(f"{where}: {exc}") from None


def _binding(
    where: str, raw: Mapping[str, object], defaults: Mapping[SettingKey, int]
) -> SeatBinding:
    """`raw` holds seat, board, name, settings as read; `where` names the entry."""
    seat = _seat_id(where, raw.get("seat"))
    where = f"{where} (seat {seat})"
    board = _uid(where, raw.get("board"))
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise InventoryError(f"{where}: name {name!r} must be a string")
    own = _settings(f"{where} settings", raw.get("settings"))
    merged = {**defaults, **own}
    return SeatBinding(board, seat, name, MappingProxyType(dict(sorted(merged.items()))))


def _inventory(source: str, entries: Iterable[tuple[str, SeatBinding]]) -> Inventory:
    """The bindings, refusing a board or a seat bound twice with both entries named."""
    boards: dict[str, str] = {}
    seats: dict[str, str] = {}
    out = []
    for entry, b in entries:
        where = f"{entry} (seat {b.seat})"
        if b.board in boards:
            raise InventoryError(f"{where}: board {b.board} is bound already "
                                 f"({boards[b.board]})")  # fmt: skip
        if b.seat in seats:
            raise InventoryError(f"{where}: seat {b.seat} is bound already ({seats[b.seat]})")
        boards[b.board] = seats[b.seat] = where
        out.append(b)
    return Inventory(source, out)


# --- files ----------------------------------------------------------------------------------


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; TOML refuses them, and so do we
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} given twice")
        out[key] = value
    return out


def _parse_file(source: str, fmt: str, data: bytes) -> Inventory:
    if not data:
        # what a reader sees while an editor truncates and rewrites in place
        raise InventoryError(f"{source}: the file is empty (still being saved?); an inventory "
                             "with no seats is `seat = []` in TOML, `{}` in JSON")  # fmt: skip
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{source}: not UTF-8 text ({exc})") from None
    try:
        if fmt == "toml":
            doc: object = tomllib.loads(text)
        else:
            doc = json.loads(text, object_pairs_hook=_no_repeats)
    except (ValueError, RecursionError) as exc:
        raise InventoryError(f"{source}: not valid {fmt.upper()}: {exc}") from None
    if not isinstance(doc, dict):
        raise InventoryError(f"{source}: the top level must be an object, not {doc!r}")
    for key in doc:
        if key not in _TOP_KEYS:
            raise InventoryError(f"{source}: unknown top-level key {key!r} "
                                 f"(the keys are {', '.join(_TOP_KEYS)})")  # fmt: skip
    defaults = _settings(f"{source}: defaults", doc.get("defaults"))
    entries = doc.get("seat", [])
    if not isinstance(entries, list):
        raise InventoryError(f"{source}: seat must be a list of entries ([[seat]] in TOML), "
                             f"not {entries!r}")  # fmt: skip
    return _inventory(source, _file_entries(source, entries, defaults))


def _file_entries(
    source: str, entries: list[object], defaults: Mapping[SettingKey, int]
) -> Iterable[tuple[str, SeatBinding]]:
    for n, entry in enumerate(entries, 1):
        where = f"{source}: seat #{n}"
        if not isinstance(entry, dict):
            raise InventoryError(f"{where} must be a table of seat, board, name, settings")
        for key in entry:
            if key not in _SEAT_KEYS:
                raise InventoryError(f"{where}: unknown key {key!r} "
                                     f"(the keys are {', '.join(_SEAT_KEYS)})")  # fmt: skip
        yield where, _binding(where, entry, defaults)


# --- SQLite ---------------------------------------------------------------------------------


def _db_path(source: str) -> Path:
    rest = source.removeprefix(SQLITE_PREFIX) if source.startswith(SQLITE_PREFIX) else ""
    # an in-memory database would be a private, empty inventory nobody can provision
    if not rest or rest == ":memory:":
        raise InventoryError(f"{source}: a database is sqlite:///relative/path.db or "
                             "sqlite:////absolute/path.db")  # fmt: skip
    return Path(rest)


def _connect(path: Path, source: str, *, create: bool) -> sqlite3.Connection:
    try:
        if create:
            db = sqlite3.connect(path, isolation_level=None, timeout=_WRITE_BUSY_S)
        else:
            # mode=rw: the gateway must not create an empty inventory at a mistyped path
            uri = path.absolute().as_uri() + "?mode=rw"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_READ_BUSY_S)
    except sqlite3.Error as exc:
        raise InventoryError(f"{source}: cannot open the database: {exc}") from None
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"boards", "defaults"} <= tables:
            for statement in _SCHEMA:
                db.execute(statement)
    except sqlite3.Error as exc:
        db.close()
        raise InventoryError(f"{source}: cannot use the database: {exc}") from None
    return db


def _read_db(db: sqlite3.Connection, source: str) -> Inventory:
    try:
        # one read transaction: a provisioning commit lands wholly before or after it
        db.execute("BEGIN")
        try:
            boards = db.execute("SELECT board, seat, name, settings FROM boards "
                                "ORDER BY seat").fetchall()  # fmt: skip
            defaults = db.execute("SELECT name, value FROM defaults ORDER BY name").fetchall()
        finally:
            db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        busy = (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        error = _Busy if busy else InventoryError
        raise error(f"{source}: cannot read the database: {exc}") from None
    merged = dict(_setting(f"{source}: defaults row {name!r}", name, value)
                  for name, value in defaults)  # fmt: skip
    return _inventory(source, _db_entries(source, boards, merged))


def _db_entries(
    source: str, rows: list[tuple[object, ...]], defaults: Mapping[SettingKey, int]
) -> Iterable[tuple[str, SeatBinding]]:
    for board, seat, name, settings in rows:
        where = f"{source}: boards row {board!r}"
        table: object = None
        if settings is not None:
            if not isinstance(settings, str):
                raise InventoryError(f"{where}: settings {settings!r} must be JSON text")
            try:
                table = json.loads(settings, object_pairs_hook=_no_repeats)
            except (ValueError, RecursionError) as exc:
                raise InventoryError(f"{where}: settings is not valid JSON: {exc}") from None
        raw = {"seat": seat, "board": board, "name": name, "settings": table}
        yield where, _binding(where, raw, defaults)


class InventoryDb:
    """The SQLite inventory for a provisioning tool: `with InventoryDb(url) as db:`. Creates
    the database and its tables if missing. The gateway reads it with `load_inventory` or an
    `InventoryWatcher`, which sees each commit."""

    def __init__(self, source: str | Path) -> None:
        self.source = str(source)
        if isinstance(source, str) and source.startswith("sqlite:"):
            path = _db_path(source)
        else:
            path = Path(source)
        self._db = _connect(path, self.source, create=True)

    def provision(
        self,
        board: str,
        seat: str,
        *,
        name: str | None = None,
        settings: Mapping[str, int] | None = None,
    ) -> None:
        """Bind `board` (uid, any case) to `seat`; InventoryError if either is bound already
        or anything would not load."""
        where = f"{self.source}: provision"
        raw = {"seat": seat, "board": board, "name": name,
               "settings": None if settings is None else dict(settings)}  # fmt: skip
        binding = _binding(where, raw, {})
        text = None
        if settings is not None:
            text = json.dumps({k.spec.name: v for k, v in binding.settings.items()})
        try:
            with _Transaction(self._db):
                # upper(): a row typed in by hand may hold the uid in lower case
                row = self._db.execute("SELECT seat FROM boards WHERE upper(board) = ?",
                                       (binding.board,)).fetchone()  # fmt: skip
                if row is not None:
                    raise InventoryError(f"{where}: board {binding.board} is bound already, "
                                         f"to seat {row[0]}; retire it first")  # fmt: skip
                row = self._db.execute("SELECT board FROM boards WHERE seat = ?",
                                       (binding.seat,)).fetchone()  # fmt: skip
                if row is not None:
                    raise InventoryError(f"{where}: seat {binding.seat} is bound already, to "
                                         f"board {row[0]}; retire that board first")  # fmt: skip
                self._db.execute("INSERT INTO boards (board, seat, name, settings) "
                                 "VALUES (?, ?, ?, ?)",
                                 (binding.board, binding.seat, binding.name, text))  # fmt: skip
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None

    def retire(self, board: str) -> None:
        """Unbind `board` (any case): from now on it is quarantined. InventoryError if it is
        not bound."""
        where = f"{self.source}: retire"
        uid = _uid(where, board)
        try:
            with _Transaction(self._db):
                cur = self._db.execute("DELETE FROM boards WHERE upper(board) = ?", (uid,))
                if cur.rowcount == 0:
                    raise InventoryError(f"{where}: board {uid} is not bound to any seat")
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None

    def load(self) -> Inventory:
        return _read_db(self._db, self.source)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> InventoryDb:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the duplicate checks and the write
    see the same rows."""

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


# --- loading and watching -------------------------------------------------------------------


def _kind(source: str | Path) -> tuple[str, str, Path]:
    """(format, the source as text, path) for a file path or an sqlite URL."""
    text = str(source)
    if isinstance(source, str) and source.startswith("sqlite:"):
        return "sqlite", text, _db_path(source)
    path = Path(source)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("toml", "json"):
        raise InventoryError(f"{text}: an inventory is a .toml or .json file or an "
                             f"{SQLITE_PREFIX}path URL")  # fmt: skip
    return fmt, text, path


def load_inventory(source: str | Path) -> Inventory:
    """Read a .toml or .json file, or an sqlite:/// database, once; InventoryError if it is
    missing or anything in it is wrong."""
    fmt, text, path = _kind(source)
    if fmt == "sqlite":
        db = _connect(path, text, create=False)
        try:
            return _read_db(db, text)
        finally:
            db.close()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"{text}: cannot read the file: {exc.strerror}") from None
    return _parse_file(text, fmt, data)


_Stat = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> _Stat:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _FileSource:
    # File times are only as fine as the filesystem's clock tick (up to 2 s on FAT): an edit
    # of the same size within a tick of the last read leaves the stat unchanged, so a file
    # changed this close to the last read is read again and its hash compared.
    RACY_NS = 2_000_000_000

    def __init__(self, source: str, fmt: str, path: Path) -> None:
        self.source, self._fmt, self._path = source, fmt, path
        self._stat: _Stat | None = None  # as last read; None: missing, reported already
        self._digest: bytes | None = None  # of the bytes read last, good or bad
        self._read_ns = 0

    def _parse(self, st: os.stat_result | None) -> Inventory | None:
        """Read and parse; None if the bytes are those read last (parsed or refused then)."""
        self._read_ns = time.time_ns()
        try:
            with self._path.open("rb") as f:
                self._stat = _signature(os.fstat(f.fileno()))
                data = f.read()
        except OSError as exc:
            # kept as read, so an unreadable file is reported once, not at every check
            self._stat = None if st is None else _signature(st)
            self._digest = None
            raise InventoryError(f"{self.source}: cannot read the file: {exc.strerror}") from None
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return None
        self._digest = digest
        return _parse_file(self.source, self._fmt, data)

    def load(self) -> Inventory:
        inventory = self._parse(None)
        assert inventory is not None  # nothing was read before
        return inventory

    def poll(self) -> Inventory | None:
        try:
            st = self._path.stat()
        except OSError as exc:
            if self._stat is None:
                return None
            self._stat = self._digest = None
            raise InventoryError(f"{self.source}: cannot read the file: {exc.strerror}") from None
        racy = max(st.st_mtime_ns, st.st_ctime_ns) >= self._read_ns - self.RACY_NS
        if _signature(st) == self._stat and not racy:
            return None
        return self._parse(st)

    def close(self) -> None:
        pass


class _DbSource:
    """Sees commits by `PRAGMA data_version` on a connection kept open, and a database
    replaced or removed by the file's identity."""

    def __init__(self, source: str, path: Path) -> None:
        self.source, self._path = source, path
        self._db: sqlite3.Connection | None = None
        self._stat: _Stat | None = None  # of the file the connection was opened on
        self._version: int | None = None
        self._gone = False  # reported missing: not reported again until it is back
        self._failed: _Stat | None = None  # would not open: tried again once it changes

    def load(self) -> Inventory:
        if not self._path.exists():
            raise InventoryError(f"{self.source}: cannot open the database: no such file")
        inventory = self.poll()
        assert inventory is not None  # a new connection has seen no version yet
        return inventory

    def poll(self) -> Inventory | None:
        try:
            stat = _signature(self._path.stat())
        except OSError as exc:
            if self._gone:
                return None
            self.close()
            self._gone, self._failed = True, None
            raise InventoryError(f"{self.source}: the database is gone: "
                                 f"{exc.strerror}") from None  # fmt: skip
        self._gone = False
        if self._stat is None or stat[:2] != self._stat[:2]:  # not open yet, or replaced
            if stat == self._failed:
                return None
            self.close()
            self._failed = stat
            self._db = _connect(self._path, self.source, create=False)
            self._stat, self._failed, self._version = stat, None, None
        assert self._db is not None
        try:
            (version,) = self._db.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            self.close()
            raise InventoryError(f"{self.source}: cannot read the database: {exc}") from None
        if version == self._version:
            return None
        try:
            inventory = _read_db(self._db, self.source)
        except _Busy:
            raise  # the version stays unseen: read again at the next check
        except InventoryError:
            self._version = version  # not read again until the next commit
            raise
        self._version = version
        return inventory

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db, self._stat = None, None


class InventoryWatcher:
    """The current inventory of a source, re-read by `check()` when the source changes.

    Construction reads it and raises InventoryError if it cannot be used. After that nothing
    raises: a source that goes bad keeps the last good inventory, with `error` saying why
    (None again after the next good read) and `errors` counting the bad reads."""

    def __init__(self, source: str | Path) -> None:
        fmt, text, path = _kind(source)
        self._source: _FileSource | _DbSource
        if fmt == "sqlite":
            self._source = _DbSource(text, path)
        else:
            self._source = _FileSource(text, fmt, path)
        try:
            self.inventory = self._source.load()
        except BaseException:
            self._source.close()
            raise
        self.error: str | None = None
        self.errors = 0

    @property
    def source(self) -> str:
        return self._source.source

    def check(self) -> bool:
        """Re-read if the source changed; True when the bindings changed (bridge a new
        board, quarantine a retired one, push changed settings)."""
        try:
            fresh = self._source.poll()
        except InventoryError as exc:
            self.error = str(exc)
            self.errors += 1
            return False
        if fresh is None:
            return False
        self.error = None
        changed = not fresh.same_bindings(self.inventory)
        self.inventory = fresh
        return changed

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> InventoryWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
