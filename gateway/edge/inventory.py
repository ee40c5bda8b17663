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
  written by a provisioning tool through `InventoryDb` (`seatlink inventory`).
- Each entry may carry the desk's location (free text for facilities staff; the gateway does
  not act on it). A database written by an older seatlink opens: its schema is upgraded in
  place by versioned, idempotent steps that keep every row, and an older seatlink still
  reads an upgraded database (the location lives in a table of its own, so the `boards`
  rows keep the four columns older writers insert positionally).
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
    "LOCATION_MAX",
    "SCHEMA_VERSION",
    "SQLITE_PREFIX",
    "UID_MAX",
    "Inventory",
    "InventoryDb",
    "InventoryError",
    "InventoryWatcher",
    "Moved",
    "SeatBinding",
    "changes",
    "check_entry",
    "load_inventory",
]

SQLITE_PREFIX = "sqlite:///"
UID_MAX = 32  # hex digits; boards in use carry 8 (micro:bit) or 16 (RP2040, ESP32)
_UID = re.compile(rf"[0-9A-Fa-f]{{1,{UID_MAX}}}")
LOCATION_MAX = 200  # characters: "Floor 2, row C, desk 14" and then some
_TOP_KEYS = ("defaults", "seat")
_SEAT_KEYS = ("seat", "board", "name", "location", "settings")
_BY_NAME: Mapping[str, SettingKey] = {spec.name: key for key, spec in SETTINGS.items()}
# firmware/cfg.py's shorter names for keys docs/seat.md names in full: one name per key in
# the inventory, but a file written from the firmware's names gets pointed the right way.
_HINTS = {k.name.lower(): s.name for k, s in SETTINGS.items() if k.name.lower() != s.name}

# The database's schema, step by step: step n brings a database to `PRAGMA user_version` n.
# A database written before versions were kept carries 0. Every statement is idempotent, so
# a step re-run on a database that has it (or a table dropped by hand, re-created) is
# harmless. A provisioning tool may add columns of its own; these are the ones read here.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first release's tables
    ("CREATE TABLE IF NOT EXISTS boards (board TEXT PRIMARY KEY, seat TEXT UNIQUE NOT NULL, "
     "name TEXT, settings TEXT)",
     "CREATE TABLE IF NOT EXISTS defaults (name TEXT PRIMARY KEY, value INTEGER)"),
    # 2: the desk's location, keyed by seat, in a table of its own: a column in `boards`
    # would break writers that insert its four columns positionally (older seatlink, hand
    # edits), and a location belongs to the desk, whichever board sits there
    ("CREATE TABLE IF NOT EXISTS locations (seat TEXT PRIMARY KEY, location TEXT NOT NULL)",),
)  # fmt: skip
SCHEMA_VERSION = len(_MIGRATIONS)
_TABLES = frozenset({"boards", "defaults", "locations"})
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
    # Facilities' data that the gateway does not act on: left out of equality, so editing
    # them is no change of binding (no settings pushed to the seat again).
    location: str | None = field(default=None, compare=False)
    # the settings the entry itself sets (`settings` without the defaults it inherits): what
    # an export writes and an import compares
    own_settings: Mapping[SettingKey, int] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )


class Inventory:
    """One consistent read of a source: `by_board(uid)` for a hello, `by_seat(id)` for a
    command. Immutable; a watcher replaces it as a whole."""

    def __init__(
        self,
        source: str,
        seats: Iterable[SeatBinding],
        defaults: Mapping[SettingKey, int] | None = None,
    ) -> None:
        self.source = source
        self.seats = tuple(seats)
        self.defaults: Mapping[SettingKey, int] = MappingProxyType(dict(defaults or {}))
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


