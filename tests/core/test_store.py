"""The core's event store (gateway/core/store.py), on SQLite and on PostgreSQL alike: every
test that takes `store_url` runs on both (tests/core/conftest.py)."""

from __future__ import annotations

import inspect
import json
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.contract.payloads import (
    CallEvent,
    GatewayStatus,
    SeatEvent,
    SeatState,
    TransferTarget,
)
from gateway.contract.topics import Topics
from gateway.core import store as store_module
from gateway.core.store import (
    LATEST_VERSION,
    MIGRATIONS,
    PAYLOAD_LIMIT,
    RAW_LIMIT,
    EventStore,
    Reject,
    StoreError,
    open_store,
)
from tests.databases import empty_database

NOW = 1_795_430_600.0  # the store's clock in these tests
SITE = Topics(site="hq")
ANSWERED = {"event": "answered", "state": "talking", "reason": None, "call": 40213, "a": 6200,
            "b": 0}  # fmt: skip

Message = tuple[str, bytes]


def seat_msg(seat: str = "s101", *, board: str = "5EA70001", boot: int = 7, seq: int = 1,
             t: float = NOW - 60, type: str = "event",
             data: dict[str, Any] | None = None) -> Message:  # fmt: skip
    event = SeatEvent(id=f"{board}-{boot}-{seq}", seat=seat, gateway="gw1", board=board,
                      boot=boot, seq=seq, t=t, type=type,  # type: ignore[arg-type]
                      data=ANSWERED if data is None else data)  # fmt: skip
    return SITE.seat_event(seat), event.dump()


def call_msg(call: int = 40213, step: int = 1, type: str = "enter_queue", *,
             t: float = NOW - 60, seat: str | None = None, pbx: str = "pbx-1",
             **fields: Any) -> Message:  # fmt: skip
    event = CallEvent(id=f"{pbx}-{call}-{step}", pbx=pbx, call=call, step=step,
                      type=type, t=t, direction="inbound", queue="support",  # type: ignore[arg-type]
                      seat=seat, number="***4567", arrived=NOW - 120, **fields)  # fmt: skip
    return SITE.topic("call_event", call=str(call)), event.dump()


def edit(message: Message, *, drop: Sequence[str] = (), topic: str | None = None,
         **changes: Any) -> Message:  # fmt: skip
    """The message with fields of its payload changed or dropped (no validation)."""
    obj = json.loads(message[1])
    obj.update(changes)
    for name in drop:
        del obj[name]
    return topic or message[0], json.dumps(obj).encode()


def opened(url: str, **kwargs: Any) -> EventStore:
    kwargs.setdefault("topics", SITE)
    kwargs.setdefault("clock", lambda: NOW)
    return open_store(url, **kwargs)


