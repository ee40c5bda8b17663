"""`seatlink inventory`: bindings with locations, CSV export and import, and the fleet listing
against a real mosquitto (the `mqtt_broker` fixture), on real SQLite files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.cli import run
from gateway.contract.payloads import (
    GatewayStatus,
    Payload,
    Quarantine,
    QuarantinedBoard,
    SeatAvailability,
    SeatHealth,
)
from gateway.contract.topics import Topics
from gateway.edge.inventory import (
    SCHEMA_VERSION,
    Inventory,
    InventoryDb,
    InventoryError,
    load_inventory,
)
from gateway.seatlink.codec import SettingKey

ROOT = Path(__file__).resolve().parents[2]
# the first release's schema, as gateway/edge/inventory.py created it before locations
OLD_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS boards (board TEXT PRIMARY KEY, seat TEXT UNIQUE NOT NULL, "
    "name TEXT, settings TEXT)",
    "CREATE TABLE IF NOT EXISTS defaults (name TEXT PRIMARY KEY, value INTEGER)",
)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        status = run(["inventory", *argv])
    except SystemExit as exc:  # argparse's own errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def entries(inventory: Inventory) -> list[tuple[object, ...]]:
    """What an inventory holds, entry by entry, own settings and all."""
    return [(b.seat, b.board, b.name, b.location, dict(b.own_settings), dict(b.settings))
            for b in inventory.seats]  # fmt: skip


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    """An SQLite inventory of three seats, with settings, locations and a default."""
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    with InventoryDb(url) as inv:
        inv.provision("5ea70001", "s101", name="Desk 1", location="Floor 2, row C, desk 14",
                      settings={"ring_limit": 4})  # fmt: skip
        inv.provision("5EA70002", "s102", location="Floor 2, row C, desk 15",
                      settings={"acw_s": 45, "hold_limit_s": 60})  # fmt: skip
        inv.provision("5EA70003", "s103")
    with sqlite3.connect(tmp_path / "inv.db") as raw:
        raw.execute("INSERT INTO defaults VALUES ('acw_s', 30)")
    raw.close()
    yield url


# --- CSV ------------------------------------------------------------------------------------


def test_csv_round_trip_gives_the_same_inventory(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "-i", db, "bind", "--seat", "s104", "--board", "5EA7000A",
                         "--location", "Étage 3, près de la fenêtre", "--name", "Desk, \"A\"")
    assert status == 0 and out == "bound board 5EA7000A to seat s104\n"
    csv_path = tmp_path / "fleet.csv"
    status, out, _ = cli(capsys, "-i", db, "export", "--csv", str(csv_path))
    assert status == 0 and "exported 4 seats" in out and "defaults (acw_s=30)" in out
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    # one column per setting some entry sets itself, in the settings' order; empty: default
    assert lines[0] == "seat,board,location,name,ring_limit,acw_s,hold_limit_s"
    assert lines[1] == 's101,5EA70001,"Floor 2, row C, desk 14",Desk 1,4,,'
    assert lines[4] == 's104,5EA7000A,"Étage 3, près de la fenêtre","Desk, ""A""",,,'
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    status, out, _ = cli(capsys, "-i", fresh, "import", "--csv", str(csv_path))
    assert status == 0 and out.splitlines()[-1] == "4 added, 0 changed, 0 removed"
    before, after = load_inventory(db), load_inventory(fresh)
    # own settings are the same; the defaults (not in the CSV) stay with each database
    assert [e[:5] for e in entries(after)] == [e[:5] for e in entries(before)]
    assert after.defaults == {} and before.defaults == {SettingKey.ACW_S: 30}
    # importing it back into the first one changes nothing
    status, out, _ = cli(capsys, "-i", db, "import", "--csv", str(csv_path))
    assert status == 0 and out == "0 added, 0 changed, 0 removed\n"
    assert entries(load_inventory(db)) == entries(before)


