"""`seatlink inventory`: facilities' view of the fleet and the inventory's CSV (issue 7).

Design requirements:

- The inventory itself (gateway/edge/inventory.py) does the checking: the tool checks a
  binding, a CSV row or a setting exactly as the gateway will when it reads it, so what the
  tool accepts the gateway bridges.
- Firmware, last seen and online come from what the gateways retain on the broker
  (`seat/{seat}/health`, `seat/{seat}/availability`, `gateway/{gateway}/status`,
  `gateway/{gateway}/quarantine`), read by a short-lived client with a deadline: a listing
  never hangs on a broker that does not answer. Boards the gateways quarantined are listed
  as unbound, so facilities see what is waiting to be provisioned.
- The CSV holds the bindings (seat, board, location, name, the seat's own settings; the
  inventory's defaults stay where they are). An import replaces the SQLite inventory's
  bindings with the file's, all or nothing: every row is checked first, every bad row is
  reported with its line number, and nothing is written if any is bad. Export then import
  gives the same inventory.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiomqtt
from pydantic import ValidationError

from gateway.contract.payloads import (
    GatewayStatus,
    Payload,
    Quarantine,
    QuarantinedBoard,
    SeatAvailability,
    SeatHealth,
)
from gateway.contract.topics import TopicError, Topics
from gateway.edge.inventory import (
    SQLITE_PREFIX,
    Inventory,
    InventoryError,
    SeatBinding,
    check_entry,
)
from gateway.seatlink.codec import SETTINGS, SettingKey

__all__ = [
    "BASE_COLUMNS",
    "CsvProblems",
    "Fleet",
    "Row",
    "ToolError",
    "as_json",
    "describe_changes",
    "export_csv",
    "parse_broker",
    "read_csv",
    "read_fleet",
    "require_sqlite",
    "rows",
    "table",
]

BASE_COLUMNS = ("seat", "board", "location", "name")
_SETTING_NAMES = tuple(spec.name for spec in SETTINGS.values())  # the codec's order
_BY_NAME: Mapping[str, SettingKey] = {spec.name: key for key, spec in SETTINGS.items()}
_WHOLE = re.compile(r"[+-]?[0-9]+")
NONE = "-"  # what a table cell says when there is nothing to say


class ToolError(Exception):
    """A request the tool refuses: one line that says what is wrong and what to do."""


class CsvProblems(ToolError):
    """A CSV that cannot be imported: every problem found, each naming its line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s), nothing imported")
        self.problems = list(problems)


def require_sqlite(source: str) -> None:
    """Refuse to write a TOML or JSON inventory: staff edit those by hand, comments and all,
    and the gateway re-reads them; the tool writes only the SQLite inventory."""
    if not source.startswith(SQLITE_PREFIX):
        raise ToolError(f"{source} is an inventory file edited by hand (docs/edge.md, "
                        "Inventory): edit it there; bind, unbind, move and import write only "
                        f"an {SQLITE_PREFIX}path inventory")  # fmt: skip


# --- the fleet as the gateways report it ----------------------------------------------------


@dataclass
class Fleet:
    """What the broker retains, parsed. `skipped` names payloads that did not parse."""

    health: dict[str, SeatHealth]
    availability: dict[str, SeatAvailability]
    gateways: dict[str, GatewayStatus]
    quarantine: dict[str, Quarantine]
    skipped: list[str]


def parse_broker(text: str) -> tuple[str, int]:
    """HOST:PORT (PORT 1-65535; `[::1]:1884` for an IPv6 address); HOST alone is port 1883."""
    host, sep, port = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port = text, "1883"  # no port, or a bare IPv6 address
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ToolError(f"--broker {text!r} is not HOST:PORT (port 1-65535)")
    return host, int(port)