def _location(where: str, value: object) -> str | None:
    """Free text of at most LOCATION_MAX printable characters; empty is none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InventoryError(f"{where}: location {value!r} must be a string")
    if len(value) > LOCATION_MAX:
        raise InventoryError(f"{where}: location is {len(value)} characters long, "
                             f"at most {LOCATION_MAX}")  # fmt: skip
    if not value.isprintable():
        # a line break or control character would break the table and the CSV of the tool
        raise InventoryError(f"{where}: location {value!r} holds a character that is not "
                             "printable (line break, tab, control character)")  # fmt: skip
    return value or None


def _binding(
    where: str, raw: Mapping[str, object], defaults: Mapping[SettingKey, int]
) -> SeatBinding:
    """`raw` holds seat, board, name, location, settings as read; `where` names the entry."""
    seat = _seat_id(where, raw.get("seat"))
    where = f"{where} (seat {seat})"
    board = _uid(where, raw.get("board"))
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise InventoryError(f"{where}: name {name!r} must be a string")
    location = _location(where, raw.get("location"))
    own = _settings(f"{where} settings", raw.get("settings"))
    merged = {**defaults, **own}
    return SeatBinding(board, seat, name, MappingProxyType(dict(sorted(merged.items()))),
                       location, MappingProxyType(dict(sorted(own.items()))))  # fmt: skip


def check_entry(where: str, raw: Mapping[str, object]) -> SeatBinding:
    """One entry checked as the inventory checks it (seat, board, name, location and a table
    of setting name = value), without defaults: its `settings` are its own. InventoryError
    names `where`, the seat and the key at fault."""
    return _binding(where, raw, {})


def changes(
    current: Iterable[SeatBinding], wanted: Iterable[SeatBinding]
) -> tuple[list[SeatBinding], list[tuple[SeatBinding, SeatBinding]], list[SeatBinding]]:
    """(added, changed as (old, new), removed) by seat, from `current` to `wanted`. A change
    is another board, name, location or own settings (inherited defaults aside)."""
    old = {b.seat: b for b in current}
    new = {b.seat: b for b in wanted}
    added = [b for seat, b in new.items() if seat not in old]
    removed = [b for seat, b in old.items() if seat not in new]
    changed = [(old[seat], b) for seat, b in new.items()
               if seat in old and _entry(old[seat]) != _entry(b)]  # fmt: skip
    return added, changed, removed


def _entry(b: SeatBinding) -> tuple[object, ...]:
    # an empty name is no name (a CSV cell cannot tell them apart)
    return b.board, b.name or None, b.location, dict(b.own_settings)


def _inventory(
    source: str,
    entries: Iterable[tuple[str, SeatBinding]],
    defaults: Mapping[SettingKey, int] | None = None,
) -> Inventory:
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
    return Inventory(source, out, defaults)


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
    return _inventory(source, _file_entries(source, entries, defaults), defaults)


def _file_entries(
    source: str, entries: list[object], defaults: Mapping[SettingKey, int]
) -> Iterable[tuple[str, SeatBinding]]:
    for n, entry in enumerate(entries, 1):
        where = f"{source}: seat #{n}"
        if not isinstance(entry, dict):
            raise InventoryError(f"{where} must be a table of {', '.join(_SEAT_KEYS)}")
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


def _connect(
    path: Path, source: str, *, create: bool, busy_s: float | None = None
) -> sqlite3.Connection:
    """Open the database and bring its schema to SCHEMA_VERSION. `create`: make the file if
    missing (a provisioning tool); else it must exist (the gateway, a read)."""
    try:
        if create:
            db = sqlite3.connect(path, isolation_level=None, timeout=busy_s or _WRITE_BUSY_S)
        else:
            # mode=rw: the gateway must not create an empty inventory at a mistyped path
            uri = path.absolute().as_uri() + "?mode=rw"
            db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                 timeout=busy_s or _READ_BUSY_S)  # fmt: skip
    except sqlite3.Error as exc:
        raise InventoryError(f"{source}: cannot open the database: {exc}") from None
    try:
        _migrate(db, source)
    except sqlite3.Error as exc:
        db.close()
        raise InventoryError(f"{source}: cannot use the database: {exc}") from None
    except InventoryError:
        db.close()
        raise
    return db


def _version(db: sqlite3.Connection, source: str) -> int:
    (number,) = db.execute("PRAGMA user_version").fetchone()
    if number > SCHEMA_VERSION:
        # its rows may mean what this seatlink cannot know
        raise InventoryError(f"{source}: the database has schema version {number}, "
                             f"newer than this seatlink's {SCHEMA_VERSION}: "
                             "upgrade seatlink")  # fmt: skip
    return int(number)


def _tables(db: sqlite3.Connection) -> frozenset[str]:
    return frozenset(r[0] for r in db.execute("SELECT name FROM sqlite_master "
                                              "WHERE type='table'"))  # fmt: skip


def _migrate(db: sqlite3.Connection, source: str) -> None:
    """Run the steps the database lacks, in one transaction (all or none), checking the
    version again under the write lock: a gateway and a tool may open an old file at once."""
    # the usual case costs two reads and no write lock
    if _version(db, source) == SCHEMA_VERSION and _TABLES <= _tables(db):
        return
    with _Transaction(db):
        # a table dropped by hand: every step again (each is idempotent)
        start = _version(db, source) if _TABLES <= _tables(db) else 0
        for step in _MIGRATIONS[start:]:
            for statement in step:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


_Rows = tuple[list[tuple[object, ...]], list[tuple[object, ...]]]


def _select(db: sqlite3.Connection, tables: frozenset[str] = _TABLES) -> _Rows:
    """The rows of boards (each with its seat's location) and defaults; sqlite3.Error.
    `tables`: those there are (a database read without upgrading it may lack some)."""
    if "boards" not in tables:
        boards = []
    elif "locations" not in tables:
        boards = db.execute("SELECT board, seat, name, settings, NULL FROM boards "
                            "ORDER BY seat").fetchall()  # fmt: skip
    else:
        boards = db.execute("SELECT b.board, b.seat, b.name, b.settings, l.location "
                            "FROM boards b LEFT JOIN locations l ON l.seat = b.seat "
                            "ORDER BY b.seat").fetchall()  # fmt: skip
    defaults = []
    if "defaults" in tables:
        defaults = db.execute("SELECT name, value FROM defaults ORDER BY name").fetchall()
    return boards, defaults


def _read_only(path: Path, source: str) -> Inventory:
    """Read a database as it is: opened read-only, an older schema not upgraded."""
    try:
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True,
                             isolation_level=None, timeout=_WRITE_BUSY_S)  # fmt: skip
    except sqlite3.Error as exc:
        raise InventoryError(f"{source}: cannot open the database: {exc}") from None
    try:
        db.execute("BEGIN")
        try:
            _version(db, source)
            rows = _select(db, _tables(db))
        finally:
            db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise InventoryError(f"{source}: cannot read the database: {exc}") from None
    finally:
        db.close()
    return _parse_db(source, rows)


def _read_db(db: sqlite3.Connection, source: str) -> Inventory:
    try:
        # one read transaction: a provisioning commit lands wholly before or after it
        db.execute("BEGIN")
        try:
            rows = _select(db)
        finally:
            db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        busy = (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        error = _Busy if busy else InventoryError
        raise error(f"{source}: cannot read the database: {exc}") from None
    return _parse_db(source, rows)


def _parse_db(source: str, rows: _Rows) -> Inventory:
    boards, defaults = rows
    merged = dict(_setting(f"{source}: defaults row {name!r}", name, value)
                  for name, value in defaults)  # fmt: skip
    return _inventory(source, _db_entries(source, boards, merged), merged)


def _db_entries(
    source: str, rows: list[tuple[object, ...]], defaults: Mapping[SettingKey, int]
) -> Iterable[tuple[str, SeatBinding]]:
    for board, seat, name, settings, location in rows:
        where = f"{source}: boards row {board!r}"
        table: object = None
        if settings is not None:
            if not isinstance(settings, str):
                raise InventoryError(f"{where}: settings {settings!r} must be JSON text")
            try:
                table = json.loads(settings, object_pairs_hook=_no_repeats)
            except (ValueError, RecursionError) as exc:
                raise InventoryError(f"{where}: settings is not valid JSON: {exc}") from None
        raw = {"seat": seat, "board": board, "name": name, "location": location,
               "settings": table}  # fmt: skip
        yield where, _binding(where, raw, defaults)


def _settings_text(own: Mapping[SettingKey, int]) -> str | None:
    return json.dumps({k.spec.name: v for k, v in own.items()}) if own else None


@dataclass(frozen=True, slots=True)
class Moved:
    """What `InventoryDb.move` did: `board` left `seat_from` for `seat_to`; `other` is the
    board `seat_to` had (gone to `seat_from` if `swapped`, else unbound), None if it had
    none."""

    board: str
    seat_from: str
    seat_to: str
    other: str | None
    swapped: bool


class InventoryDb:
    """The SQLite inventory for a provisioning tool: `with InventoryDb(url) as db:`. Creates
    the database and its tables if missing (unless `create=False`: then it must exist) and
    upgrades an older schema. The gateway reads it with `load_inventory` or an
    `InventoryWatcher`, which sees each commit. Every change is one transaction: it is
    checked against the rows under the write lock and made wholly or not at all."""

    def __init__(self, source: str | Path, *, create: bool = True) -> None:
        self.source = str(source)
        if isinstance(source, str) and source.startswith("sqlite:"):
            path = _db_path(source)
        else:
            path = Path(source)
        self._db = _connect(path, self.source, create=create, busy_s=_WRITE_BUSY_S)

    def provision(
        self,
        board: str,
        seat: str,
        *,
        name: str | None = None,
        settings: Mapping[str, int] | None = None,
        location: str | None = None,
    ) -> None:
        """Bind `board` (uid, any case) to `seat`; InventoryError if either is bound already
        or anything would not load."""
        where = f"{self.source}: provision"
        raw = {"seat": seat, "board": board, "name": name, "location": location,
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
                self._set_location(binding.seat, binding.location)
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None

    def retire(self, board: str) -> None:
        """Unbind `board` (any case): from now on it is quarantined. InventoryError if it is
        not bound."""
        where = f"{self.source}: retire"
        uid = _uid(where, board)
        try:
            with _Transaction(self._db):
                # every row of the uid: rows typed in by hand may hold it in two cases
                seats = self._db.execute("SELECT seat FROM boards WHERE upper(board) = ?",
                                         (uid,)).fetchall()  # fmt: skip
                if not seats:
                    raise InventoryError(f"{where}: board {uid} is not bound to any seat")
                for (seat,) in seats:
                    self._drop_seat(seat)
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None

    def unbind(self, seat: str) -> str:
        """Unbind `seat`, its name, location and settings with it; returns the board it had
        (quarantined from now on). InventoryError if the seat has no board."""
        where = f"{self.source}: unbind"
        seat = _seat_id(where, seat)
        try:
            with _Transaction(self._db):
                row = self._db.execute("SELECT board FROM boards WHERE seat = ?",
                                       (seat,)).fetchone()  # fmt: skip
                if row is None:
                    raise InventoryError(f"{where}: seat {seat} is not bound to any board")
                self._drop_seat(seat)
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None
        return str(row[0]).upper()

    def move(self, board: str, seat: str, *, swap: bool = False, replace: bool = False) -> Moved:
        """Bind `board` to `seat` instead of the seat it is bound to now. Settings, name and
        location belong to the seat, not the board: the board takes those of `seat` (none if
        `seat` had no board) and its old seat's go with its old seat. Its old seat is left
        without a board (and loses them), unless `swap`: then the board `seat` had moves to
        the old seat. A `seat` bound to another board needs `swap` or `replace` (that board
        is unbound). InventoryError if the board is not bound or is at `seat` already."""
        where = f"{self.source}: move"
        uid, to = _uid(where, board), _seat_id(where, seat)
        try:
            with _Transaction(self._db):
                row = self._db.execute("SELECT seat FROM boards WHERE upper(board) = ?",
                                       (uid,)).fetchone()  # fmt: skip
                if row is None:
                    raise InventoryError(f"{where}: board {uid} is not bound to any seat")
                frm = str(row[0])
                if frm == to:
                    raise InventoryError(f"{where}: board {uid} is at seat {to} already")
                row = self._db.execute("SELECT board FROM boards WHERE seat = ?",
                                       (to,)).fetchone()  # fmt: skip
                other = None if row is None else str(row[0])
                if other is None:
                    # the seat has nothing on record: the board arrives with nothing either
                    self._drop_seat(frm)
                    self._drop_seat(to)  # a location left behind by a hand edit
                    self._db.execute("INSERT INTO boards (board, seat) VALUES (?, ?)",
                                     (uid, to))  # fmt: skip
                elif swap:
                    # one uid per row at every statement (the key is checked row by row): the
                    # old seat's row holds a placeholder that is no uid meanwhile
                    update = "UPDATE boards SET board = ? WHERE seat = ?"
                    self._db.execute(update, ("(moving)", frm))
                    self._db.execute(update, (uid, to))
                    self._db.execute(update, (other, frm))
                elif replace:
                    self._drop_seat(frm)
                    self._db.execute("UPDATE boards SET board = ? WHERE seat = ?", (uid, to))
                else:
                    raise InventoryError(f"{where}: seat {to} has board {other.upper()}: swap "
                                         "the two boards or replace it")  # fmt: skip
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None
        return Moved(uid, frm, to, None if other is None else other.upper(), swap)

    def replace_all(
        self, wanted: Iterable[SeatBinding]
    ) -> tuple[list[SeatBinding], list[tuple[SeatBinding, SeatBinding]], list[SeatBinding]]:
        """Make the bindings exactly `wanted` (each binding's `own_settings` are what is
        stored; the defaults table is left as it is), in one transaction, writing only the
        seats that change. Returns `changes(before, wanted)`. InventoryError, nothing
        written, if `wanted` binds a board or seat twice or the current rows do not load."""
        where = f"{self.source}: replace"
        wanted = list(wanted)
        _inventory(where, ((f"entry #{n}", b) for n, b in enumerate(wanted, 1)))
        try:
            with _Transaction(self._db):
                current = _parse_db(self.source, _select(self._db))
                added, changed, removed = changes(current.seats, wanted)
                # rows whose board goes are deleted before any insert, so no uid is held by
                # two rows at any statement
                for b in removed:
                    self._drop_seat(b.seat)
                for old, new in changed:
                    if old.board != new.board:
                        self._drop_seat(old.seat)
                for b in added + [new for old, new in changed if old.board != new.board]:
                    self._db.execute("INSERT INTO boards (board, seat, name, settings) "
                                     "VALUES (?, ?, ?, ?)",
                                     (b.board, b.seat, b.name,
                                      _settings_text(b.own_settings)))  # fmt: skip
                    self._set_location(b.seat, b.location)
                for old, new in changed:
                    if old.board == new.board:
                        # the board as stored: a row typed in by hand may hold lower case
                        self._db.execute("UPDATE boards SET board = ?, name = ?, settings = ? "
                                         "WHERE seat = ?",
                                         (new.board, new.name, _settings_text(new.own_settings),
                                          new.seat))  # fmt: skip
                        self._set_location(new.seat, new.location)
        except sqlite3.Error as exc:
            raise InventoryError(f"{where}: {exc}") from None
        return added, changed, removed

    def _drop_seat(self, seat: str) -> None:
        self._db.execute("DELETE FROM boards WHERE seat = ?", (seat,))
        self._db.execute("DELETE FROM locations WHERE seat = ?", (seat,))

    def _set_location(self, seat: str, location: str | None) -> None:
        if location is None:
            self._db.execute("DELETE FROM locations WHERE seat = ?", (seat,))
        else:
            self._db.execute("INSERT OR REPLACE INTO locations (seat, location) VALUES (?, ?)",
                             (seat, location))  # fmt: skip

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


def load_inventory(source: str | Path, *, readonly: bool = False) -> Inventory:
    """Read a .toml or .json file, or an sqlite:/// database, once; InventoryError if it is
    missing or anything in it is wrong. `readonly`: write nothing to a database, not even
    its tables or a schema upgrade (a tool's dry run or export)."""
    fmt, text, path = _kind(source)
    if fmt == "sqlite" and readonly:
        return _read_only(path, text)
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