def test_an_import_replaces_the_bindings_and_a_dry_run_writes_nothing(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "new.csv"
    csv_path.write_text(
        "seat,board,location,name,ring_limit\n"
        "s101,5EA70001,Floor 1,Desk 1,5\n"  # location and ring_limit change
        "s102,5EA70009,\"Floor 2, row C, desk 15\",,\n"  # another board; its settings go
        "\n"  # blank lines are skipped
        "s105,5ea70003,,,\n"  # s103's board moves to a new seat; s103 goes
        , encoding="utf-8")  # fmt: skip
    path = tmp_path / "inv.db"
    was = digest(path)
    status, out, err = cli(capsys, "-i", db, "import", "--csv", str(csv_path), "--dry-run")
    assert status == 0 and err == ""
    assert out.splitlines() == [
        "added   s105: board 5EA70003; location -; name -; settings -",
        'changed s101: location "Floor 2, row C, desk 14" -> "Floor 1"; '
        "settings ring_limit=4 -> ring_limit=5",
        "changed s102: board 5EA70002 -> 5EA70009; settings acw_s=45,hold_limit_s=60 -> -",
        "removed s103: board 5EA70003",
        "1 added, 2 changed, 1 removed",
        "dry run: nothing written",
    ]
    assert digest(path) == was
    status, out, _ = cli(capsys, "-i", db, "import", "--csv", str(csv_path))
    assert status == 0 and out.splitlines()[-1] == "1 added, 2 changed, 1 removed"
    assert entries(load_inventory(db)) == [
        ("s101", "5EA70001", "Desk 1", "Floor 1", {SettingKey.RING_LIMIT: 5},
         {SettingKey.ACW_S: 30, SettingKey.RING_LIMIT: 5}),
        ("s102", "5EA70009", None, "Floor 2, row C, desk 15", {}, {SettingKey.ACW_S: 30}),
        ("s105", "5EA70003", None, None, {}, {SettingKey.ACW_S: 30}),
    ]  # fmt: skip


GOOD = "s101,5EA70001,Floor 1,Desk 1,4\n"
HEADER = "seat,board,location,name,ring_limit\n"
BAD_CSV = [
    (HEADER + GOOD + "s102,5EA7000G,,,\n",
     [r"line 3 \(seat s102\): board '5EA7000G' is not 1-32 hex digits"]),
    (HEADER + GOOD + "s101,5EA70002,,,\n", [r"line 3: seat s101 is on line 2 too"]),
    (HEADER + GOOD + "s102,5ea70001,,,\n",
     [r"line 3 \(seat s102\): board 5EA70001 is on line 2 too"]),
    ("seat,board,location,name,ring_limt\n" + GOOD,
     [r"line 1: column 'ring_limt' is neither one of seat, board, location, name nor a "
      r"setting \(ring_limit, ring_ms"]),
    (HEADER + GOOD + "s102,5EA70002,,,11\n",
     [r"line 3 \(seat s102\) settings\.ring_limit: 11 is out of range 1\.\.10"]),
    (HEADER + GOOD + "s102,5EA70002,,,4.0\n",
     [r"line 3 \(seat s102\): ring_limit '4\.0' is not a whole number"]),
    ("seat,board,name,ring_limit\ns101,5EA70001,Desk 1,4\n",
     [r"line 1: column 'location' is missing \(the header is seat,board,location,name"]),
    (HEADER + GOOD + "s102,5EA70002,\n", [r"line 3: 3 fields, the header has 5"]),
    (HEADER + "s 1,5EA70002,,,\n" + GOOD + 's102,5EA70003,"two\nlines",,\n' + "s103,,,,\n",
     [r"line 2: seat id 's 1' is not 1-64 characters",
      r"line 4 \(seat s102\): location 'two\\nlines' holds a character that is not printable",
      r"line 6 \(seat s103\): board \(the board's uid\) is missing"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "problems"), BAD_CSV)
def test_a_bad_csv_is_refused_line_by_line_and_nothing_written(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str], text: str,
    problems: list[str],
) -> None:  # fmt: skip
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(text, encoding="utf-8")
    path = tmp_path / "inv.db"
    was, before = digest(path), entries(load_inventory(db))
    for dry in ([], ["--dry-run"]):
        status, out, err = cli(capsys, "-i", db, "import", "--csv", str(csv_path), *dry)
        assert status == 2 and out == ""
        lines = err.splitlines()
        assert len(lines) == len(problems) + 1
        for line, problem in zip(lines, problems, strict=False):
            assert line.startswith(f"seatlink inventory import: {csv_path} ")
            assert re.search(problem, line), line
        assert lines[-1] == (f"seatlink inventory import: {csv_path}: {len(problems)} "
                             "problem(s), nothing imported")  # fmt: skip
    assert digest(path) == was and entries(load_inventory(db)) == before
    # nor is a database created by a refused import
    status, _, _ = cli(capsys, "-i", f"sqlite:///{tmp_path / 'new.db'}", "import", "--csv",
                       str(csv_path))  # fmt: skip
    assert status == 2 and not (tmp_path / "new.db").exists()


# --- bind, unbind, move ---------------------------------------------------------------------


def test_move_keeps_settings_name_and_location_with_the_seat(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s101, s102 = (load_inventory(db).by_seat(s) for s in ("s101", "s102"))
    assert s101 is not None and s102 is not None
    # the two boards swap desks: each seat keeps its own
    status, out, _ = cli(capsys, "-i", db, "move", "--board", "5ea70001", "--seat", "s102",
                         "--swap")  # fmt: skip
    assert status == 0 and out.splitlines() == [
        "moved board 5EA70001 from seat s101 to seat s102",
        "moved board 5EA70002 from seat s102 to seat s101",
    ]
    inventory = load_inventory(db)
    for seat, was, board in (("s101", s101, "5EA70002"), ("s102", s102, "5EA70001")):
        now = inventory.by_seat(seat)
        assert now is not None and now.board == board
        assert (now.name, now.location, now.own_settings) == (
            was.name, was.location, was.own_settings)
    # to a desk with no entry: the board takes nothing along, its old seat is left empty
    status, out, _ = cli(capsys, "-i", db, "move", "--board", "5EA70001", "--seat", "s109")
    assert status == 0 and out.splitlines()[-1].startswith("seat s102 has no board now")
    inventory = load_inventory(db)
    s109 = inventory.by_seat("s109")
    assert inventory.by_seat("s102") is None and s109 is not None
    assert (s109.board, s109.name, s109.location, dict(s109.own_settings)) == (
        "5EA70001", None, None, {})
    # replacing a seat's board: that board is unbound, the seat keeps its settings
    status, out, _ = cli(capsys, "-i", db, "move", "--board", "5EA70003", "--seat", "s101",
                         "--replace")  # fmt: skip
    assert status == 0 and "unbound board 5EA70002" in out
    inventory = load_inventory(db)
    now = inventory.by_seat("s101")
    assert now is not None and now.board == "5EA70003"
    assert (now.location, now.own_settings) == (s101.location, s101.own_settings)
    assert inventory.by_board("5EA70002") is None and inventory.by_seat("s103") is None
    status, out, _ = cli(capsys, "-i", db, "unbind", "--seat", "s101")
    assert status == 0 and out.startswith("unbound seat s101 from board 5EA70003")
    assert [b.seat for b in load_inventory(db).seats] == ["s109"]
    # the location went with the entry: none left behind in its table
    with sqlite3.connect(tmp_path / "inv.db") as raw:
        assert raw.execute("SELECT seat FROM locations").fetchall() == []
    raw.close()


def test_a_toml_inventory_is_edited_by_hand_and_read_like_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inv.toml"
    path.write_text('[defaults]\nacw_s = 30\n\n[[seat]]\nseat = "s101"\nboard = "5EA70001"\n'
                    'location = "Floor 2, row C, desk 14"\nsettings = { ring_limit = 4 }\n',
                    encoding="utf-8")  # fmt: skip
    was = digest(path)
    csv_path = tmp_path / "fleet.csv"
    csv_path.write_text("seat,board,location,name\ns102,5EA70002,,\n", encoding="utf-8")
    for argv in (["bind", "--seat", "s102", "--board", "5EA70002"], ["unbind", "--seat", "s101"],
                 ["move", "--board", "5EA70001", "--seat", "s102"],
                 ["import", "--csv", str(csv_path)]):  # fmt: skip
        status, out, err = cli(capsys, "-i", str(path), *argv)
        assert status == 2 and out == ""
        assert err == (f"seatlink inventory {argv[0]}: {path} is an inventory file edited by "
                       "hand (docs/edge.md, Inventory): edit it there; bind, unbind, move and "
                       "import write only an sqlite:///path inventory\n")  # fmt: skip
    assert digest(path) == was
    status, out, _ = cli(capsys, "-i", str(path), "list")
    assert status == 0 and out.splitlines()[1].split() == [
        "s101", "5EA70001", "Floor", "2,", "row", "C,", "desk", "14", "-", "-", "-", "-"]
    status, _, _ = cli(capsys, "-i", str(path), "export", "--csv", str(csv_path))
    assert status == 0 and csv_path.read_text(encoding="utf-8") == (
        'seat,board,location,name,ring_limit\ns101,5EA70001,"Floor 2, row C, desk 14",,4\n')
    # a location the inventory cannot take is refused in a file as in the database
    path.write_text('[[seat]]\nseat = "s101"\nboard = "1"\nlocation = "' + "x" * 201 + '"\n',
                    encoding="utf-8")  # fmt: skip
    with pytest.raises(InventoryError, match=r"seat #1 \(seat s101\): location is 201 "
                                             r"characters long, at most 200"):  # fmt: skip
        load_inventory(path)


def test_an_old_schema_database_opens_and_gains_locations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    with sqlite3.connect(path) as raw:  # as the older seatlink left it
        for statement in OLD_SCHEMA:
            raw.execute(statement)
        raw.execute("INSERT INTO boards VALUES ('5EA70001', 's101', 'Desk 1', "
                    "'{\"ring_limit\": 4}')")  # fmt: skip
        raw.execute("INSERT INTO defaults VALUES ('acw_s', 30)")
    raw.close()
    # listing and exporting read it as it is: not even the schema is written
    was = digest(path)
    status, out, _ = cli(capsys, "-i", url, "list")
    assert status == 0 and out.splitlines()[1].split()[:4] == ["s101", "5EA70001", "-", "Desk"]
    assert digest(path) == was
    # the gateway's read upgrades it in place, keeping every row
    inventory = load_inventory(url)
    binding = inventory.by_seat("s101")
    assert binding is not None and binding.location is None
    assert dict(binding.settings) == {SettingKey.ACW_S: 30, SettingKey.RING_LIMIT: 4}
    with sqlite3.connect(path) as raw:
        (version,) = raw.execute("PRAGMA user_version").fetchone()
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert version == SCHEMA_VERSION and {"boards", "defaults", "locations"} <= tables
    status, _, _ = cli(capsys, "-i", url, "bind", "--seat", "s102", "--board", "5EA70002",
                       "--location", "Floor 1")  # fmt: skip
    assert status == 0
    # idempotent: opening it again changes nothing; an older writer's four-column insert
    # still fits the boards table
    with InventoryDb(url):
        pass
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        raw.execute("INSERT INTO boards VALUES ('5EA70003', 's103', NULL, NULL)")
    raw.close()
    assert [(b.seat, b.location) for b in load_inventory(url).seats] == [
        ("s101", None), ("s102", "Floor 1"), ("s103", None)]
    # a newer schema is refused, not misread
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(InventoryError, match=r"schema version \d+, newer than this"):
        load_inventory(url)


# --- the fleet from the broker --------------------------------------------------------------


def publish(broker: tuple[str, int], messages: list[tuple[str, bytes]]) -> None:
    async def go() -> None:
        async with aiomqtt.Client(*broker, identifier="test-inventory-publisher") as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1, retain=True)

    asyncio.run(go())


def health(seat: str, board: str, firmware: str, t: float) -> SeatHealth:
    return SeatHealth(seat=seat, gateway="edge-1", board=board, link="socket://127.0.0.1:1",
                      uptime_s=60, free_heap=20000, worst_loop_ms=3, firmware=firmware,
                      seat_bad_frames=0, seat_dropped_frames=0, seat_queue_depth=0,
                      seat_retransmits=0, seat_loop_errors=0, frames_in=10, crc_errors=0,
                      garbage=0, duplicates=0, out_of_order=0, retransmits=0, resyncs=0,
                      reopens=0, t=t)  # fmt: skip


def test_list_shows_firmware_last_seen_and_quarantined_boards(
    mqtt_broker: Any, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = (mqtt_broker.host, mqtt_broker.port)
    site = f"inv{time.monotonic_ns()}"  # a site of its own on the session's broker
    topics = Topics(site=site)
    t = round(time.time() - 90, 3)
    messages: list[tuple[str, Payload]] = [
        (topics.topic("seat_health", seat="s101"), health("s101", "5EA70001", "1.4.2", t)),
        (topics.topic("seat_availability", seat="s101"),
         SeatAvailability(seat="s101", gateway="edge-1", status="online", why="heartbeat",
                          t=t - 30)),
        # s102's retained health is that of the board it had before: not shown as its own
        (topics.topic("seat_health", seat="s102"), health("s102", "5EA700FF", "0.9", t)),
        (topics.topic("seat_availability", seat="s102"),
         SeatAvailability(seat="s102", gateway="edge-2", status="online", why="heartbeat",
                          t=t - 10)),
        (topics.gateway_status("edge-1"),
         GatewayStatus(gateway="edge-1", status="online", version="0.1.0", t=t)),
        (topics.gateway_status("edge-2"),
         GatewayStatus(gateway="edge-2", status="offline", version="0.1.0")),
        (topics.topic("gateway_quarantine", gateway="edge-1"),
         Quarantine(gateway="edge-1", t=t, boards=[
             QuarantinedBoard(link="socket://127.0.0.1:7", board="5EA70009", firmware="1.4.2",
                              first_seen=t - 5, last_seen=t + 5),
             # bound since the gateway reported it: listed once, as bound
             QuarantinedBoard(link="socket://127.0.0.1:8", board="5EA70003", firmware="1.4.2",
                              first_seen=t, last_seen=t)])),
    ]  # fmt: skip
    publish(broker, [(topic, p.dump()) for topic, p in messages]
            + [(topics.topic("seat_health", seat="s103"), b'{"v": 9}')])  # fmt: skip
    # once as a separate process, as facilities staff run it
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "inventory", "-i", db, "list", "--broker",
         f"{broker[0]}:{broker[1]}", "--site", site, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"seatlink inventory list: ignored {topics.prefix}seat/s103/health: " \
                          "not a payload this seatlink reads\n"  # fmt: skip
    listed = {(r["seat"], r["board"]): r for r in json.loads(proc.stdout)}
    assert listed[("s101", "5EA70001")] == {
        "seat": "s101", "board": "5EA70001", "location": "Floor 2, row C, desk 14",
        "name": "Desk 1", "firmware": "1.4.2", "last_seen": t, "online": "online",
        "gateway": "edge-1"}  # fmt: skip
    s102 = listed[("s102", "5EA70002")]
    assert (s102["firmware"], s102["last_seen"], s102["online"]) == (
        None, t - 10, "offline (gateway)")
    s103 = listed[("s103", "5EA70003")]
    assert (s103["firmware"], s103["last_seen"], s103["online"]) == (None, None, None)
    assert listed[(None, "5EA70009")] == {
        "seat": None, "board": "5EA70009", "location": None,
        "name": "quarantined on edge-1 (socket://127.0.0.1:7)", "firmware": "1.4.2",
        "last_seen": t + 5, "online": "unbound", "gateway": "edge-1"}  # fmt: skip
    assert len(listed) == 4
    # the table: local times, "-" for what nobody reported
    status, out, _ = cli(capsys, "-i", db, "list", "--broker", f"{broker[0]}:{broker[1]}",
                         "--site", site)  # fmt: skip
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["seat", "board", "location", "name", "firmware", "last", "seen",
                                "online"]  # fmt: skip
    seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    assert lines[1].split() == ["s101", "5EA70001", "Floor", "2,", "row", "C,", "desk", "14",
                                "Desk", "1", "1.4.2", *seen.split(), "online"]  # fmt: skip
    assert lines[3].split() == ["s103", "5EA70003", "-", "-", "-", "-", "-"]
    assert lines[4].startswith("-     5EA70009") and lines[4].endswith("unbound")
    publish(broker, [(topic, b"") for topic, _ in messages])  # retained messages cleared


# --- every refusal: one line, exit status 2, nothing changed --------------------------------

BAD_ARGS = [
    (["list"], r"list: -i INVENTORY is required"),
    (["-i", "{db}"], r"the following arguments are required: ACTION"),
    (["-i", "{db}", "frob"], r"invalid choice: 'frob'"),
    (["-i", "{db}", "bind", "--seat", "s109"], r"the following arguments are required: --board"),
    (["-i", "{db}", "bind", "--seat", "s109", "--board", "5EA7000X"],
     r"bind: bind \(seat s109\): board '5EA7000X' is not 1-32 hex digits"),
    (["-i", "{db}", "bind", "--seat", "s 9", "--board", "5EA70009"],
     r"bind: bind: seat id 's 9' is not 1-64 characters"),
    (["-i", "{db}", "bind", "--seat", "s109", "--board", "5ea70001"],
     r"board 5EA70001 is bound already, to seat s101: unbind --seat s101 first"),
    (["-i", "{db}", "bind", "--seat", "s101", "--board", "5EA70009"],
     r"seat s101 is bound already, to board 5EA70001: unbind --seat s101 first"),
    (["-i", "{db}", "bind", "--seat", "s109", "--board", "5EA70009", "--location", "a\tb"],
     r"location 'a\\tb' holds a character that is not printable"),
    (["-i", "{db}", "unbind", "--seat", "s109"], r"seat s109 is not bound to any board"),
    (["-i", "{missing}", "unbind", "--seat", "s101"], r"cannot open the database"),
    (["-i", "{db}", "move", "--board", "5EA70009", "--seat", "s101"],
     r"board 5EA70009 is not bound to any seat: bind --seat s101 --board 5EA70009"),
    (["-i", "{db}", "move", "--board", "5EA70001", "--seat", "s101"],
     r"board 5EA70001 is at seat s101 already"),
    (["-i", "{db}", "move", "--board", "5EA70001", "--seat", "s102"],
     r"seat s102 has board 5EA70002: --swap to send it to seat s101, or --replace"),
    (["-i", "{db}", "move", "--board", "5EA70001", "--seat", "s102", "--swap", "--replace"],
     r"argument --replace: not allowed with argument --swap"),
    (["-i", "{missing}", "list"], r"cannot open the database"),
    (["-i", "inv.yaml", "list"], r"an inventory is a \.toml or \.json file"),
    (["-i", "{db}", "list", "--broker", "localhost:0"],
     r"--broker 'localhost:0' is not HOST:PORT"),
    (["-i", "{db}", "list", "--broker", "127.0.0.1:1"],  # nothing listens on port 1
     r"cannot read the broker at 127\.0\.0\.1:1"),
    (["-i", "{db}", "list", "--broker", "127.0.0.1:1", "--site", "a/b"],
     r"site id 'a/b' is not 1-64 characters"),
    (["-i", "{db}", "export", "--csv", "{tmp}/no/such/dir/out.csv"], r"No such file"),
    (["-i", "{db}", "import", "--csv", "{tmp}/none.csv"],
     r"none\.csv: cannot read the file: No such file"),
    (["-i", "{db}", "import", "--csv", "{tmp}/empty.csv"], r"empty\.csv: the file is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD_ARGS)
def test_each_refusal_is_one_line_with_status_2_and_changes_nothing(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str], argv: list[str],
    message: str,
) -> None:  # fmt: skip
    (tmp_path / "empty.csv").write_bytes(b"")
    names = {"db": db, "missing": f"sqlite:///{tmp_path / 'missing.db'}", "tmp": str(tmp_path)}
    argv = [a.format(**names) for a in argv]
    was, files = digest(tmp_path / "inv.db"), sorted(tmp_path.iterdir())
    status, out, err = cli(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("seatlink inventory"), err
    assert re.search(message, err), err
    assert digest(tmp_path / "inv.db") == was and sorted(tmp_path.iterdir()) == files


def test_a_refusal_from_a_separate_process(tmp_path: Path, db: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "inventory", "-i", db, "bind", "--seat", "s109",
         "--board", "nothex"], cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("seatlink inventory bind: bind (seat s109): board 'nothex' is not "
                           "1-32 hex digits\n")  # fmt: skip
