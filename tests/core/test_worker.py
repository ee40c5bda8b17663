"""`seatlink core` against a real mosquitto and real databases: events in, stored once,
live KPIs and alerts out, alert commands, bad input counted, nothing lost while a worker is
away, two workers sharing the load on PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.contract.topics import Topics
from gateway.core.service import CoreService
from gateway.core.settings import CoreSettings
from gateway.core.store import open_store
from tests.databases import empty_database
from tests.stuck import run


async def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Until `check()` holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


def in_loop(test: Callable[..., Any]) -> Callable[..., None]:
    """Run an async test in a loop of its own; stuck past 90 s, every task's stack is
    printed and it fails."""

    @functools.wraps(test)
    def sync(*args: Any, **kwargs: Any) -> None:
        run(lambda: test(*args, **kwargs), timeout=90)

    return sync


def site() -> str:
    return "t" + uuid.uuid4().hex[:10]


def settings(broker: Any, store: str, site_id: str, **kw: Any) -> CoreSettings:
    base: dict[str, Any] = dict(
        site=site_id, store=store, broker={"host": broker.host, "port": broker.port},
        kpi_interval_s=0.2, agent_kpi_interval_s=0.2, health_interval_s=0.2,
        batch_wait_s=0.01, settle_s=0.0)  # fmt: skip
    base.update(kw)
    return CoreSettings(**base)


class Seat:
    def __init__(self, seat: str, board: str = "B1") -> None:
        self.seat, self.board, self.seq = seat, board, 0

    def state(self, t: float, state: str, call: int | None = None,
              reason: str | None = None) -> SeatEvent:  # fmt: skip
        self.seq += 1
        return SeatEvent(id=f"{self.board}-1-{self.seq}", seat=self.seat, gateway="gw1",
                         board=self.board, boot=1, seq=self.seq, t=t, type="event",
                         data={"event": "state", "state": state, "reason": reason,
                               "call": call, "a": 1, "b": 0})  # fmt: skip


class Call:
    def __init__(self, call: int, queue: str = "q1") -> None:
        self.call, self.queue, self.step = call, queue, 0

    def __call__(self, kind: str, t: float, **kw: Any) -> CallEvent:
        self.step += 1
        return CallEvent(id=f"p1-{self.call}-{self.step}", pbx="p1", call=self.call,
                         step=self.step, type=kind, t=t, direction="inbound",  # type: ignore[arg-type]
                         queue=self.queue, seat=kw.pop("seat", "s1"), number=None,
                         arrived=t, **kw)  # fmt: skip


@asynccontextmanager
async def client(broker: Any, *topics: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port,
                              identifier=f"test-{uuid.uuid4().hex[:8]}") as c:  # fmt: skip
        for topic in topics:
            await c.subscribe(topic, qos=1)
        yield c


async def publish(c: aiomqtt.Client, t: Topics, events: list[SeatEvent | CallEvent]) -> None:
    for e in events:
        topic = t.seat_event(e.seat) if isinstance(e, SeatEvent) \
            else t.topic("call_event", call=str(e.call))  # fmt: skip
        await c.publish(topic, e.dump(), qos=1)


async def until(c: aiomqtt.Client, match: Callable[[str, dict[str, Any]], bool],
                timeout: float = 10.0) -> dict[str, Any]:
    """The first message (topic, JSON) that matches."""
    async with asyncio.timeout(timeout):
        async for m in c.messages:
            body = json.loads(m.payload)  # type: ignore[arg-type]
            if match(str(m.topic), body):
                return body  # type: ignore[no-any-return]
    raise AssertionError("unreachable")


def stored(url: str) -> int:
    with open_store(url) as s:
        return int(s.counts()["db"]["events"])


@in_loop
async def test_events_in_kpis_and_alerts_out_commands_and_bad_input(
        mqtt_broker: Any, store_url: str) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    url = store_url  # SQLite and PostgreSQL alike
    cfg = settings(mqtt_broker, url, sid, alerts={"hold_max_s": 1.0}, known_seats=["s1", "s2"])
    watch = (t.subscription("seat_alert"), t.topic("alert_cmd_result"),
             t.topic("kpi_live", scope="site", key=sid), t.topic("core_health", core="core-1"))
    async with client(mqtt_broker, *watch) as c, CoreService(cfg) as core:
        await asyncio.wait_for(core.online.wait(), 10)
        now = time.time()
        s1, call = Seat("s1"), Call(7)
        await publish(c, t, [
            s1.state(now - 20, "ready"), call("enter_queue", now - 12, seat=None),
            call("offer", now - 10, wait_s=2.0), s1.state(now - 10, "ringing", 7),
            call("answer", now - 6, wait_s=6.0, rings=1), s1.state(now - 6, "talking", 7),
            call("hold", now - 0.2), s1.state(now - 0.2, "hold", 7)])  # fmt: skip
        # a hold over the limit is raised while it lasts (the worker's clock), not at its end
        raised = await until(c, lambda topic, b: topic.endswith("/alert")
                             and b["rule"] == "hold" and b["status"] == "raised")  # fmt: skip
        assert raised["seat"] == "s1" and raised["call"] == 7 and raised["seed"]
        assert raised["threshold"] == 1.0 and raised["measured"] > 1.0
        later = time.time()
        await publish(c, t, [call("unhold", later, hold_s=later - now + 0.2),
                             s1.state(later, "talking", 7)])  # fmt: skip
        cleared = await until(c, lambda topic, b: topic.endswith("/alert")
                              and b["status"] == "cleared")  # fmt: skip
        assert cleared["id"] == raised["id"]
        end = time.time()
        await publish(c, t, [call("release", end, talk_s=end - now + 6, by="caller"),
                             s1.state(end, "acw", 7), s1.state(end + 0.5, "ready")])  # fmt: skip
        kpi = await until(c, lambda topic, b: topic.endswith(f"/kpi/site/{sid}")
                          and b["windows"]["today"].get("answered") == 1)  # fmt: skip
        today = kpi["windows"]["today"]
        assert today["offered"] == 1 and today["asa_s"] == 6.0 and today["holds"] == 1

        # alert commands: done, again, unknown, invalid, each with its answer
        cmd = t.topic("alert_cmd")
        ack = {"v": 1, "id": "c1", "action": "acknowledge", "alert": raised["id"], "who": "ann"}
        await c.publish(cmd, json.dumps(ack).encode(), qos=1)
        # the alert's new status goes out before the command's result
        seen = await until(c, lambda topic, b: topic.endswith("/alert")
                           and b["status"] == "acknowledged")  # fmt: skip
        assert seen["who"] == "ann" and seen["id"] == raised["id"]
        done = await until(c, lambda topic, b: topic.endswith("cmd/result") and b["id"] == "c1")
        assert done["status"] == "done"
        await c.publish(cmd, json.dumps({**ack, "id": "c2"}).encode(), qos=1)
        again = await until(c, lambda topic, b: topic.endswith("cmd/result") and b["id"] == "c2")
        assert again["status"] == "again"
        await c.publish(cmd, json.dumps({**ack, "id": "c3", "alert": "nope"}).encode(), qos=1)
        unknown = await until(c, lambda topic, b: topic.endswith("cmd/result")
                              and b["id"] == "c3")  # fmt: skip
        assert unknown["status"] == "unknown"
        await c.publish(cmd, b'{"v": 1, "id": "c4", "action": "delete"}', qos=1)
        invalid = await until(c, lambda topic, b: topic.endswith("cmd/result")
                              and b["id"] == "c4")  # fmt: skip
        assert invalid["status"] == "invalid" and "action" in invalid["reason"]

        # bad input: counted by reason, never stored, the worker goes on
        await c.publish(t.seat_event("s1"), b"not json", qos=1)
        await c.publish(t.seat_event("s2"), s1.state(end, "ready").dump(), qos=1)  # wrong seat
        await c.publish(t.seat_event("s3"), Seat("s3", "B3").state(end, "ready").dump(), qos=1)
        await c.publish(t.seat_event("s1"), s1.state(end + 3600, "ready").dump(), qos=1)
        health = await until(c, lambda topic, b: topic.endswith("/health")
                             and b["store"]["session"]["rejected_total"] >= 4)  # fmt: skip
        assert health["store"]["session"]["rejected"] == {
            "not_json": 1, "topic_mismatch": 1, "unknown_seat": 1, "clock_skew": 1}
        assert health["store"]["db"]["events"] == 13 and health["leader"] is True
    with open_store(url) as store:
        alerts = store.alerts()
    assert [a["alert"]["rule"] for a in alerts] == ["hold"]
    assert set(alerts[0]["actions"]) == {"cleared", "acknowledged"}


@in_loop
async def test_a_restart_rebuilds_the_same_figures_and_publishes_no_alert_again(
        mqtt_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    url = f"sqlite:///{tmp_path}/core.db"
    cfg = settings(mqtt_broker, url, sid, alerts={"hold_max_s": 1.0})
    now = time.time()
    s1, call = Seat("s1"), Call(3)
    events: list[SeatEvent | CallEvent] = [
        s1.state(now - 60, "ready"), call("enter_queue", now - 50, seat=None),
        call("offer", now - 50, wait_s=0.0), s1.state(now - 50, "ringing", 3),
        call("answer", now - 45, wait_s=5.0, rings=1), s1.state(now - 45, "talking", 3),
        call("hold", now - 40), s1.state(now - 40, "hold", 3),
        call("unhold", now - 35, hold_s=5.0), s1.state(now - 35, "talking", 3),
        call("release", now - 20, talk_s=25.0, by="caller"), s1.state(now - 20, "acw", 3),
        s1.state(now - 10, "ready")]  # fmt: skip
    async with client(mqtt_broker, t.subscription("seat_alert")) as c:
        async with CoreService(cfg) as core:
            await asyncio.wait_for(core.online.wait(), 10)
            await publish(c, t, events)
            await until(c, lambda topic, b: b["status"] == "cleared")
            await eventually(lambda: core.live.window("day", now, by="site")[1][sid].handled
                             > 0, "the call's whole figures (at the next tick)")  # fmt: skip
            first = core.live.window("day", now, by="site")[1][sid]
        async with CoreService(cfg) as again:
            await asyncio.wait_for(again.online.wait(), 10)
            second = again.live.window("day", now, by="site")[1][sid]
            with pytest.raises(TimeoutError):  # the alert was published: not again
                await until(c, lambda topic, b: True, timeout=1.5)
    # the same figures, but for the seat's Ready time, which runs on to each one's "now"
    running = {"logged_in_s", "available_s", "occupancy", "unattributed_s"}
    assert {k: v for k, v in asdict(second).items() if k not in running} == \
        {k: v for k, v in asdict(first).items() if k not in running}  # fmt: skip
    assert (first.answered, first.holds, first.avg_hold_s, first.avg_acw_s) == (1, 1, 5.0, 10.0)


@in_loop
async def test_events_sent_while_the_worker_is_away_are_all_stored(
        own_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    url = f"sqlite:///{tmp_path}/core.db"
    cfg = settings(own_broker, url, sid)
    async with CoreService(cfg) as core:
        await asyncio.wait_for(core.online.wait(), 10)  # its session and subscriptions exist
    now = time.time()
    seats = [Seat(f"s{i}", board=f"B{i}") for i in range(10)]
    events: list[SeatEvent | CallEvent] = [
        seats[i % 10].state(now - 100 + i * 0.01, ("ready", "not_ready")[i // 10 % 2],
                            reason="meal" if i // 10 % 2 else None)
        for i in range(600)]  # fmt: skip
    async with client(own_broker) as c:
        await publish(c, t, events)
    own_broker.restart()  # the queue survives a broker restart too (persistence)
    async with CoreService(cfg) as core:
        deadline = time.monotonic() + 20
        while stored(url) < 600 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert core.stats.received >= 600
    assert stored(url) == 600


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with empty_database("postgresql", tmp_path, "core") as url:
        yield url


@in_loop
async def test_two_workers_share_the_events_and_see_the_same_site(
        mqtt_broker: Any, pg_url: str) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    now = time.time()
    events: list[SeatEvent | CallEvent] = []
    for n in range(1, 101):
        seat = Seat(f"s{n}", board=f"B{n}")
        call = Call(n)
        at = now - 300 + n
        events += [seat.state(at - 5, "ready"), call("enter_queue", at, seat=None),
                   call("offer", at, seat=seat.seat, wait_s=0.0),
                   seat.state(at, "ringing", n),
                   call("answer", at + 3, seat=seat.seat, wait_s=3.0, rings=1),
                   seat.state(at + 3, "talking", n),
                   call("release", at + 60, seat=seat.seat, talk_s=57.0, by="caller"),
                   seat.state(at + 60, "acw", n), seat.state(at + 70, "ready")]  # fmt: skip
    # a call's steps are stored by both workers, so its end can reach the tail before its
    # answer: settle_s covers that (with 0 a call could be counted without its answer)
    one = settings(mqtt_broker, pg_url, sid, core="core-a", settle_s=2.0)
    two = settings(mqtt_broker, pg_url, sid, core="core-b", settle_s=2.0)
    async with CoreService(one) as a, CoreService(two) as b:
        await asyncio.wait_for(asyncio.gather(a.online.wait(), b.online.wait()), 10)
        async with client(mqtt_broker) as c:
            await publish(c, t, events)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            figures = [w.live.window("day", now, by="site")[1][sid] for w in (a, b)]
            if all(f.handled == 100 for f in figures):  # every call over and counted whole
                break
            await asyncio.sleep(0.2)
        assert [(f.answered, f.handled) for f in figures] == [(100, 100), (100, 100)]
        # Ready time runs to each's now
        running = {"logged_in_s", "available_s", "occupancy", "unattributed_s"}
        a_, b_ = ({k: v for k, v in asdict(f).items() if k not in running} for f in figures)
        assert a_ == b_
        shares = [w.stats.received for w in (a, b)]
        assert sum(shares) == len(events) and min(shares) > 0, shares
        assert [a.leader, b.leader].count(True) == 1
    assert stored(pg_url) == len(events)


@in_loop
async def test_a_seat_offline_and_a_gateway_gone_raise_offline_alerts(
        mqtt_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    cfg = settings(mqtt_broker, f"sqlite:///{tmp_path}/core.db", sid,
                   alerts={"offline_grace_s": 0.5})  # fmt: skip

    def availability(seat: str, status: str, at: float) -> bytes:
        return json.dumps({"v": 1, "seat": seat, "gateway": "gw1", "status": status,
                           "why": "test", "t": at}).encode()  # fmt: skip

    async with client(mqtt_broker, t.subscription("seat_alert")) as c, \
            CoreService(cfg) as core:  # fmt: skip
        await asyncio.wait_for(core.online.wait(), 10)
        now = time.time()
        await publish(c, t, [Seat("s1").state(now - 5, "ready"),
                             Seat("s2", board="B2").state(now - 5, "ready")])  # fmt: skip
        await c.publish(t.topic("seat_availability", seat="s1"),
                        availability("s1", "offline", now), qos=1, retain=True)  # fmt: skip
        raised = await until(c, lambda topic, b: b["rule"] == "offline")
        assert (raised["seat"], raised["status"], raised["threshold"]) == ("s1", "raised", 0.5)
        await c.publish(t.topic("seat_availability", seat="s1"),
                        availability("s1", "online", time.time()), qos=1, retain=True)  # fmt: skip
        cleared = await until(c, lambda topic, b: b["status"] == "cleared")
        assert cleared["id"] == raised["id"]
        # the gateway's last will: every seat heard on it goes offline
        will = {"v": 1, "gateway": "gw1", "status": "offline", "version": "x", "t": None}
        await c.publish(t.gateway_status("gw1"), json.dumps(will).encode(), qos=1)
        seats = set()
        while seats != {"s1", "s2"}:
            alert = await until(c, lambda topic, b: b["rule"] == "offline"
                                and b["status"] == "raised")  # fmt: skip
            seats.add(alert["seat"])
        await c.publish(t.gateway_status("gw1"), b"junk", qos=1)
        await c.publish(t.topic("seat_availability", seat="s9"), b"{}", qos=1)
        await eventually(lambda: core.stats.bad_availability >= 2, "two bad messages counted")


@in_loop
async def test_a_database_that_is_away_delays_the_events_and_loses_none(
        mqtt_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    import sqlite3

    sid = site()
    t = Topics(site=sid)
    url = f"sqlite:///{tmp_path}/core.db"
    async with client(mqtt_broker) as c, CoreService(settings(mqtt_broker, url, sid)) as core:
        await asyncio.wait_for(core.online.wait(), 10)
        # another process holds the database: every write waits its 5 s and fails
        other = sqlite3.connect(tmp_path / "core.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        now = time.time()
        seat = Seat("s1")
        await publish(c, t, [seat.state(now - 50 + i * 0.1, ("ready", "acw")[i % 2], call=None)
                             for i in range(200)])  # fmt: skip
        await eventually(lambda: core.stats.store_errors > 0, "a store error counted")
        assert other.execute("SELECT count(*) FROM event").fetchone() == (0,)
        assert core.stats.last_error is not None and "locked" in core.stats.last_error
        other.execute("ROLLBACK")
        other.close()
        deadline = time.monotonic() + 30
        while stored(url) < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert stored(url) == 200
        health = await core.health()
        assert health.store["session"]["stored"] == 200


@in_loop
async def test_poison_input_is_refused_and_the_worker_goes_on(
        mqtt_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    url = f"sqlite:///{tmp_path}/core.db"
    watch = (t.topic("alert_cmd_result"),)
    async with client(mqtt_broker, *watch) as c, CoreService(settings(mqtt_broker, url, sid)) \
            as core:  # fmt: skip
        await asyncio.wait_for(core.online.wait(), 10)
        now = time.time()
        s1 = Seat("s1")
        poison = [
            b"[" * 5000 + b"]" * 5000,  # JSON, nested past the parser's recursion limit
            s1.state(now, "ready").model_copy(update={"data": {"event": "state",
                                                             "state": []}}).dump(),  # fmt: skip
            s1.state(now, "ready").model_copy(update={"type": "snapshot", "data": {
                "state": "ready", "secs": 1e12}}).dump(),  # fmt: skip
            s1.state(now - 5 * 365 * 86400, "ready").dump(),  # a board clock never set
        ]
        for body in poison:
            await c.publish(t.seat_event("s1"), body, qos=1)
        cmds = [b"[" * 5000 + b"]" * 5000,
                b'{"v": 1, "id": "n1", "action": "resolve", "alert": "a\\u0000", "who": "x"}',
                b'{"v": 1, "id": "n2", "action": "resolve", "alert": "a", "who": "\\u0000"}']
        for body in cmds:
            await c.publish(t.topic("alert_cmd"), body, qos=1)
        for _ in range(3):
            result = await until(c, lambda topic, b: True)
            assert result["status"] == "invalid"
        # still working: a good event after the poison is stored and taken live
        await publish(c, t, [s1.state(now, "ready")])
        deadline = time.monotonic() + 10
        while stored(url) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert stored(url) == 1
        health = await core.health()
        assert health.store["session"]["rejected"] == {"schema": 3, "clock_skew": 1}
        assert core.stats.bad_commands == 3 and core.stats.bad_events == 0
        assert core._task is not None and not core._task.done()


@in_loop
async def test_a_hold_over_the_limit_while_the_worker_was_down_is_raised_at_restart(
        mqtt_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    sid = site()
    t = Topics(site=sid)
    url = f"sqlite:///{tmp_path}/core.db"
    cfg = settings(mqtt_broker, url, sid, alerts={"hold_max_s": 2.0})
    now = time.time()
    s1, call = Seat("s1"), Call(5)
    async with client(mqtt_broker, t.subscription("seat_alert")) as c:
        async with CoreService(cfg) as core:
            await asyncio.wait_for(core.online.wait(), 10)
            await publish(c, t, [call("hold", now), s1.state(now, "hold", 5)])
            await eventually(lambda: stored(url) == 2, "the hold stored")
        # down for longer than the limit: nobody was there to raise it
        await asyncio.sleep(2.5)
        async with CoreService(cfg) as again:
            await asyncio.wait_for(again.online.wait(), 10)
            raised = await until(c, lambda topic, b: b["rule"] == "hold")
            assert raised["status"] == "raised" and raised["measured"] > 2.0
            # and an answer after 3 rings is over as it is raised: never left open
            await publish(c, t, [Call(6)("answer", time.time(), wait_s=20.0, rings=4)])
            late = await until(c, lambda topic, b: b["rule"] == "late_answer")
            assert late["status"] == "raised"
    with open_store(url) as store:
        assert [a["alert"]["rule"] for a in store.alerts(open_only=True)] == ["hold"]
        (ended,) = [a for a in store.alerts() if a["alert"]["rule"] == "late_answer"]
        assert ended["actions"]["cleared"]["note"] == "a single event"


@in_loop
async def test_a_postgresql_connection_the_server_dropped_is_reopened(
        mqtt_broker: Any, pg_url: str) -> None:  # fmt: skip
    import psycopg

    sid = site()
    t = Topics(site=sid)
    async with client(mqtt_broker) as c, CoreService(settings(mqtt_broker, pg_url, sid)) \
            as core:  # fmt: skip
        await asyncio.wait_for(core.online.wait(), 10)
        assert core.store is not None
        pid = core.store._db._conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        now = time.time()
        seat = Seat("s1")
        await publish(c, t, [seat.state(now - 10 + i * 0.1, ("ready", "acw")[i % 2])
                             for i in range(50)])  # fmt: skip
        deadline = time.monotonic() + 20
        while stored(pg_url) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert stored(pg_url) == 50
        assert core.stats.store_errors >= 1


@in_loop
async def test_a_restarted_worker_shows_the_calls_whole_figures_at_once(
        mqtt_broker: Any, store_url: str) -> None:  # fmt: skip
    """Issue 18: for `settle_s` after each restart, handled, talk, hold, ACW, AHT and
    one-stop were empty: the replay took every stored call as arriving at the restart."""
    sid = site()
    t = Topics(site=sid)
    cfg = settings(mqtt_broker, store_url, sid, settle_s=10.0)
    now = time.time()
    s1, call = Seat("s1"), Call(4)
    events: list[SeatEvent | CallEvent] = [
        s1.state(now - 300, "ready"), call("enter_queue", now - 290, seat=None),
        call("offer", now - 290, wait_s=0.0), s1.state(now - 290, "ringing", 4),
        call("answer", now - 286, wait_s=4.0, rings=1), s1.state(now - 286, "talking", 4),
        call("hold", now - 250), s1.state(now - 250, "hold", 4),
        call("unhold", now - 240, hold_s=10.0), s1.state(now - 240, "talking", 4),
        call("release", now - 200, talk_s=86.0, by="caller"), s1.state(now - 200, "acw", 4),
        s1.state(now - 180, "ready")]  # fmt: skip
    # stored a minute ago by the worker that ran then
    with open_store(store_url, topics=t, clock=lambda: now - 60) as store:
        store.ingest([(t.seat_event(e.seat) if isinstance(e, SeatEvent) else
                       t.topic("call_event", call=str(e.call)), e.dump())
                      for e in events])  # fmt: skip
    whole = {"handled": 1, "avg_talk_s": 76.0, "avg_hold_s": 10.0, "avg_acw_s": 20.0,
             "aht_s": 106.0, "one_stop_rate": 1.0}  # talk 86 - hold 10; 76 + 10 + 20
    async with client(mqtt_broker, t.topic("kpi_live", scope="site", key=sid)) as c:
        async with CoreService(cfg) as core:
            # the state rebuilt from the store, before anything else happened
            day = asdict(core.live.window("day", now, by="site")[1][sid])
            assert {k: day[k] for k in whole} == whole
            # and the wallboard's first figures after the restart have them
            first = await until(c, lambda topic, b: True)
            today = first["windows"]["today"]
            assert {k: today[k] for k in whole} == whole


def test_the_published_figures_are_rounded_to_4_decimals_not_ready_s_too() -> None:
    """docs/core.md, Live KPIs: every fractional figure on kpi/{scope}/{key} is rounded to
    4 decimals (`round(v, 4)`), also the seconds per Not Ready reason, where a late event's
    retraction leaves float dust (59.99999999999 s)."""
    from gateway.core.kpi import Totals
    from gateway.core.service import _figures

    tot = Totals()
    tot.add_time("ready", None, 20.0 / 3)
    tot.add_time("not_ready", "break", 60.0 - 1e-11)
    tot.add_answer(1.0 / 3, 2, True, ring_limit=3, threshold=20.0)
    body = _figures(tot.result(by="site"))
    assert body["asa_s"] == 0.3333 and body["logged_in_s"] == 66.6667
    assert body["answered"] == 1 and isinstance(body["answered"], int)
    assert body["not_ready_s"] == {"break": 60.0}
