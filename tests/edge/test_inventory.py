"""gateway.edge.inventory: boards bound to seats, from real files and a real SQLite database."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from gateway.edge.inventory import (
    Inventory,
    InventoryDb,
    InventoryError,
    InventoryWatcher,
    SeatBinding,
    load_inventory,
)
from gateway.seatlink.codec import SettingKey

TOML = """\
[defaults]  # pushed to every seat
acw_s = 30
ring_limit = 3

[[seat]]
seat = "s101"
board = "5ea70001"  # any case in the file
name = "Row 1 desk 1"
settings = { ring_limit = 4 }

[[seat]]
seat = "s102"
board = "5EA70002"

[seat.settings]
idle_logout_s = 0
"""

DOC = {
    "defaults": {"acw_s": 30, "ring_limit": 3},
    "seat": [
        {"seat": "s101", "board": "5ea70001", "name": "Row 1 desk 1",
         "settings": {"ring_limit": 4}},
        {"seat": "s102", "board": "5EA70002", "settings": {"idle_logout_s": 0}},
    ],
}  # fmt: skip

EXPECTED = {
    SeatBinding("5EA70001", "s101", "Row 1 desk 1",
                {SettingKey.RING_LIMIT: 4, SettingKey.ACW_S: 30}),
    SeatBinding("5EA70002", "s102", None,
                {SettingKey.RING_LIMIT: 3, SettingKey.ACW_S: 30, SettingKey.IDLE_S: 0}),
}  # fmt: skip


def seat(board: str, seat: str = "s101", **extra: str) -> str:
    lines = ["[[seat]]", f'seat = "{seat}"', f'board = "{board}"']
    return "\n".join(lines + [f"{k} = {v}" for k, v in extra.items()]) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- loading --------------------------------------------------------------------------------


def test_toml_json_and_sqlite_load_the_same_bindings(tmp_path: Path) -> None:
    toml = load_inventory(write(tmp_path / "inv.toml", TOML))
    as_json = load_inventory(str(write(tmp_path / "inv.JSON", json.dumps(DOC))))
    url = f"sqlite:///{tmp_path / 'inv.db'}"  # four slashes: an absolute path
    with InventoryDb(url) as db:
        db.provision("5ea70001", "s101", name="Row 1 desk 1", settings={"ring_limit": 4})
        db.provision("5EA70002", "s102", settings={"idle_logout_s": 0})
    with sqlite3.connect(tmp_path / "inv.db") as raw:
        raw.executemany("INSERT INTO defaults VALUES (?, ?)", [("acw_s", 30), ("ring_limit", 3)])
    raw.close()
    from_db = load_inventory(url)
    for inventory in (toml, as_json, from_db):
        assert set(inventory.seats) == EXPECTED
        assert inventory.same_bindings(toml)
    assert [b.seat for b in toml.seats] == ["s101", "s102"]  # file order
    assert toml.source == str(tmp_path / "inv.toml") and from_db.source == url


def test_uids_are_case_insensitive_and_seats_found_by_id(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path / "inv.toml", TOML))
    binding = inventory.by_board("5ea70001")
    assert binding is not None and binding.board == "5EA70001" and binding.seat == "s101"
    assert inventory.by_board("5EA70001") is binding is inventory.by_seat("s101")
    assert inventory.by_board("5EA70003") is None and inventory.by_seat("S101") is None


def test_defaults_are_merged_under_each_seats_own_settings(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path / "inv.toml", TOML))
    s101, s102 = (inventory.by_seat(s) for s in ("s101", "s102"))
    assert s101 is not None and s102 is not None
    assert dict(s101.settings) == {SettingKey.RING_LIMIT: 4, SettingKey.ACW_S: 30}
    assert s102.settings[SettingKey.RING_LIMIT] == 3 and s102.settings[SettingKey.IDLE_S] == 0
    # a setting the inventory does not name is left to the seat's own default
    assert SettingKey.HOLD_LIMIT_S not in s101.settings
    with pytest.raises(TypeError):
        s101.settings[SettingKey.ACW_S] = 1  # type: ignore[index]


@pytest.mark.parametrize("text", ["", "# nobody provisioned yet\n", "seat = []\n"])
def test_an_empty_inventory_quarantines_everything(tmp_path: Path, text: str) -> None:
    for path, doc in [(tmp_path / "e.toml", text), (tmp_path / "e.json", "{}")]:
        if not doc:
            continue  # zero bytes: see test_a_zero_byte_file_is_refused
        inventory = load_inventory(write(path, doc))
        assert inventory.seats == () and inventory.by_board("5EA70001") is None


def test_a_zero_byte_file_is_refused(tmp_path: Path) -> None:
    # what a reader sees while an editor truncates the file to rewrite it
    with pytest.raises(InventoryError, match=r"e\.toml: the file is empty"):
        load_inventory(write(tmp_path / "e.toml", ""))


# --- validation -----------------------------------------------------------------------------

BAD_TOML = [
    (seat("5EA70001") + seat("5ea70001", "s102"),
     r"seat #2 \(seat s102\): board 5EA70001 is bound already \(.*seat #1 \(seat s101\)\)"),
    (seat("5EA70001") + seat("5EA70002"),
     r"seat #2 \(seat s101\): seat s101 is bound already \(.*seat #1"),
    (seat("5EA70001", "s 101"), r"seat #1: seat id 's 101' is not 1-64 characters"),
    (seat("5EA70001", "s" * 65), r"seat #1: seat id 's{65}' is not 1-64"),
    ('[[seat]]\nboard = "5EA70001"\n', r"seat #1: seat \(the seat id\) is missing"),
    ('[[seat]]\nseat = "s101"\n', r"seat #1 \(seat s101\): board \(the board's uid\) is missing"),
    (seat("5EA7000G"), r"seat #1 \(seat s101\): board '5EA7000G' is not 1-32 hex digits"),
    (seat("5" * 33), r"seat #1 \(seat s101\): board '5{33}' is not 1-32 hex digits"),
    (seat(""), r"seat #1 \(seat s101\): board '' is not 1-32 hex digits"),
    ('[[seat]]\nseat = "s101"\nboard = 12345678\n',
     r"seat #1 \(seat s101\): board 12345678 must be a string .*quotes"),
    ('[[seat]]\nseat = 101\nboard = "1"\n', r"seat #1: seat 101 must be a string"),
    (seat("1", name="5"), r"seat #1 \(seat s101\): name 5 must be a string"),
    (seat("1", settings="{ ring_limt = 4 }"),
     r"seat #1 \(seat s101\) settings\.ring_limt: unknown setting 'ring_limt' \(known: "
     r"ring_limit, ring_ms"),
    ("[defaults]\nidle_s = 0\n",
     r"defaults\.idle_s: unknown setting 'idle_s' \(did you mean 'idle_logout_s'\?\)"),
    ("[defaults]\nacw_s = 601\n", r"defaults\.acw_s: 601 is out of range 0\.\.600"),
    (seat("1", settings="{ ring_limit = 11 }"),
     r"seat #1 \(seat s101\) settings\.ring_limit: 11 is out of range 1\.\.10"),
    ('[defaults]\nacw_s = "30"\n', r"defaults\.acw_s: '30' is not a whole number"),
    ("[defaults]\nacw_stay_nr = true\n", r"defaults\.acw_stay_nr: True is not a whole number"),
    ("[defaults]\nacw_s = 30.0\n", r"defaults\.acw_s: 30\.0 is not a whole number"),
    ("defaults = 30\n", r"defaults must be a table of setting = value, not 30"),
    (seat("1", settings="4"), r"seat #1 \(seat s101\) settings must be a table"),
    ("[default]\nacw_s = 30\n", r"unknown top-level key 'default' \(the keys are defaults, seat"),
    (seat("1", nmae='"x"'), r"seat #1: unknown key 'nmae' \(the keys are seat, board, name"),
    ('[seat]\nseat = "s101"\n', r"seat must be a list of entries \(\[\[seat\]\] in TOML\)"),
    ('seat = ["s101"]\n', r"seat #1 must be a table"),
    ('[[seat]]\nseat = "s101\n', r"not valid TOML: .*line 2"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_TOML)
def test_each_mistake_is_refused_naming_the_culprit(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "inv.toml", text)
    with pytest.raises(InventoryError, match=rf"^{path}: {message}"):
        load_inventory(path)


BAD_JSON = [
    ('{"seat": [], "seat": []}', r"not valid JSON: key 'seat' given twice"),
    ('[{"seat": "s101"}]', r"the top level must be an object"),
    ('{"defaults": {"acw_s": 30.0}}', r"defaults\.acw_s: 30\.0 is not a whole number"),
    ('{"seat": [{"seat": "s101", "board": "1",}]}', r"not valid JSON: .*line 1"),
    ('{"seat": {"seat": "s101"}}', r"seat must be a list of entries"),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSON)
def test_json_mistakes_are_refused_too(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "inv.json", text)
    with pytest.raises(InventoryError, match=rf"^{path}: {message}"):
        load_inventory(path)


def test_sources_that_cannot_be_read_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"gone\.toml: cannot read the file: No such file"):
        load_inventory(tmp_path / "gone.toml")
    with pytest.raises(InventoryError, match=r"inv\.yaml: an inventory is a \.toml or \.json"):
        load_inventory(write(tmp_path / "inv.yaml", "seat: []\n"))
    (tmp_path / "latin1.toml").write_bytes(b'[[seat]]\nname = "caf\xe9"\n')
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(tmp_path / "latin1.toml")
    for url in ("sqlite://inv.db", "sqlite:///", "sqlite:///:memory:"):
        with pytest.raises(InventoryError, match=r"a database is sqlite:///relative/path\.db"):
            load_inventory(url)
    # the gateway must not create an empty inventory at a mistyped path
    with pytest.raises(InventoryError, match="cannot open the database"):
        load_inventory(f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()
    write(tmp_path / "not.db", "not a database, just long enough to have a header" * 4)
    with pytest.raises(InventoryError, match=r"not\.db: cannot use the database: .*not a database"):
        load_inventory(f"sqlite:///{tmp_path / 'not.db'}")


# --- SQLite ---------------------------------------------------------------------------------


def test_a_relative_database_url_and_tables_created_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sqlite3.connect("inv.db").close()  # an empty database, as `sqlite3 inv.db` leaves it
    assert load_inventory("sqlite:///inv.db").seats == ()
    with sqlite3.connect("inv.db") as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert {"boards", "defaults"} <= tables


def test_provisioning_refuses_duplicates_and_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    with InventoryDb(url) as db:
        db.provision("5ea70001", "s101", name="Row 1 desk 1")
        with pytest.raises(InventoryError, match=r"board 5EA70001 is bound already, to seat "
                                                 r"s101; retire it first"):  # fmt: skip
            db.provision("5EA70001", "s102")
        with pytest.raises(InventoryError, match=r"seat s101 is bound already, to board "
                                                 r"5EA70001; retire that board first"):  # fmt: skip
            db.provision("5EA70002", "s101")
        with pytest.raises(InventoryError, match=r"settings\.ring_limit: 0 is out of range"):
            db.provision("5EA70002", "s102", settings={"ring_limit": 0})
        with pytest.raises(InventoryError, match=r"board 'xyz' is not 1-32 hex digits"):
            db.provision("xyz", "s102")
        with pytest.raises(InventoryError, match=r"seat id 's/102' is not"):
            db.provision("5EA70002", "s/102")
        with pytest.raises(InventoryError, match=r"retire: board 5EA70002 is not bound"):
            db.retire("5ea70002")
        assert [(b.board, b.seat) for b in db.load().seats] == [("5EA70001", "s101")]
        db.retire("5ea70001")
        assert db.load().seats == ()
        db.provision("5EA70001", "s102")  # free again, board and seat alike


BAD_ROWS = [
    ("INSERT INTO boards VALUES ('5EA70001', 's101', NULL, '{\"ring_limit\": 4')",
     r"boards row '5EA70001': settings is not valid JSON"),
    ("INSERT INTO boards VALUES ('5EA70001', 's101', NULL, '[4]')",
     r"boards row '5EA70001' \(seat s101\) settings must be a table"),
    ("INSERT INTO boards VALUES ('5EA70001', 's101', NULL, '{\"ring_limit\": 4.5}')",
     r"boards row '5EA70001' \(seat s101\) settings\.ring_limit: 4\.5 is not a whole"),
    ("INSERT INTO boards VALUES ('5ea70009', 's109', NULL, NULL)",
     r"boards row '5ea70009' \(seat s109\): board 5EA70009 is bound already "
     r"\(.*boards row '5EA70009'"),
    ("INSERT INTO boards VALUES ('5EA7000X', 's101', NULL, NULL)",
     r"boards row '5EA7000X' \(seat s101\): board '5EA7000X' is not 1-32 hex digits"),
    ("INSERT INTO boards VALUES ('5EA70001', 's 1', NULL, NULL)",
     r"boards row '5EA70001': seat id 's 1' is not"),
    ("INSERT INTO defaults VALUES ('acw', 30)", r"defaults row 'acw': unknown setting 'acw'"),
    ("INSERT INTO defaults VALUES ('acw_s', NULL)",
     r"defaults row 'acw_s': None is not a whole number"),
    ("INSERT INTO defaults VALUES ('acw_s', 9999)",
     r"defaults row 'acw_s': 9999 is out of range 0\.\.600"),
]  # fmt: skip


@pytest.mark.parametrize(("statement", "message"), BAD_ROWS)
def test_rows_typed_in_by_hand_are_checked_like_a_file(
    tmp_path: Path, statement: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    with InventoryDb(url) as db:
        db.provision("5EA70009", "s100")
    with sqlite3.connect(tmp_path / "inv.db") as raw:
        raw.execute(statement)
    raw.close()
    with pytest.raises(InventoryError, match=rf"^{url}: {message}"):
        load_inventory(url)


# --- watching a file ------------------------------------------------------------------------


def test_the_watcher_sees_an_edit_of_the_same_size_and_time(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.toml", seat("5EA70001"))
    with InventoryWatcher(path) as watcher:
        assert watcher.source == str(path)
        assert not watcher.check()  # nothing changed
        before = path.stat()
        write(path, seat("5EA70002"))
        # as if written within the filesystem's clock tick: the stat tells nothing
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_size == before.st_size
        assert watcher.check()
        assert watcher.inventory.by_board("5EA70002") is not None
        assert watcher.inventory.by_board("5EA70001") is None
        assert not watcher.check()


def test_a_broken_edit_keeps_the_inventory_until_it_is_fixed(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.toml", seat("5EA70001"))
    with InventoryWatcher(path) as watcher:
        good = watcher.inventory
        write(path, seat("5EA70001") + seat("5EA70002", "s102", settings="{ acw_s = -1 }"))
        assert not watcher.check()
        assert watcher.inventory is good and watcher.inventory.by_board("5EA70001")
        assert watcher.error is not None and watcher.errors == 1
        assert "seat #2 (seat s102) settings.acw_s: -1 is out of range" in watcher.error
        assert not watcher.check() and watcher.errors == 1  # the same bad edit, counted once
        write(path, seat("5EA70001") + "[[seat\n")  # another bad edit
        assert not watcher.check()
        assert watcher.errors == 2 and "not valid TOML" in (watcher.error or "")
        write(path, seat("5EA70001") + seat("5EA70002", "s102", settings="{ acw_s = 0 }"))
        assert watcher.check()
        assert watcher.error is None and watcher.errors == 2
        binding = watcher.inventory.by_seat("s102")
        assert binding is not None and binding.settings == {SettingKey.ACW_S: 0}


def test_a_file_that_goes_away_is_kept_like_a_bad_edit(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.toml", seat("5EA70001"))
    with InventoryWatcher(path) as watcher:
        good = watcher.inventory
        path.unlink()
        assert not watcher.check() and not watcher.check()
        assert watcher.inventory is good and watcher.errors == 1
        assert "cannot read the file" in (watcher.error or "")
        write(path, seat("5EA70001"))  # back as it was: nothing to redo
        assert not watcher.check()
        assert watcher.error is None and watcher.inventory.by_board("5EA70001")
        # saved the safe way: written aside, then renamed over it
        write(tmp_path / "inv.toml.new", seat("5EA70001") + seat("5EA70002", "s102"))
        os.replace(tmp_path / "inv.toml.new", path)
        assert watcher.check() and len(watcher.inventory.seats) == 2


def test_only_a_change_of_bindings_counts_as_a_change(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.toml", seat("5EA70001") + seat("5EA70002", "s102"))
    with InventoryWatcher(path) as watcher:
        write(path, "# reordered\n" + seat("5EA70002", "s102") + seat("5EA70001"))
        assert not watcher.check()
        assert [b.seat for b in watcher.inventory.seats] == ["s102", "s101"]
        write(path, "[defaults]\nacw_s = 10\n" + seat("5EA70001") + seat("5EA70002", "s102"))
        assert watcher.check()  # every seat gets a new setting to push


def test_a_watcher_starts_only_on_a_good_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="No such file"):
        InventoryWatcher(tmp_path / "inv.toml")
    with pytest.raises(InventoryError, match="not valid TOML"):
        InventoryWatcher(write(tmp_path / "inv.toml", "[[seat"))
    with pytest.raises(InventoryError, match="cannot open the database: no such file"):
        InventoryWatcher(f"sqlite:///{tmp_path / 'inv.db'}")


# --- watching the database ------------------------------------------------------------------


def test_provisioning_through_the_database_is_seen_by_the_watcher(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    with InventoryDb(url) as db, InventoryWatcher(url) as watcher:
        assert watcher.inventory.seats == () and not watcher.check()
        db.provision("5ea70001", "s101", settings={"ring_limit": 4})
        assert watcher.check()
        binding = watcher.inventory.by_board("5EA70001")
        assert binding is not None and binding.seat == "s101"
        assert not watcher.check()
        with sqlite3.connect(tmp_path / "inv.db") as raw:  # a bad edit by hand
            raw.execute("INSERT INTO defaults VALUES ('ring_limit', 0)")
        assert not watcher.check() and not watcher.check()
        assert watcher.errors == 1 and "defaults row 'ring_limit'" in (watcher.error or "")
        assert watcher.inventory.by_board("5EA70001") is binding
        with raw:
            raw.execute("UPDATE defaults SET value = 3 WHERE name = 'ring_limit'")
        raw.close()
        assert not watcher.check()  # the seat's own ring_limit wins: no binding changed
        assert watcher.error is None
        db.retire("5EA70001")
        assert watcher.check() and watcher.inventory.by_board("5EA70001") is None


def test_a_database_that_goes_away_or_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "inv.db"
    url = f"sqlite:///{path}"
    with InventoryDb(url) as db:
        db.provision("5EA70001", "s101")
    with InventoryWatcher(url) as watcher:
        path.unlink()
        assert not watcher.check() and not watcher.check()
        assert watcher.errors == 1 and "the database is gone" in (watcher.error or "")
        assert watcher.inventory.by_seat("s101") is not None
        write(path, "garbage, not a database" * 10)
        assert not watcher.check() and not watcher.check()
        assert watcher.errors == 2 and "not a database" in (watcher.error or "")
        path.unlink()
        with InventoryDb(tmp_path / "new.db") as db:
            db.provision("5EA70002", "s101")
        os.replace(tmp_path / "new.db", path)
        assert watcher.check()
        assert watcher.error is None and watcher.inventory.by_board("5EA70002") is not None


def test_an_inventory_refuses_a_board_or_seat_bound_twice() -> None:
    a = SeatBinding("5EA70001", "s101", None, {})
    with pytest.raises(InventoryError, match="bound twice"):
        Inventory("test", [a, SeatBinding("5EA70001", "s102", None, {})])
    assert repr(Inventory("test", [a])) == "Inventory('test', 1 seats)"


def test_a_commit_read_while_the_database_is_locked_is_read_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    with InventoryDb(url) as db, InventoryWatcher(url) as watcher:
        db.provision("5EA70001", "s101")
        blocker = sqlite3.connect(tmp_path / "inv.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # a writer that holds on past the busy timeout
        assert not watcher.check()
        assert watcher.errors == 1 and "locked" in (watcher.error or "")
        blocker.execute("ROLLBACK")  # changes nothing: no new data_version to see
        blocker.close()
        assert watcher.check() and watcher.inventory.by_board("5EA70001") is not None