def sql(url: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement on the store's database behind the store's back (`?` placeholders)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description is not None else []
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        return db.execute(statement, params).fetchall()
    finally:
        db.close()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, in a fixed order."""
    return {
        "schema_version": sql(url, "SELECT * FROM schema_version ORDER BY version"),
        "event": sql(url, "SELECT * FROM event ORDER BY id"),
        "rejected": sql(url, "SELECT * FROM rejected ORDER BY digest"),
        "alert": sql(url, "SELECT * FROM alert ORDER BY id"),
        "alert_action": sql(url, "SELECT * FROM alert_action ORDER BY alert, action"),
        "sign_in": sql(url, "SELECT id, seat, agent, t, received, payload FROM sign_in "
                            "ORDER BY id"),
    }


# --- schema and opening ----------------------------------------------------------------------


def test_migrations_are_numbered_from_one_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == MIGRATIONS[-1].version
    for m in MIGRATIONS:
        assert m.summary and m.statements("sqlite") and m.statements("postgresql")


def test_an_empty_database_is_migrated_to_the_latest_version(store_url: str) -> None:
    with opened(store_url) as store:
        assert store.schema_version() == LATEST_VERSION
        assert list(store.events()) == []
        assert store.counts()["db"] == {"events": 0, "seat_events": 0, "call_events": 0,
                                        "sign_ins": 0, "rejected": {},
                                        "rejected_total": 0}  # fmt: skip
    rows = sql(store_url, "SELECT version, summary FROM schema_version ORDER BY version")
    assert rows == [(m.version, m.summary) for m in MIGRATIONS]


def test_reopening_changes_nothing(store_url: str) -> None:
    with opened(store_url) as store:
        store.ingest([seat_msg(seq=1), call_msg(), ("nowhere", b"junk")])
    before = dump(store_url)
    for _ in range(2):
        with opened(store_url) as store:
            assert store.migrate() == []
            assert store.schema_version() == LATEST_VERSION
    assert dump(store_url) == before


def test_a_newer_schema_is_refused_untouched(store_url: str) -> None:
    with opened(store_url) as store:
        store.ingest([seat_msg()])
    sql(store_url, "INSERT INTO schema_version VALUES (?, ?, ?)",
        (LATEST_VERSION + 1, "from a newer seatlink", NOW))  # fmt: skip
    before = dump(store_url)
    with pytest.raises(StoreError, match=rf"schema version {LATEST_VERSION + 1} is newer than "
                       rf"this code knows \({LATEST_VERSION}\).*nothing was changed"):  # fmt: skip
        opened(store_url)
    assert dump(store_url) == before


def test_a_database_that_is_no_event_store_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "outbox.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not an event store of seatlink.*events"):
        open_store(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is no database" * 100)
    with pytest.raises(StoreError, match="garbage.db"):
        open_store(garbage)
    assert garbage.read_bytes() == b"this is no database" * 100


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown store URL scheme 'mysql'"):
        open_store("mysql://root@localhost/core")
    with pytest.raises(ValueError, match="sqlite:///relative/path.db"):
        open_store("sqlite://core.db")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "no" / "such" / "dir" / "core.db")
    open_store(tmp_path / "plain.db").close()  # a plain path
    assert (tmp_path / "plain.db").is_file()
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///relative.db").close()  # three slashes: relative, as in SQLAlchemy
    assert (tmp_path / "relative.db").is_file()
    open_store(f"sqlite:///{tmp_path}/absolute.db").close()  # four: absolute
    assert (tmp_path / "absolute.db").is_file()
    with open_store("sqlite:///:memory:", topics=SITE) as store:
        assert store.ingest([seat_msg(t=time.time())]).stored == 1


def test_an_unreachable_postgresql_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect") as caught:
        open_store("postgresql://core:s3cret@127.0.0.1:1/core")
    assert "s3cret" not in str(caught.value)
    assert "core:***@127.0.0.1:1" in str(caught.value)


# --- ingest ----------------------------------------------------------------------------------


def test_seat_and_call_events_are_stored_as_received(store_url: str) -> None:
    booted = {"protocol": 1, "firmware": "1.4.0", "board_name": "microbit"}
    hello = seat_msg(seq=1, t=NOW - 70, type="hello", data=booted)
    snapshot = seat_msg(seq=2, t=NOW - 69, type="snapshot", data={"state": "ready"})
    answered = seat_msg(seq=3, t=NOW - 50)
    reject = seat_msg(seq=4, t=NOW - 40, type="reject",
                      data={"command_seq": 9, "error": "wrong_state", "field": 0,
                            "command_id": "wallboard-3f2a"})  # fmt: skip
    # the same JSON spelt with other spacing is stored exactly as it came
    spaced = (answered[0], json.dumps(json.loads(answered[1]), indent=1).encode())
    queued = call_msg(step=1, t=NOW - 65)
    offered = call_msg(step=2, type="offer", t=NOW - 58, seat="s101", wait_s=7.0)
    answer = call_msg(step=3, type="answer", t=NOW - 50, seat="s101", wait_s=15.0, ring_s=8.0,
                      rings=2)  # fmt: skip
    transfer = call_msg(step=4, type="transfer", t=NOW - 45, seat="s101",
                        target=TransferTarget(kind="blind", queue="sales"))  # fmt: skip
    batch = [hello, snapshot, spaced, reject, queued, offered, answer, transfer]
    with opened(store_url) as store:
        result = store.ingest(batch)
        assert (result.stored, result.duplicates, result.not_events, result.rejected) == \
            (8, 0, 0, {})  # fmt: skip
        assert [e.payload.encode() for e in result.new] == [p for _, p in batch]
        stored = {e.id: e for e in store.events()}
    assert stored["5EA70001-7-1"].type == "hello"
    assert stored["5EA70001-7-2"].type == "snapshot"
    assert stored["5EA70001-7-4"].type == "reject"
    event = stored["5EA70001-7-3"]
    assert (event.kind, event.seat, event.call, event.seq, event.type, event.t, event.received) \
        == ("seat", "s101", None, 3, "event:answered", NOW - 50, NOW)  # fmt: skip
    assert event.payload == spaced[1].decode()
    assert event.model() == SeatEvent.model_validate_json(answered[1])
    step = stored["pbx-1-40213-3"]
    assert (step.kind, step.seat, step.call, step.seq, step.type, step.t) == \
        ("call", "s101", 40213, 3, "answer", NOW - 50)  # fmt: skip
    assert step.payload.encode() == answer[1]
    assert stored["pbx-1-40213-4"].model() == CallEvent.model_validate_json(transfer[1])
    assert stored["pbx-1-40213-1"].seat is None


def test_duplicates_are_counted_and_stored_once(store_url: str) -> None:
    a, b = seat_msg(seq=1), seat_msg(seq=2)
    respaced_b = (b[0], json.dumps(json.loads(b[1]), indent=2).encode())  # same id, same content
    with opened(store_url) as store:
        first = store.ingest([a, b, a])
        assert (first.stored, first.duplicates) == (2, 1)
        again = store.ingest([a, respaced_b])
        assert (again.stored, again.duplicates, again.rejected) == (0, 2, {})
        assert store.counts()["session"] == {"stored": 2, "duplicates": 3, "not_events": 0,
                                             "rejected": {}, "rejected_total": 0}  # fmt: skip
    with opened(store_url) as store:  # across a reopen: the database remembers
        later = store.ingest([b, call_msg(), call_msg()])
        assert (later.stored, later.duplicates) == (1, 2)
        counts = store.counts()
    assert counts["session"]["stored"] == 1 and counts["session"]["duplicates"] == 2
    assert counts["db"]["events"] == 3
    assert counts["db"]["seat_events"] == 2 and counts["db"]["call_events"] == 1
    assert sql(store_url, "SELECT count(*) FROM event") == [(3,)]
    (stored_b,) = sql(store_url, "SELECT payload FROM event WHERE id = '5EA70001-7-2'")
    assert stored_b[0] == b[1].decode()  # the first one received stays


def test_the_same_id_with_other_content_is_a_conflict(store_url: str) -> None:
    original = seat_msg(seq=1, t=NOW - 60)
    impostor = seat_msg(seq=1, t=NOW - 30)  # e.g. a board's sequence that wrapped round
    with opened(store_url) as store:
        store.ingest([original])
        result = store.ingest([impostor, call_msg(step=1), call_msg(step=1, t=NOW - 10)])
        assert (result.stored, result.rejected) == (1, {"id_conflict": 2})
        assert [e.t for e in store.events(kind="seat")] == [NOW - 60]
        assert [e.t for e in store.events(kind="call")] == [NOW - 60]
        rows = store.rejected()
    assert {(r["reason"], r["event_id"]) for r in rows} == \
        {("id_conflict", "5EA70001-7-1"), ("id_conflict", "pbx-1-40213-1")}  # fmt: skip


def _bad_messages() -> list[tuple[str, Message, Reject]]:
    good = seat_msg(seq=20)
    topic = good[0]
    return [
        ("another site", edit(good, topic="seatlink/v1/elsewhere/seat/s101/event"),
         Reject.UNKNOWN_TOPIC),
        ("no contract topic", edit(good, topic="seatlink/v1/hq/seat/s101/nonsense"),
         Reject.UNKNOWN_TOPIC),
        ("too large", (topic, b'{"v": 1, "pad": "' + b"x" * PAYLOAD_LIMIT + b'"}'),
         Reject.TOO_LARGE),
        ("not JSON", (topic, b"{not json"), Reject.NOT_JSON),
        ("not UTF-8", (topic, b'{"v": 1, "id": "\xff\x00"}'), Reject.NOT_JSON),
        ("NaN", edit(good, t=float("nan")), Reject.NOT_JSON),
        ("Infinity", edit(call_msg(step=9), wait_s=float("inf")), Reject.NOT_JSON),
        ("version 2", edit(good, v=2), Reject.WRONG_VERSION),
        ("no version", edit(good, drop=["v"]), Reject.WRONG_VERSION),
        ("a list", (topic, b"[1, 2]"), Reject.SCHEMA),
        ("a field missing", edit(good, drop=["board"]), Reject.SCHEMA),
        ("a field too many", edit(good, colour="red"), Reject.SCHEMA),
        ("time as text", edit(good, t=str(NOW - 60)), Reject.SCHEMA),
        ("unknown type", edit(good, type="greeting"), Reject.SCHEMA),
        ("id is not board-boot-seq", edit(good, id="5EA70001-7-99"), Reject.SCHEMA),
        ("nested 5,000 deep", (topic, b"[" * 5000 + b"]" * 5000), Reject.SCHEMA),
        ("a state that is a list", seat_msg(seq=64, data={"event": "state", "state": [],
                                                          "reason": None, "call": None}),
         Reject.SCHEMA),
        ("a state of no name", seat_msg(seq=65, data={"event": "state", "state": "asleep"}),
         Reject.SCHEMA),
        ("a call that is text", seat_msg(seq=66, data={"event": "state", "state": "talking",
                                                       "call": "7"}), Reject.SCHEMA),
        ("a snapshot 30 000 years in its state", seat_msg(seq=67, type="snapshot", data={
            "state": "ready", "reason": None, "call": None, "secs": 1e12}), Reject.SCHEMA),
        ("a clock five years behind", seat_msg(seq=68, t=NOW - 5 * 365 * 86400),
         Reject.CLOCK_SKEW),
        ("id n not of its seq", edit(good, id="5EA70001-7-65537"), Reject.SCHEMA),
        ("id n not canonical", edit(good, id="5EA70001-7-01"), Reject.SCHEMA),
        ("unknown seat event", seat_msg(seq=21, data={"event": "dance"}), Reject.SCHEMA),
        ("negative time", seat_msg(seq=22, t=-1.0), Reject.SCHEMA),
        ("seq 0", seat_msg(seq=0), Reject.SCHEMA),
        ("call 0", call_msg(call=0), Reject.SCHEMA),
        ("NUL in a call's seat", call_msg(step=2, seat="s\x00101"), Reject.SCHEMA),
        ("bad call type", edit(call_msg(step=3), type="teleport"), Reject.SCHEMA),
        ("another seat's topic", edit(seat_msg(seq=23), topic=SITE.seat_event("s102")),
         Reject.TOPIC_MISMATCH),
        ("another call's topic", edit(call_msg(step=4), topic=SITE.topic("call_event",
                                                                        call="40214")),
         Reject.TOPIC_MISMATCH),
        ("unknown seat", seat_msg("s999", seq=24), Reject.UNKNOWN_SEAT),
        ("seat clock ahead", seat_msg(seq=25, t=NOW + 301), Reject.CLOCK_SKEW),
        ("PBX clock ahead", call_msg(step=5, t=NOW + 3600), Reject.CLOCK_SKEW),
        ("same id, other content", seat_msg(seq=1, t=NOW - 1), Reject.ID_CONFLICT),
    ]  # fmt: skip


def test_every_kind_of_bad_input_is_counted_kept_and_never_stored(store_url: str) -> None:
    cases = _bad_messages()
    expected = Counter(str(reason) for _, _, reason in cases)
    assert set(expected) == {str(r) for r in Reject}  # every reason is tried
    with opened(store_url, known_seats={"s101", "s102"}) as store:
        store.ingest([seat_msg(seq=1)])  # for the conflict
        result = store.ingest([message for _, message, _ in cases])
        assert (result.stored, result.duplicates, result.not_events) == (0, 0, 0)
        assert result.rejected == dict(expected)
        assert result.rejected_total == len(cases)
        # one at a time, each for its own reason
        for label, message, reason in cases:
            assert store.ingest([message]).rejected == {str(reason): 1}, label
        rows = store.rejected()
        counts = store.counts()
    assert [e for e in dump(store_url)["event"] if e[0] != "5EA70001-7-1"] == []
    # a redelivered bad message is counted each time, kept once
    assert Counter(r["reason"] for r in rows) == expected
    assert counts["db"]["rejected"] == dict(expected)
    assert counts["session"]["rejected"] == {k: 2 * n for k, n in expected.items()}
    for row in rows:
        assert row["detail"] and row["received"] == NOW
        assert len(row["raw"]) <= RAW_LIMIT
    (large,) = [r for r in rows if r["reason"] == "too_large"]
    assert large["size"] == PAYLOAD_LIMIT + 19 and large["raw"].endswith("…")
    (skewed,) = [r for r in rows if r["event_id"] == "5EA70001-7-25"]
    assert skewed["reason"] == "clock_skew" and "301.0 s ahead" in skewed["detail"]
    (binary,) = [r for r in rows if r["raw"].startswith('{"v": 1, "id": "\\xff')]
    assert binary["reason"] == "not_json"


def test_topics_that_carry_no_events_are_counted_not_stored(store_url: str) -> None:
    state = SeatState(seat="s101", gateway="gw1", board="5EA70001", boot=7, state="ready",
                      reason=None, call=None, since=NOW - 5, help=False, off_hook=False,
                      hold_over_limit=False, pending=None, misses=0, t=NOW)  # fmt: skip
    status = GatewayStatus(gateway="gw1", status="online", version="0.1.0", t=NOW)
    with opened(store_url) as store:
        result = store.ingest([
            (SITE.seat_state("s101"), state.dump()),
            (SITE.gateway_status("gw1"), status.dump()),
            (SITE.topic("seat_availability", seat="s101"), b"whatever"),
        ])  # fmt: skip
        assert (result.stored, result.not_events, result.rejected) == (0, 3, {})
        assert store.counts()["session"]["not_events"] == 3
    assert dump(store_url)["event"] == [] and dump(store_url)["rejected"] == []


def test_clock_skew_limit(store_url: str) -> None:
    with opened(store_url) as store:
        result = store.ingest([seat_msg(seq=1, t=NOW + 300), seat_msg(seq=2, t=NOW + 300.5),
                               seat_msg(seq=3, t=NOW - 30 * 86400)])  # fmt: skip
        assert (result.stored, result.rejected) == (2, {"clock_skew": 1})
    with opened(store_url, max_skew_s=10) as store:
        result = store.ingest([seat_msg(seq=4, t=NOW + 10), seat_msg(seq=5, t=NOW + 11)])
        assert (result.stored, result.rejected) == (1, {"clock_skew": 1})
    with pytest.raises(ValueError, match="max_skew_s"):
        opened(store_url, max_skew_s=-1)


def test_known_seats_can_be_changed(store_url: str) -> None:
    with opened(store_url, known_seats=["s101"]) as store:
        assert store.ingest([seat_msg("s102", board="B2")]).rejected == {"unknown_seat": 1}
        store.known_seats = {"s101", "s102"}
        assert store.ingest([seat_msg("s102", board="B2", seq=2)]).stored == 1
        store.known_seats = None
        assert store.ingest([seat_msg("s103", board="B3")]).stored == 1


def test_a_store_opened_without_topics_reads_but_does_not_ingest(store_url: str) -> None:
    with opened(store_url) as store:
        store.ingest([seat_msg()])
    with open_store(store_url) as store:
        assert [e.id for e in store.events()] == ["5EA70001-7-1"]
        with pytest.raises(StoreError, match="without topics"):
            store.ingest([seat_msg(seq=2)])
        store.topics = SITE
        assert store.ingest([seat_msg(seq=2, t=time.time())]).stored == 1


def test_a_failed_batch_stores_and_counts_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [seat_msg(seq=1), call_msg(), ("nowhere", b"junk")]
    with opened(store_url) as store:
        backend = store._db
        real = backend.execute_many

        def failing(statement: str, rows: Sequence[Sequence[Any]]) -> int:
            if "INTO rejected" in statement:  # the last write of the batch
                raise backend.errors[0]("the disk is full")
            return real(statement, rows)

        monkeypatch.setattr(backend, "execute_many", failing)
        with pytest.raises(StoreError, match="a batch of 3 messages was not stored.*disk is full"):
            store.ingest(batch)
        assert list(store.events()) == []
        assert store.counts()["session"]["stored"] == 0
        monkeypatch.setattr(backend, "execute_many", real)
        result = store.ingest(batch)
        assert (result.stored, result.rejected) == (2, {"unknown_topic": 1})


# --- reading ---------------------------------------------------------------------------------


def test_events_come_in_time_order_with_filters(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE", 3)  # read in pages, ties across page ends
    same_instant = NOW - 100
    steps = [call_msg(step=s, type="offer" if s % 2 else "ring_no_answer", t=same_instant,
                      seat="s101") for s in range(1, 13)]  # fmt: skip
    others = [
        seat_msg("s101", seq=3, t=same_instant),
        seat_msg("s101", seq=4, t=NOW - 90),
        seat_msg("s102", board="B2", seq=1, t=NOW - 95),
        call_msg(call=7, step=1, t=NOW - 99, seat="s102"),
        call_msg(call=7, step=2, type="abandon", t=NOW - 80, by="caller"),
    ]
    batch = steps + others
    random.Random(5).shuffle(batch)
    with opened(store_url) as store:
        assert store.ingest(batch).stored == len(batch)
        everything = list(store.events())
        assert [(e.t, e.seq, e.id) for e in everything] == \
            sorted((e.t, e.seq, e.id) for e in everything)  # fmt: skip
        call = [e.seq for e in store.events(call=40213)]
        assert call == list(range(1, 13))  # step 10 after step 9, though "-10" < "-9" as text
        assert [e.seq for e in everything if e.call == 40213] == call
        assert [e.id for e in store.events(kind="seat")] == \
            ["5EA70001-7-3", "B2-7-1", "5EA70001-7-4"]  # fmt: skip
        assert {e.kind for e in store.events(kind="call")} == {"call"}
        assert len(list(store.events(kind="call"))) == 14
        assert [e.id for e in store.events(seat="s102")] == ["pbx-1-7-1", "B2-7-1"]
        assert [e.id for e in store.events(seat="s102", kind="seat")] == ["B2-7-1"]
        window = [e.id for e in store.events(since=NOW - 99, until=NOW - 90)]
        assert window == ["pbx-1-7-1", "B2-7-1"]  # since inclusive, until exclusive
        assert [e.id for e in store.events(call=7, since=NOW - 90)] == ["pbx-1-7-2"]
        assert list(store.events(seat="s404")) == []


# --- reprocessing and append-only ------------------------------------------------------------


def test_reprocessing_the_same_batch_changes_nothing(store_url: str) -> None:
    batch = [
        seat_msg(seq=1), seat_msg(seq=2, t=NOW - 59), seat_msg(seq=1),
        call_msg(step=1), call_msg(step=2, type="offer", seat="s101"),
        (SITE.seat_state("s101"), b"{}"),
        ("nowhere", b"junk"), seat_msg(seq=3, t=NOW + 999), edit(seat_msg(seq=4), v=3),
    ]  # fmt: skip
    clock = [NOW]
    with opened(store_url, clock=lambda: clock[0]) as store:
        first = store.ingest(batch)
        before = dump(store_url)
        clock[0] = NOW + 5  # reprocessed a little later: nothing moves
        second = store.ingest(batch)
        after = dump(store_url)
    assert (first.stored, first.duplicates, first.not_events) == (4, 1, 1)
    assert (second.stored, second.duplicates, second.not_events) == (0, 5, 1)
    assert second.rejected == first.rejected == \
        {"unknown_topic": 1, "clock_skew": 1, "wrong_version": 1}  # fmt: skip
    assert after == before
    assert len(before["event"]) == 4 and len(before["rejected"]) == 3


def test_the_event_table_is_append_only(store_url: str) -> None:
    mutators = {"update", "delete", "remove", "purge", "truncate", "clear", "replace", "drop",
                "vacuum", "compact", "prune", "trim", "expire", "edit", "set"}  # fmt: skip
    for name, _ in inspect.getmembers(EventStore):
        assert not set(name.lower().strip("_").split("_")) & mutators, name
    source = inspect.getsource(store_module)
    for pattern in (r"\bUPDATE\s+(event|rejected)\b", r"\bDELETE\s+FROM\b",
                    r"\bTRUNCATE\s+(TABLE\s+)?(event|rejected)\b", r"\bOR\s+REPLACE\b",
                    r"\bDO\s+UPDATE\b", r"\bDROP\s+(TABLE|TRIGGER|FUNCTION|INDEX)\b"):  # fmt: skip
        assert not re.search(pattern, source, re.IGNORECASE), pattern
    with opened(store_url) as store:
        store.ingest([seat_msg(), ("nowhere", b"junk")])
        store.add_alert(id="hold-s101-1", rule="hold", seat="s101", t=NOW, payload="{}")
        store.act_on_alert(id="hold-s101-1", action="acknowledged", who="ann", t=NOW)
    before = dump(store_url)
    statements = ["UPDATE event SET t = 0", "DELETE FROM event", "UPDATE rejected SET raw = ''",
                  "DELETE FROM rejected", "UPDATE alert SET seat = 'x'", "DELETE FROM alert",
                  "UPDATE alert_action SET who = 'eve'", "DELETE FROM alert_action"]  # fmt: skip
    if store_url.startswith("postgresql://"):
        statements += ["TRUNCATE event", "TRUNCATE rejected", "TRUNCATE alert_action"]
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            sql(store_url, statement)
    assert dump(store_url) == before


def test_an_id_past_the_seq_wrap_is_stored_beside_the_first_with_that_seq(
        store_url: str) -> None:  # fmt: skip
    first = seat_msg(seq=2)
    wrapped = edit(seat_msg(seq=2, t=NOW - 30), id="5EA70001-7-65537")  # the 65,537th frame
    with opened(store_url) as store:
        result = store.ingest([first, wrapped])
        assert (result.stored, result.rejected) == (2, {})
        assert [e.id for e in store.events()] == ["5EA70001-7-2", "5EA70001-7-65537"]


# --- the tail and alerts ----------------------------------------------------------------------


def test_the_tail_gives_events_in_the_order_they_were_stored(store_url: str) -> None:
    with opened(store_url) as store:
        assert store.position() == 0 and store.tail() == []
        store.ingest([seat_msg(seq=2, t=NOW - 10), call_msg(step=1, t=NOW - 50)])
        store.ingest([seat_msg(seq=1, t=NOW - 90), seat_msg(seq=2, t=NOW - 10)])  # a repeat
        rows = store.tail()
        assert [e.id for _, e in rows] == ["5EA70001-7-2", "pbx-1-40213-1", "5EA70001-7-1"]
        positions = [n for n, _ in rows]
        assert positions == sorted(positions) and store.position() == positions[-1]
        assert [e.id for _, e in store.tail(positions[0], limit=1)] == ["pbx-1-40213-1"]
        assert store.tail(positions[-1]) == []


def test_alerts_are_stored_once_and_each_action_once(store_url: str) -> None:
    with opened(store_url) as store:
        assert store.add_alert(id="hold-s101-1", rule="hold", seat="s101", t=NOW - 5,
                               payload='{"rule": "hold"}')  # fmt: skip
        assert not store.add_alert(id="hold-s101-1", rule="hold", seat="s101", t=NOW - 5,
                                   payload='{"rule": "hold"}')  # fmt: skip
        store.add_alert(id="help-s102-2", rule="help", seat="s102", t=NOW, payload="{}")
        assert store.act_on_alert(id="hold-s101-1", action="acknowledged", who="ann",
                                  t=NOW, note="on it") == "done"  # fmt: skip
        assert store.act_on_alert(id="hold-s101-1", action="acknowledged", who="bob",
                                  t=NOW + 1) == "again"  # fmt: skip
        assert store.act_on_alert(id="nope", action="resolved", who="ann", t=NOW) == "unknown"
        assert [a["alert"] for a in store.alerts(open_only=True)] == [{"rule": "hold"}, {}]
        store.act_on_alert(id="hold-s101-1", action="cleared", who="core", t=NOW + 2)
        assert [a["alert"] for a in store.alerts(open_only=True)] == [{}]
        first = store.alerts(seat="s101")[0]
        assert first["actions"]["acknowledged"] == {"who": "ann", "t": NOW, "note": "on it"}
        assert set(first["actions"]) == {"acknowledged", "cleared"}
        assert [a["alert"] for a in store.alerts(since=NOW - 1)] == [{}]


# --- throughput ------------------------------------------------------------------------------


def test_a_batch_of_ten_thousand_events(store_url: str) -> None:
    batch = [seat_msg(f"s{n % 200}", board=f"B{n % 200}", seq=n // 200 + 1, t=NOW - 600 + n / 100)
             for n in range(8000)]  # fmt: skip
    batch += [call_msg(call=1000 + n // 4, step=n % 4 + 1, t=NOW - 600 + n / 10, seat="s1")
              for n in range(2000)]  # fmt: skip
    with opened(store_url) as store:
        started = time.perf_counter()
        result = store.ingest(batch)
        elapsed = time.perf_counter() - started
        assert result.stored == 10_000
        assert store.counts()["db"]["events"] == 10_000
        print(f"\n{store.dialect}: 10,000 events in one batch in {elapsed * 1000:.0f} ms, "
              f"{10_000 / elapsed:,.0f} events/s")  # fmt: skip


def test_stores_in_two_schemas_of_one_postgresql_database_each_have_a_leader(
    tmp_path: Path,
) -> None:
    # two sites (or two test runs) in one database: neither waits on the other's writers
    # nor takes the other's lead; two workers of one store still share one leader
    with empty_database("postgresql", tmp_path, "site_a") as a_url, \
            empty_database("postgresql", tmp_path, "site_b") as b_url:  # fmt: skip
        with opened(a_url) as a1, opened(a_url) as a2, opened(b_url) as b:
            assert a1.try_lead() is True
            assert a2.try_lead() is False
            assert b.try_lead() is True
            with a1._db.transaction():  # a writer of site a holds its lock...
                a1._db.lock()
                assert b.ingest([seat_msg(seq=1)]).stored == 1  # ...site b writes on