async def _retained(
    broker: tuple[str, int],
    filters: Sequence[str],
    *,
    username: str | None,
    password: str | None,
    timeout: float,
    quiet: float,
) -> dict[str, bytes]:
    """Every message on `filters` until none came for `quiet` seconds (the broker sends the
    retained ones right after each subscription), at most `timeout` seconds in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: dict[str, bytes] = {}
    # a private id: two listings at once must not take over each other's session
    identifier = f"seatlink-inventory-{os.getpid()}-{secrets.token_hex(4)}"
    async with aiomqtt.Client(broker[0], broker[1], identifier=identifier, username=username,
                              password=password, timeout=timeout) as client:  # fmt: skip
        for topic in filters:
            await client.subscribe(topic, qos=1)
        messages = client.messages
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(anext(messages), min(quiet, left))
            except TimeoutError:
                break
            if isinstance(message.payload, bytes | bytearray):
                found[message.topic.value] = bytes(message.payload)
    return found


def read_fleet(
    broker: tuple[str, int],
    topics: Topics,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
    quiet: float = 0.3,
) -> Fleet:
    """The gateways' retained reports on the broker; ToolError if it cannot be reached or
    does not answer within `timeout` seconds."""
    names: dict[str, type[Payload]] = {
        "seat_health": SeatHealth, "seat_availability": SeatAvailability,
        "gateway_status": GatewayStatus, "gateway_quarantine": Quarantine,
    }  # fmt: skip
    filters = [topics.subscription(name) for name in names]
    try:
        # the client's own timeout covers each step; this one the whole, connect included
        found = asyncio.run(asyncio.wait_for(
            _retained(broker, filters, username=username, password=password, timeout=timeout,
                      quiet=quiet), timeout + quiet + 1.0))  # fmt: skip
    except (aiomqtt.MqttError, OSError) as exc:
        raise ToolError(f"cannot read the broker at {broker[0]}:{broker[1]}: {exc}") from None
    except TimeoutError:
        raise ToolError(f"the broker at {broker[0]}:{broker[1]} did not answer within "
                        f"{timeout:g} s") from None  # fmt: skip
    fleet = Fleet({}, {}, {}, {}, [])
    parsed: dict[str, dict[str, Payload]] = {n: {} for n in names}
    for topic, payload in sorted(found.items()):
        try:
            where = topics.parse(topic)
            model = names[where.spec.name]
            parsed[where.spec.name][next(iter(where.ids.values()))] = (
                model.model_validate_json(payload))
        except (TopicError, KeyError, ValidationError):
            fleet.skipped.append(topic)  # a newer payload version, or not ours: not shown
    fleet.health = {k: v for k, v in parsed["seat_health"].items() if isinstance(v, SeatHealth)}
    fleet.availability = {k: v for k, v in parsed["seat_availability"].items()
                          if isinstance(v, SeatAvailability)}  # fmt: skip
    fleet.gateways = {k: v for k, v in parsed["gateway_status"].items()
                      if isinstance(v, GatewayStatus)}  # fmt: skip
    fleet.quarantine = {k: v for k, v in parsed["gateway_quarantine"].items()
                        if isinstance(v, Quarantine)}  # fmt: skip
    return fleet


# --- the listing ----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of `list`: a bound seat, or (seat None) a board a gateway quarantined."""

    seat: str | None
    board: str | None  # None: a quarantined link whose board has not said hello yet
    location: str | None
    name: str | None
    firmware: str | None
    last_seen: float | None  # Unix seconds
    online: str | None  # online, offline, offline (gateway), unbound; None: not known
    gateway: str | None


def _seat_row(b: SeatBinding, fleet: Fleet | None) -> Row:
    row = Row(b.seat, b.board, b.location, b.name, None, None, None, None)
    if fleet is None:
        return row
    seen: list[float] = []
    health = fleet.health.get(b.seat)
    # a seat's retained health may still be that of the board it had before a move
    if health is not None and health.board.upper() == b.board:
        row.firmware, row.gateway = health.firmware, health.gateway
        seen.append(health.t)
    available = fleet.availability.get(b.seat)
    if available is not None:
        row.online, row.gateway = available.status, available.gateway
        gateway = fleet.gateways.get(available.gateway)
        if available.status == "online":
            seen.append(available.t)
            # a gateway that died left its seats' last word "online" (docs/mqtt.md)
            if gateway is not None and gateway.status == "offline":
                row.online = "offline (gateway)"
    row.last_seen = max(seen, default=None)
    return row


def _quarantined_row(gateway: str, entry: QuarantinedBoard) -> Row:
    return Row(None, entry.board, None, f"quarantined on {gateway} ({entry.link})",
               entry.firmware, entry.last_seen, "unbound", gateway)  # fmt: skip


def rows(inventory: Inventory, fleet: Fleet | None) -> list[Row]:
    """The inventory's seats in its order, then the boards quarantined by a gateway that
    the inventory does not bind (a binding made since the gateway's report is listed once,
    as bound)."""
    out = [_seat_row(b, fleet) for b in inventory.seats]
    if fleet is not None:
        for gateway, quarantine in sorted(fleet.quarantine.items()):
            for entry in quarantine.boards:
                if entry.board is None or inventory.by_board(entry.board) is None:
                    out.append(_quarantined_row(gateway, entry))
    return out


