"""KPIs by agent (issue 19, part 2): every seat event and call step is booked to the agent
signed in at its seat at its time (`seat/{seat}/agent`), a call to the agent who answered
it, and what happened with nobody signed in is counted, never dropped.

A day at two desks, 2027-01-15 (UTC):

| when | s1 | s2 |
|---|---|---|
| 08:50 | ann signs in | |
| 08:55 | Ready | |
| 10:00 | call 1: answered 10:00:05, talk 120 s, ACW 30 s | |
| 11:58 | call 5 answered; ann signed out at 12:00 (mid-call); released 12:02, ACW 60 s | |
| 12:10 | call 4, nobody signed in: talk 60 s, ACW 20 s | |
| 12:20 | | ann signs in |
| 12:25 | | Ready |
| 12:45 | | call 2: talk 90 s, ACW 10 s |
| 13:00 | bob signs in | |
| 13:30 | call 3: talk 100 s, ACW 40 s | |
| 14:00 | logged out | logged out |

What a supervisor reads: ann handled 3 calls (1 and 5 at s1, 2 at s2) and was logged in
3:05 at s1 and 1:35 at s2; bob handled 1; call 4 and s1's hour with nobody signed in are
nobody's, shown on s1 and the site.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.contract.topics import Topics
from gateway.core.kpi import Kpis, SignIns, kpis, state_intervals
from gateway.core.live import LiveKpis
from gateway.core.queries import daily_report, interval_kpis
from gateway.core.report import Targets
from gateway.core.service import CoreService
from gateway.core.store import open_store
from tests.core.test_worker import (
    Call,
    Seat,
    client,
    eventually,
    in_loop,
    publish,
    settings,
    site,
    until,
)

UTC = ZoneInfo("UTC")
DAY = date(2027, 1, 15)
SITE = "hq"
TOPICS = Topics(site=SITE)


def hm(h: int, m: int = 0, s: int = 0) -> float:
    return datetime(2027, 1, 15, h, m, s, tzinfo=UTC).timestamp()


class Desk:
    def __init__(self, seat: str, board: str) -> None:
        self.seat, self.board, self.seq = seat, board, 0
        self.events: list[dict[str, Any]] = []

    def state(self, t: float, state: str, call: int | None = None) -> Desk:
        self.seq += 1
        self.events.append({"v": 1, "id": f"{self.board}-1-{self.seq}", "seat": self.seat,
                            "gateway": "gw1", "board": self.board, "boot": 1, "seq": self.seq,
                            "t": t, "type": "event",
                            "data": {"event": "state", "state": state, "reason": None,
                                     "call": call, "a": 1, "b": 0}})  # fmt: skip
        return self


def call(n: int, desk: Desk, enters: float, talk: float, acw: float) -> list[dict[str, Any]]:
    """A queue call answered at `desk` 5 s after it entered, on the first ring."""
    answer, end = enters + 5, enters + 5 + talk
    steps = [("enter_queue", enters, {"seat": None}),
             ("offer", enters + 1, {"seat": desk.seat, "wait_s": 1.0}),
             ("answer", answer, {"seat": desk.seat, "wait_s": 5.0, "rings": 1}),
             ("release", end, {"seat": desk.seat, "talk_s": talk, "hold_s": 0.0,
                               "by": "caller"})]  # fmt: skip
    desk.state(enters + 1, "ringing", n).state(answer, "talking", n).state(end, "acw", n)
    desk.state(end + acw, "ready")
    return [{"v": 1, "id": f"p1-{n}-{k}", "pbx": "p1", "call": n, "step": k, "type": kind,
             "t": t, "direction": "inbound", "queue": "support", "number": None,
             "arrived": enters, **extra} for k, (kind, t, extra) in enumerate(steps, 1)]


def sign_in(k: int, seat: str, agent: str | None, t: float, cause: str) -> dict[str, Any]:
    return {"v": 1, "id": f"api-{k}", "seat": seat, "agent": agent, "name": None, "t": t,
            "by": "sup.li", "cause": cause, "previous": None}


def the_day() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(sign-in changes, call events, seat events)"""
    s1, s2 = Desk("s1", "B1"), Desk("s2", "B2")
    s1.state(hm(8, 55), "ready")
    calls = call(1, s1, hm(10), 120, 30) + call(5, s1, hm(11, 57, 55), 240, 60) + \
        call(4, s1, hm(12, 10), 60, 20)  # fmt: skip
    s2.state(hm(12, 25), "ready")
    calls += call(2, s2, hm(12, 45), 90, 10) + call(3, s1, hm(13, 30), 100, 40)
    s1.state(hm(14), "logged_out")
    s2.state(hm(14), "logged_out")
    changes = [sign_in(1, "s1", "ann", hm(8, 50), "self"),
               sign_in(2, "s1", None, hm(12), "supervisor"),
               sign_in(3, "s2", "ann", hm(12, 20), "self"),
               sign_in(4, "s1", "bob", hm(13), "self")]  # fmt: skip
    return changes, calls, s1.events + s2.events


