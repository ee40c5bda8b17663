"""The host's protocol tables, written out in gateway/seatlink/codec.py, against the numbers
in the firmware source (read with ast, never imported): a change on one side fails here."""

from __future__ import annotations

import builtins
import re
import symtable
from pathlib import Path

import pytest
from seatlink_support import FIRMWARE, ROOT, firmware_constants

from gateway.seatlink.codec import (
    FIELDS_MAX,
    LINE_MAX,
    QUEUE_SIZE,
    SEAT_LINE_MAX,
    SETTINGS,
    EventCode,
    Kind,
    Reason,
    SettingKey,
    State,
    Why,
)
from gateway.seatlink.messages import EXIT_MAGIC

CFG = firmware_constants("cfg")
SEAT = firmware_constants("seat")


def test_settings_match_cfg() -> None:
    defaults, lows, highs = CFG["V"], CFG["LO"], CFG["HI"]
    assert len(defaults) == len(lows) == len(highs) == len(SettingKey) + 1  # slot 0 unused
    for key in SettingKey:
        assert CFG[key.name] == key.value, key.name  # same name, same key number
        spec = SETTINGS[key]
        assert (spec.default, spec.minimum, spec.maximum) == (
            defaults[key],
            lows[key],
            highs[key],
        ), key.name


def test_settings_table_is_consistent() -> None:
    assert list(SETTINGS) == list(SettingKey)
    for key, spec in SETTINGS.items():
        assert spec.key == key and spec.name.startswith(key.name.lower().split("_")[0])
        assert spec.minimum <= spec.default <= spec.maximum
        assert key.accepts(spec.default) and not key.accepts(spec.maximum + 1)
        assert spec.source and spec.meaning and spec.unit


def test_settings_match_seat_md() -> None:
    # docs/seat.md, Settings: | key | name (words) | default | lo–hi | source |
    text = (ROOT / "docs" / "seat.md").read_text(encoding="utf-8")
    table = text[text.index("## Settings") :]
    rows = re.findall(r"^\| (\d+) \| (\w+)[^|]* \| (\d+) \| (\d+)–(\d+) \|", table, re.M)
    documented = {int(k): (name, int(d), int(lo), int(hi)) for k, name, d, lo, hi in rows}
    assert documented == {
        k.value: (s.name, s.default, s.minimum, s.maximum) for k, s in SETTINGS.items()
    }


def test_cfg_names_every_key() -> None:
    keys = {name: v for name, v in CFG.items() if isinstance(v, int) and name.isupper()}
    assert keys == {k.name: k.value for k in SettingKey}


def test_states_reasons_events_why_match_seat() -> None:
    states = ("OUT", "READY", "NR", "RING", "TALK", "HOLD", "ACW")
    assert [SEAT[n] for n in states] == [s.value for s in State]
    assert [SEAT[n] for n in ("NOANS", "AWAY", "WRAP", "SUP")] == [
        Reason.NO_ANSWER,
        Reason.AWAY,
        Reason.WRAP,
        Reason.SUPERVISOR,
    ]
    events = ("STATE", "ANSWER", "RONA", "RELEASE", "HOLDMAX", "HELP", "PEND", "HOOK", "REFUSED")
    assert [SEAT[n] for n in events] == [e.value for e in EventCode]
    assert [SEAT[n] for n in ("BTN", "HK", "TMR", "HOST", "KEY", "AUTO")] == [w.value for w in Why]


def test_kind_letters_match_the_firmware() -> None:
    tx, rx, host = (firmware_constants(m) for m in ("tx", "rx", "host"))
    letters = {
        Kind.EVENT: tx["EVENT"],
        Kind.REJECT: tx["REJECT"],
        Kind.SNAPSHOT: tx["SNAP"],
        Kind.HELLO: tx["HELLO"],
        Kind.ACK: tx["ACKF"],
        Kind.HEARTBEAT: tx["BEAT"],
        Kind.PING: rx["PING"],
        Kind.SYNC: rx["SYNC"],
        Kind.EXIT: rx["EXIT"],
        Kind.OFFER: host["OFFER"],
        Kind.CANCEL: host["CANCEL"],
        Kind.CONNECTED: host["CONNECTED"],
        Kind.HOLD: host["HOLDCMD"],
        Kind.RELEASED: host["RELEASED"],
        Kind.SET_STATE: host["SETSTATE"],
        Kind.SETTINGS: host["SETTINGS"],
        Kind.HELP: host["HELPCMD"],
        Kind.MESSAGE: host["MESSAGE"],
        Kind.AGENT: host["AGENT"],
    }
    assert rx["ACK"] == tx["ACKF"]
    assert {k: chr(v) for k, v in letters.items()} == {k: k.value for k in letters}
    assert set(letters) == set(Kind)


def test_limits_match_the_firmware() -> None:
    tx, rx, frame = (firmware_constants(m) for m in ("tx", "rx", "frame"))
    assert tx["SIZE"] == QUEUE_SIZE
    assert rx["RB"] == ("buffer", SEAT_LINE_MAX)
    assert frame["F"] == ("buffer", FIELDS_MAX + 1)  # the sequence number, then the fields
    assert tx["TB"][1] - 1 <= LINE_MAX  # the seat's longest frame still decodes on the host
    assert rx["MAGIC"] == EXIT_MAGIC


def _undefined_globals(path: Path) -> set[str]:
    """Global names a module reads that nothing in it binds (nor the builtins)."""
    top = symtable.symtable(path.read_text(encoding="ascii"), path.name, "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    bound |= {t.get_name() for t in top.get_children()}  # def names
    used: set[str] = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    tables = list(top.get_children())
    while tables:
        table = tables.pop()
        tables += table.get_children()
        used |= {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
        bound |= {s.get_name() for s in table.get_symbols() if s.is_declared_global()}
    return used - bound - set(dir(builtins))


@pytest.mark.parametrize("module", sorted(p.stem for p in FIRMWARE.glob("*.py")))
def test_firmware_source_names_resolve(module: str) -> None:
    # The source must run as it is under CPython (virtual seats), not only once bundled.
    assert _undefined_globals(FIRMWARE / f"{module}.py") == set()