def _when(t: float | None) -> str:
    return NONE if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def table(listing: Iterable[Row]) -> str:
    """A fixed-width table (local times), one row a line, "-" for nothing known."""
    head = ("seat", "board", "location", "name", "firmware", "last seen", "online")
    lines = [head] + [
        tuple(NONE if v is None else v for v in (r.seat, r.board, r.location, r.name,
                                                 r.firmware, _when(r.last_seen), r.online))
        for r in listing
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def as_json(listing: Iterable[Row]) -> str:
    return json.dumps([asdict(r) for r in listing], indent=2)


# --- CSV ------------------------------------------------------------------------------------


def export_csv(inventory: Inventory, path: Path) -> int:
    """Write seat, board, location, name and a column per setting that any entry sets
    itself (empty: the default); returns the number of seats. Written to a new file and
    renamed over `path`, so a reader never sees half a file."""
    used = {k for b in inventory.seats for k in b.own_settings}
    settings = [key for key in SETTINGS if key in used]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*BASE_COLUMNS, *(key.spec.name for key in settings)])
    for b in inventory.seats:
        own = b.own_settings
        writer.writerow([b.seat, b.board, b.location or "", b.name or "",
                         *(own.get(key, "") for key in settings)])  # fmt: skip
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(out.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(inventory.seats)


def _header(source: str, header: list[str]) -> tuple[list[str], list[str]]:
    """(the column names, the problems with them)."""
    names = [h.strip() for h in header]
    problems = []
    for n, name in enumerate(names):
        if name in names[:n]:
            problems.append(f"{source} line 1: column {name!r} is given twice")
        elif name not in BASE_COLUMNS and name not in _BY_NAME:
            problems.append(f"{source} line 1: column {name!r} is neither one of "
                            f"{', '.join(BASE_COLUMNS)} nor a setting "
                            f"({', '.join(_SETTING_NAMES)})")  # fmt: skip
    for name in BASE_COLUMNS:
        if name not in names:
            # a missing location or name column would clear every seat's on import
            problems.append(f"{source} line 1: column {name!r} is missing (the header is "
                            f"{','.join(BASE_COLUMNS)}[,setting...])")  # fmt: skip
    return names, problems


def _row(where: str, cells: Mapping[str, str]) -> SeatBinding:
    settings: dict[str, int] = {}
    for name, cell in cells.items():
        if name in BASE_COLUMNS or not cell.strip():
            continue  # an empty setting: the default
        if not _WHOLE.fullmatch(cell.strip()):
            seat = cells["seat"].strip()
            raise InventoryError(f"{where}{f' (seat {seat})' if seat else ''}: {name} "
                                 f"{cell!r} is not a whole number")  # fmt: skip
        settings[name] = int(cell)
    raw = {"seat": cells["seat"].strip() or None, "board": cells["board"].strip() or None,
           "location": cells["location"] or None, "name": cells["name"] or None,
           "settings": settings}  # fmt: skip
    return check_entry(where, raw)


def read_csv(path: Path) -> list[SeatBinding]:
    """Every row checked as the inventory checks an entry (the settings being the seat's
    own), plus no seat or board twice. CsvProblems lists every bad row by line; ToolError
    if the file cannot be read at all."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ToolError(f"{source}: cannot read the file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's UTF-8 starts with a BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ToolError(f"{source} line {line}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ToolError(f"{source}: the file is empty; its first line is the header "
                            f"{','.join(BASE_COLUMNS)}[,setting...]")  # fmt: skip
        names, problems = _header(source, header)
        if problems:
            raise CsvProblems(source, problems)
        out: list[SeatBinding] = []
        seats: dict[str, int] = {}
        boards: dict[str, int] = {}
        while True:
            line = reader.line_num + 1  # where the record starts (a quoted field may wrap)
            cells = next(reader, None)
            if cells is None:
                break
            where = f"{source} line {line}"
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) != len(names):
                problems.append(f"{where}: {len(cells)} fields, the header has {len(names)}")
                continue
            row = dict(zip(names, cells, strict=True))
            # repeats by the cells as written, so a repeat of a row that is bad for another
            # reason is reported too
            seat, board = row["seat"].strip(), row["board"].strip().upper()
            if seat and seat in seats:
                problems.append(f"{where}: seat {seat} is on line {seats[seat]} too")
                continue
            if board and board in boards:
                problems.append(f"{where} (seat {seat}): board {board} is on line "
                                f"{boards[board]} too")  # fmt: skip
                continue
            seats.setdefault(seat, line)
            boards.setdefault(board, line)
            try:
                out.append(_row(where, row))
            except InventoryError as exc:
                problems.append(str(exc))
    except csv.Error as exc:
        raise ToolError(f"{source} line {reader.line_num}: not valid CSV: {exc}") from None
    if problems:
        raise CsvProblems(source, problems)
    return out


# --- what a change does ---------------------------------------------------------------------


def _settings_text(own: Mapping[SettingKey, int]) -> str:
    return ",".join(f"{k.spec.name}={v}" for k, v in own.items()) or NONE


def _fields(b: SeatBinding) -> dict[str, str]:
    return {"board": b.board, "location": json.dumps(b.location) if b.location else NONE,
            "name": json.dumps(b.name) if b.name else NONE,
            "settings": _settings_text(b.own_settings)}  # fmt: skip


def describe_changes(
    added: Sequence[SeatBinding],
    changed: Sequence[tuple[SeatBinding, SeatBinding]],
    removed: Sequence[SeatBinding],
) -> list[str]:
    """One line per seat added, changed (each field that changes: old -> new) or removed,
    then a count."""
    out = []
    for b in added:
        out.append(f"added   {b.seat}: " + "; ".join(f"{k} {v}" for k, v in _fields(b).items()))
    for old, new in changed:
        before, after = _fields(old), _fields(new)
        diff = [f"{k} {before[k]} -> {after[k]}" for k in after if before[k] != after[k]]
        out.append(f"changed {new.seat}: " + "; ".join(diff))
    for b in removed:
        out.append(f"removed {b.seat}: board {b.board}")
    out.append(f"{len(added)} added, {len(changed)} changed, {len(removed)} removed")
    return out