def store_day(path: Path) -> str:
    url = f"sqlite:///{path}/core.db"
    changes, calls, seats = the_day()
    messages = [(TOPICS.topic("seat_agent", seat=c["seat"]), json.dumps(c).encode())
                for c in changes]  # fmt: skip
    messages += [(TOPICS.topic("call_event", call=str(e["call"])), json.dumps(e).encode())
                 for e in calls]  # fmt: skip
    messages += [(TOPICS.seat_event(e["seat"]), json.dumps(e).encode()) for e in seats]
    with open_store(url, topics=TOPICS, clock=lambda: hm(15)) as store:
        assert store.ingest(messages).stored == len(messages)
    return url


@pytest.fixture
def report(tmp_path: Path) -> Any:
    return daily_report(store_day(tmp_path), DAY, UTC, site=SITE, targets=Targets(),
                        now=hm(15))  # fmt: skip


def test_an_agent_moving_between_two_seats_gets_one_set_of_figures(report: Any) -> None:
    ann = report.agents["ann"]
    assert (ann.offered, ann.answered, ann.handled) == (3, 3, 3)  # calls 1, 5 at s1; 2 at s2
    assert ann.avg_talk_s == pytest.approx((120 + 240 + 90) / 3)
    # call 5's leg and its ACW are ann's: she answered it, though signed out before its end
    assert ann.avg_acw_s == pytest.approx((30 + 60 + 10) / 3)
    # logged in 08:55-12:00 at s1 and 12:25-14:00 at s2
    assert ann.logged_in_s == pytest.approx(3 * 3600 + 5 * 60 + 3600 + 35 * 60)


def test_two_agents_sharing_one_seat_get_separate_figures(report: Any) -> None:
    ann, bob = report.agents["ann"], report.agents["bob"]
    assert (bob.answered, bob.handled, bob.avg_talk_s, bob.avg_acw_s) == (1, 1, 100.0, 40.0)
    assert bob.logged_in_s == pytest.approx(3600.0)  # s1 13:00-14:00
    assert set(report.agents) == {"ann", "bob"}
    # s1's own view holds the desk's whole day: both agents' calls and the unattributed one
    s1 = report.seats["s1"]
    assert (s1.answered, s1.handled) == (4, 4)
    assert s1.logged_in_s == pytest.approx(5 * 3600 + 5 * 60)
    assert ann.handled + bob.handled + s1.unattributed_handled + 0 == \
        report.site_kpis.handled  # fmt: skip


def test_events_with_nobody_signed_in_are_counted_as_unattributed(report: Any) -> None:
    site, s1, s2 = report.site_kpis, report.seats["s1"], report.seats["s2"]
    assert (site.handled, site.unattributed_handled) == (5, 1)  # call 4
    assert (s1.unattributed_handled, s2.unattributed_handled) == (1, 0)
    # s1 was logged in from 12:00 to 13:00 with nobody signed in
    assert (s1.unattributed_s, s2.unattributed_s, site.unattributed_s) == (3600.0, 0.0, 3600.0)
    agents = report.agents.values()
    assert sum(k.logged_in_s or 0.0 for k in agents) + site.unattributed_s == \
        pytest.approx(site.logged_in_s)  # fmt: skip
    # an agent's figures have no unattributed part
    assert report.agents["ann"].unattributed_s is None


def test_the_intervals_of_an_agent_follow_it_across_seats(tmp_path: Path) -> None:
    hours = interval_kpis(store_day(tmp_path), DAY, UTC, by="agent", size_s=3600, site=SITE,
                          targets=Targets(), now=hm(15))  # fmt: skip
    by_hour = {datetime.fromtimestamp(w.start, UTC).hour: k for w, k in hours}
    assert by_hour[10]["ann"].handled == 1 and "bob" not in by_hour[10]
    assert by_hour[12]["ann"].handled == 2  # call 5 released 12:02 at s1, call 2 at s2
    assert by_hour[12]["ann"].logged_in_s == pytest.approx(35 * 60)  # s2 from 12:25
    assert by_hour[13]["bob"].handled == 1 and by_hour[13]["ann"].handled == 0


def test_the_live_figures_of_each_agent_are_the_report_s(report: Any) -> None:
    changes, calls, seats = the_day()
    live = LiveKpis(tz=UTC, site=SITE)  # a call counts settle_s (10 s) after its end
    for c in changes:
        live.sign_in(c["seat"], c["agent"], c["t"], c["id"])
    events: list[SeatEvent | CallEvent] = [CallEvent.model_validate(e) for e in calls]
    events += [SeatEvent.model_validate(e) for e in seats]
    for e in sorted(events, key=lambda e: e.t):
        live.feed([e])
        live.advance(e.t)
    live.advance(hm(14, 30))
    # the rolling window (the last 120 whole minutes: 12:31-14:30) as kpis() has it
    win, rolling = live.rolling(120, by="agent")
    signed = SignIns([(c["seat"], c["agent"], c["t"], c["id"]) for c in changes])
    want_rolling = kpis(calls, state_intervals(seats, until=hm(14, 30)), window=win,
                        by="agent", sign_ins=signed)  # fmt: skip
    assert set(rolling) == {"ann", "bob"}
    same(rolling, want_rolling, "rolling agent")
    live.advance(hm(15))
    for by, want in (("agent", report.agents), ("seat", report.seats),
                     ("site", {SITE: report.site_kpis})):  # fmt: skip
        same(live.window("day", hm(12), by=by)[1], want, by)  # type: ignore[arg-type]


def same(got: dict[str, Kpis], want: Mapping[str, Kpis], where: str) -> None:
    assert sorted(got) == sorted(want), where
    for key in want:
        for name, value in asdict(want[key]).items():
            live_value = getattr(got[key], name)
            if isinstance(value, dict):
                assert live_value.keys() == value.keys(), (where, key, name)
                value, live_value = list(value.values()), list(live_value.values())
            assert live_value == pytest.approx(value), (where, key, name)


# --- through mosquitto and the worker ---------------------------------------------------------


@in_loop
async def test_the_worker_takes_each_sign_in_once_and_books_the_same_after_a_restart(
        mqtt_broker: Any, tmp_path: Path) -> None:  # fmt: skip
    """The API publishes the sign-in retained; the worker stores it once, though it is
    handed over again (the API's repeat, and the retained copy at every subscription), books
    the call at s1 to ann on kpi/agent/ann, and a restarted worker books it the same."""
    sid = site()
    t = Topics(site=sid)
    cfg = settings(mqtt_broker, f"sqlite:///{tmp_path}/core.db", sid)
    now = time.time()
    change = json.dumps(sign_in(1, "s1", "ann", now - 600, "self"))
    s1, c3 = Seat("s1"), Call(3)
    events: list[SeatEvent | CallEvent] = [
        s1.state(now - 300, "ready"), c3("enter_queue", now - 200, seat=None),
        c3("offer", now - 199, wait_s=1.0), s1.state(now - 199, "ringing", 3),
        c3("answer", now - 195, wait_s=5.0, rings=1), s1.state(now - 195, "talking", 3),
        c3("release", now - 100, talk_s=95.0, by="caller"), s1.state(now - 100, "acw", 3),
        s1.state(now - 80, "ready")]  # fmt: skip
    agent_topic = t.topic("kpi_live", scope="agent", key="ann")
    try:
        async with client(mqtt_broker, agent_topic) as c:
            await c.publish(t.topic("seat_agent", seat="s1"), change, qos=1, retain=True)
            async with CoreService(cfg) as core:
                await asyncio.wait_for(core.online.wait(), 10)
                await eventually(lambda: core.live.counts["sign_ins"] == 1, "ann's sign-in")
                await c.publish(t.topic("seat_agent", seat="s1"), change, qos=1, retain=True)
                await publish(c, t, events)
                body = await until(c, lambda _, b: b["windows"]["today"].get("handled") == 1)
                assert (body["scope"], body["key"]) == ("agent", "ann")
                today = body["windows"]["today"]
                assert (today["answered"], today["avg_talk_s"], today["avg_acw_s"]) == \
                    (1, 95.0, 20.0)  # fmt: skip
                health = await core.health()
                first = core.live.window("day", now, by="agent")[1]["ann"]
            assert health.store["db"]["sign_ins"] == 1
            assert health.store["session"]["duplicates"] >= 1  # the repeat, dropped
            async with CoreService(cfg) as again:  # the retained copy comes once more
                await asyncio.wait_for(again.online.wait(), 10)

                async def repeats() -> int:
                    return int((await again.health()).store["session"]["duplicates"])

                deadline = time.monotonic() + 10
                while await repeats() < 1:
                    assert time.monotonic() < deadline, "the retained sign-in was not seen"
                    await asyncio.sleep(0.1)
                health = await again.health()
                second = again.live.window("day", now, by="agent")[1]["ann"]
            assert health.store["db"]["sign_ins"] == 1
            assert again.live.counts["sign_ins"] == 1
    finally:
        async with client(mqtt_broker) as c:  # no retained sign-in outlives the test
            await c.publish(t.topic("seat_agent", seat="s1"), b"", qos=1, retain=True)
    running = {"logged_in_s", "available_s", "occupancy"}  # Ready time runs to each's now
    assert {k: v for k, v in asdict(second).items() if k not in running} == \
        {k: v for k, v in asdict(first).items() if k not in running}  # fmt: skip
    assert (second.handled, second.avg_talk_s, second.avg_acw_s) == (1, 95.0, 20.0)
