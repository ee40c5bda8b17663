"""The core's KPIs of a generated day against a second, plain computation (issue 18).

The day (tools/trace.py, with transfers, consultations, an outbound call and a snapshot
added at two seats of their own) goes the real way: published on a real mosquitto as the
PBX and the edge gateway publish it (docs/mqtt.md), out of order and with repeats, taken by
a real core worker (gateway/core/service.py) into a real SQLite store. Its answers, the
daily report and the interval figures read from that store (gateway/core/queries.py) and
the live `today` figures it publishes on `kpi/{scope}/{key}`, are held, figure by figure,
per site, queue, seat and agent and per day, hour and 15 minutes, against
tests/core/kpi_reference.py: docs/kpi.md implemented the plainest way, from the events
alone. A difference names the figure, the key, the bucket and both values.

Agents sign in to the seats as the API publishes it (`seat/{seat}/agent`, retained; issue
19): they move between seats during the day, one signs in at a seat mid-call (the call stays
with who answered it), and one seat has nobody for part of the day (its calls and time are
no agent's: `unattributed_*`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from gateway.contract.topics import Topics
from gateway.core.kpi import By, Kpis, Window
from gateway.core.queries import daily_report, interval_kpis
from gateway.core.report import DailyReport, Targets
from gateway.core.service import CoreService
from gateway.core.settings import CoreSettings
from tests.core.kpi_reference import FIGURES, Day
from tests.stuck import run
from tools.trace import generate, shuffled

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2027, 1, 15)
MIDNIGHT = datetime(2027, 1, 15, tzinfo=TZ).timestamp()
START = MIDNIGHT + 9 * 3600  # the seats' day: 09:00 to about 15:00 local
NOW = MIDNIGHT + 20 * 3600  # the worker's clock at the start of the test: 20:00 local
RING_LIMIT, SL_T = 2, 15.0  # the site's targets: not the defaults (3, 20)
LIVE_DECIMALS = 4  # docs/core.md, Live KPIs: the published figures are rounded


# --- the day -----------------------------------------------------------------------------


class _Call:
    def __init__(self, call: int, queue: str, t0: float, direction: str = "inbound") -> None:
        self.call, self.queue, self.t0, self.direction = call, queue, t0, direction
        self.events: list[dict[str, Any]] = []

    def __call__(self, kind: str, t: float, **fields: Any) -> _Call:
        step = len(self.events) + 1
        event = {"v": 1, "id": f"p1-{self.call}-{step}", "pbx": "p1", "call": self.call,
                 "step": step, "type": kind, "t": self.t0 + t, "direction": self.direction,
                 "queue": self.queue, "seat": None, "number": "***1234", "arrived": self.t0,
                 "wait_s": None, "ring_s": None, "rings": None, "hold_s": None,
                 "talk_s": None, "by": None, "target": None, "campaign": None,
                 "detail": ""}  # fmt: skip
        event.update(fields)
        self.events.append(event)
        return self


class _Seat:
    def __init__(self, seat: str, board: str, t0: float) -> None:
        self.seat, self.board, self.t0, self.seq = seat, board, t0, 0
        self.events: list[dict[str, Any]] = []

    def _add(self, t: float, kind: str, data: dict[str, Any]) -> _Seat:
        self.seq += 1
        self.events.append({"v": 1, "id": f"{self.board}-1-{self.seq}", "seat": self.seat,
                            "gateway": "gw1", "board": self.board, "boot": 1,
                            "seq": self.seq, "t": self.t0 + t, "type": kind,
                            "data": data})  # fmt: skip
        return self

    def state(self, t: float, state: str, call: int | None = None,
              reason: str | None = None) -> _Seat:  # fmt: skip
        return self._add(t, "event", {"event": "state", "state": state, "reason": reason,
                                      "call": call, "a": 1, "b": 0})  # fmt: skip

    def hello(self, t: float) -> _Seat:
        return self._add(t, "hello", {"protocol": 1, "firmware": "x", "board_name": "pico"})

    def snapshot(self, t: float, state: str, secs: int, reason: str | None = None) -> _Seat:
        return self._add(t, "snapshot", {"state": state, "reason": reason, "call": None,
                                         "secs": secs, "help": False, "off_hook": False,
                                         "hold_over_limit": False, "pending_state": None,
                                         "pending_reason": None, "misses": 0,
                                         "dropped": 0})  # fmt: skip


def transfers_and_more() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What tools/trace.py does not generate, at seats x1 and x2 from 10:50 local, across a
    15-minute and an hour boundary: consultative transfers (completed, called off, the
    caller gone during the consultation), a blind transfer to a seat that rings out and
    returns, one to a queue that comes back to the same seat with a zero-length ACW, one
    to a seat that answers, an abandon while ringing, a release on hold, outbound calls,
    Not Ready without a reason, a hello and a snapshot that re-times a state."""
    b = MIDNIGHT + 10 * 3600 + 50 * 60
    consult = {"kind": "consultative", "seat": "x2", "queue": None, "note": "refund"}
    blind_x2 = {"kind": "blind", "seat": "x2", "queue": None, "note": ""}
    to_q2 = {"kind": "blind", "seat": None, "queue": "q2", "note": "back to you"}
    calls = [
        _Call(9001, "q1", b)("enter_queue", 0)("offer", 1, seat="x1", wait_s=1.0)
        ("answer", 3, seat="x1", wait_s=3.0, ring_s=2.0, rings=1)
        ("transfer", 30, seat="x1", target=consult)("hold", 30, seat="x1")
        ("offer", 30, seat="x2", target=consult)
        ("answer", 35, seat="x2", target=consult, ring_s=5.0, rings=1)
        ("unhold", 50, seat="x1", hold_s=20.0, detail="transfer completed")
        ("release", 50, seat="x1", talk_s=47.0, hold_s=20.0, by="agent", detail="transferred")
        ("release", 110, seat="x2", talk_s=75.0, hold_s=20.0, by="caller"),
        _Call(9002, "q1", b + 200)("enter_queue", 0)("offer", 1, seat="x1", wait_s=1.0)
        ("answer", 2, seat="x1", wait_s=2.0, ring_s=1.0, rings=1)
        ("transfer", 10, seat="x1", target=consult)("hold", 10, seat="x1")
        ("offer", 10, seat="x2", target=consult)
        ("answer", 14, seat="x2", target=consult, ring_s=4.0, rings=1)
        ("release", 30, seat="x2", talk_s=16.0, hold_s=0.0, by="agent",
         detail="consultation ended")
        ("unhold", 30, seat="x1", hold_s=20.0)
        ("release", 100, seat="x1", talk_s=98.0, hold_s=20.0, by="agent"),
        _Call(9003, "q2", b + 400)("enter_queue", 0)("offer", 1, seat="x1", wait_s=1.0)
        ("answer", 2, seat="x1", wait_s=2.0, ring_s=1.0, rings=1)
        ("transfer", 10, seat="x1", target=consult)("hold", 10, seat="x1")
        ("offer", 10, seat="x2", target=consult)
        ("answer", 15, seat="x2", target=consult, ring_s=5.0, rings=1)
        ("release", 40, seat="x2", talk_s=25.0, hold_s=0.0, by="caller",
         detail="the caller hung up")
        ("release", 40, seat="x1", talk_s=38.0, hold_s=30.0, by="caller"),
        _Call(9004, "q1", b + 600)("enter_queue", 0)("offer", 1, seat="x1", wait_s=1.0)
        ("answer", 2, seat="x1", wait_s=2.0, ring_s=1.0, rings=1)
        ("transfer", 10, seat="x1", target=blind_x2)("hold", 10, seat="x1")
        ("offer", 10, seat="x2", target=blind_x2)
        ("ring_no_answer", 35, seat="x2", target=blind_x2, ring_s=25.0, rings=5,
         detail="rang out")
        ("transfer_return", 35, seat="x1", target=blind_x2, detail="rang out")
        ("unhold", 35, seat="x1", hold_s=25.0, detail="transfer returned")
        ("release", 62, seat="x1", talk_s=60.0, hold_s=25.0, by="caller"),
        _Call(9005, "q1", b + 800)("enter_queue", 0)("offer", 1, seat="x1", wait_s=1.0)
        ("answer", 5, seat="x1", wait_s=5.0, ring_s=4.0, rings=1)
        ("transfer", 65, seat="x1", target=to_q2)
        ("release", 65, seat="x1", talk_s=60.0, hold_s=0.0, by="agent", detail="transferred")
        ("enter_queue", 65, queue="q2")
        ("offer", 150, seat="x1", queue="q2", wait_s=85.0)
        ("answer", 153, seat="x1", queue="q2", wait_s=88.0, ring_s=3.0, rings=1)
        ("release", 193, seat="x1", queue="q2", talk_s=40.0, hold_s=0.0, by="caller"),
        _Call(9006, "q2", b + 1100)("enter_queue", 0)("offer", 1, seat="x1", wait_s=1.0)
        ("answer", 4, seat="x1", wait_s=4.0, ring_s=3.0, rings=1)
        ("transfer", 20, seat="x1", target=blind_x2)("hold", 20, seat="x1")
        ("offer", 20, seat="x2", target=blind_x2)
        ("answer", 25, seat="x2", target=blind_x2, ring_s=5.0, rings=1)
        ("unhold", 25, seat="x1", hold_s=5.0)
        ("release", 25, seat="x1", talk_s=21.0, hold_s=5.0, by="agent", detail="transferred")
        ("release", 85, seat="x2", talk_s=60.0, hold_s=5.0, by="caller"),
        _Call(9007, "q1", b + 1300)("enter_queue", 0)("offer", 2, seat="x2", wait_s=2.0)
        ("abandon", 30, seat="x2", wait_s=30.0, by="caller"),
        _Call(9008, "q2", b + 1400)("enter_queue", 0)("offer", 2, seat="x2", wait_s=2.0)
        ("answer", 25, seat="x2", wait_s=25.0, ring_s=23.0, rings=4)
        ("hold", 40, seat="x2")
        ("release", 85, seat="x2", talk_s=60.0, hold_s=45.0, by="caller"),
        _Call(9009, "renewals", b + 1600, "outbound")
        ("dial", 0, seat="x1", campaign="renewals")
        ("answer", 10, seat="x1", ring_s=10.0, rings=2, campaign="renewals")
        ("hold", 20, seat="x1")("unhold", 30, seat="x1", hold_s=10.0)
        ("release", 100, seat="x1", talk_s=90.0, hold_s=10.0, by="agent"),
        _Call(9010, "renewals", b + 1750, "outbound")("dial", 0, campaign="renewals")
        ("no_answer", 30, ring_s=30.0, rings=6, campaign="renewals"),
    ]  # fmt: skip
    x1 = (_Seat("x1", "5EA7F001", b).state(-600, "ready")
          .state(1, "ringing", 9001).state(3, "talking", 9001).state(30, "hold", 9001)
          .state(50, "acw", 9001).state(70, "ready")
          .state(201, "ringing", 9002).state(202, "talking", 9002).state(210, "hold", 9002)
          .state(230, "talking", 9002).state(300, "acw", 9002).state(345, "ready")
          .state(401, "ringing", 9003).state(402, "talking", 9003).state(410, "hold", 9003)
          .state(440, "acw", 9003).state(470, "ready")
          .state(601, "ringing", 9004).state(602, "talking", 9004).state(610, "hold", 9004)
          .state(635, "talking", 9004).state(662, "acw", 9004).state(700, "ready")
          .state(800.8, "ringing", 9005).state(804.8, "talking", 9005)
          .state(864.8, "acw", 9005).state(864.8, "ready")  # WRAP at once: no ACW time
          .state(949.8, "ringing", 9005).state(952.8, "talking", 9005)
          .state(992.8, "acw", 9005).state(1022.8, "ready")
          .state(1101, "ringing", 9006).state(1104, "talking", 9006)
          .state(1120, "hold", 9006).state(1125, "acw", 9006).state(1150, "ready")
          .state(1610, "talking", 9009).state(1620, "hold", 9009)
          .state(1630, "talking", 9009).state(1700, "acw", 9009).state(1720, "ready")
          .state(1800, "not_ready").state(1900, "ready")  # no reason given: "none"
          .state(2500, "logged_out"))  # fmt: skip
    x2 = (_Seat("x2", "5EA7F002", b).hello(-700).state(-600, "ready")
          .state(30, "ringing", 9001).state(35, "talking", 9001).state(110, "acw", 9001)
          .state(140, "ready")
          .state(210, "ringing", 9002).state(214, "talking", 9002).state(230, "acw", 9002)
          .state(240, "ready")
          .state(410, "ringing", 9003).state(415, "talking", 9003).state(440, "acw", 9003)
          .state(450, "ready")
          .state(610, "ringing", 9004).state(635, "not_ready", reason="no_answer")
          .state(680, "ready")
          .state(1120, "ringing", 9006).state(1125, "talking", 9006)
          .state(1185, "acw", 9006).state(1200, "ready")
          .state(1302, "ringing", 9007).state(1330, "ready")
          .state(1402, "ringing", 9008).state(1425, "talking", 9008)
          .state(1440, "hold", 9008).state(1485, "acw", 9008).state(1500, "ready")
          .state(2000, "not_ready", reason="meal")
          .snapshot(2300, "not_ready", 120, reason="break")  # break since 2180
          .state(2400, "logged_out"))  # fmt: skip
    return [e for c in calls for e in c.events], x1.events + x2.events


def sign_ins(seats: list[str]) -> list[dict[str, Any]]:
    """Who is signed in where, as the API publishes it (SeatAgent payloads), in time order.

    - The trace's seats: agent ag<i> at seat i from 08:00; at 11:30 every agent moves one
      seat on (the last seat's agent to the first), while calls and states go on; the second
      seat has nobody from 13:00.
    - x1: ann from 08:00; at x1's call 9006, after its answer and before its hold, bob signs
      in at x1 and ann moves to x2 (call 9006's leg at x1, its hold and ACW stay ann's, the
      seat's time from then on is bob's). x2 has nobody until then: its calls are no agent's.
    """
    b = MIDNIGHT + 10 * 3600 + 50 * 60
    changes: list[tuple[str, str | None, float, str]] = []
    n = len(seats)
    for i, seat in enumerate(seats):
        changes.append((seat, f"ag{i}", MIDNIGHT + 8 * 3600, "self"))
        changes.append((seat, f"ag{(i - 1) % n}", MIDNIGHT + 11.5 * 3600, "moved"))
    changes.append((seats[1], None, MIDNIGHT + 13 * 3600, "supervisor"))
    changes.append(("x1", "ann", MIDNIGHT + 8 * 3600, "self"))
    changes.append(("x1", "bob", b + 1110, "self"))
    changes.append(("x2", "ann", b + 1110, "self"))
    out = []
    for k, (seat, agent, t, cause) in enumerate(sorted(changes, key=lambda c: c[2])):
        out.append({"v": 1, "id": f"api-{k + 1}", "seat": seat, "agent": agent,
                    "name": None if agent is None else agent.title(), "t": t, "by": "sup.li",
                    "cause": cause, "previous": None})  # fmt: skip
    return out


def the_day() -> tuple[list[tuple[str, dict[str, Any]]], float]:
    """(kind, payload) in time order, and the end of the day's events."""
    trace = generate(seats=6, queues=3, start=START, hours=6, seed=18)
    calls, seats = transfers_and_more()
    events = trace.events + [("call", e) for e in calls] + [("seat", e) for e in seats]
    events.sort(key=lambda kind_payload: kind_payload[1]["t"])
    return events, trace.end


# --- through the core ----------------------------------------------------------------------


@dataclasses.dataclass
class Answers:
    reference: Day
    report: DailyReport
    intervals: Mapping[tuple[By, int], Sequence[tuple[Window, Mapping[str, Kpis]]]]
    live_diffs: list[str]  # the live `today` figures' differences, when they had settled


async def _through_the_core(broker: Any, store: str, events: list[tuple[str, dict[str, Any]]],
                            changes: list[dict[str, Any]],
                            reference: Day) -> tuple[float, dict[str, Any], list[str]]:  # fmt: skip
    site = "ref" + uuid.uuid4().hex[:8]
    topics = Topics(site=site)
    offset = NOW - time.time()

    def clock() -> float:
        return time.time() + offset

    options: dict[str, Any] = dict(
        site=site, store=store, timezone="Asia/Shanghai",
        broker={"host": broker.host, "port": broker.port},
        targets={"ring_limit": RING_LIMIT, "sl_threshold_s": SL_T},
        kpi_interval_s=0.5, agent_kpi_interval_s=0.5, health_interval_s=0.5,
        batch_wait_s=0.01, settle_s=3.0)  # fmt: skip
    cfg = CoreSettings(**options)
    unique = len({p["id"] for _, p in events})
    repeats = random.Random(5).sample(events, 12)
    mixed = list(shuffled(events + repeats, within=20, seed=4))
    live: dict[str, dict[str, Any]] = {"site": {}, "queue": {}, "agent": {}, "seat": {}}
    async with CoreService(cfg, clock=clock) as core, \
            aiomqtt.Client(broker.host, broker.port, identifier=f"watch-{site}") as watch, \
            aiomqtt.Client(broker.host, broker.port, identifier=f"edge-{site}") as edge, \
            aiomqtt.Client(broker.host, broker.port, identifier=f"pbx-{site}") as pbx:  # fmt: skip
        await asyncio.wait_for(core.online.wait(), 20)
        await watch.subscribe(topics.subscription("kpi_live"), qos=0)

        async def follow() -> None:
            async for m in watch.messages:
                body = json.loads(m.payload)
                live[body["scope"]][body["key"]] = body["windows"]["today"]

        follower = asyncio.create_task(follow())
        # the API's sign-ins first, retained; the last one twice (a reconnect's copy)
        for c in [*changes, changes[-1]]:
            await pbx.publish(topics.topic("seat_agent", seat=c["seat"]), json.dumps(c),
                              qos=1, retain=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while (await core.health()).store["db"]["sign_ins"] < len(changes):
            assert time.monotonic() < deadline, "the core did not store the sign-ins"
            await asyncio.sleep(0.1)
        for kind, p in mixed:  # as the edge gateway and the PBX publish them
            if kind == "seat":
                await edge.publish(topics.seat_event(p["seat"]), json.dumps(p), qos=1)
            else:
                await pbx.publish(topics.topic("call_event", call=str(p["call"])),
                                  json.dumps(p), qos=1)  # fmt: skip
        deadline = time.monotonic() + 60
        while (await core.health()).store["db"]["events"] < unique:
            assert time.monotonic() < deadline, "the core did not store the day within 60 s"
            await asyncio.sleep(0.2)
        health = await core.health()
        assert health.store["db"]["rejected_total"] == 0, health.store
        # the live figures settle (settle_s, then the next publication): until they match
        # the reference, or 30 s; what differs then is the difference
        want = {by: reference.kpis(MIDNIGHT, MIDNIGHT + 86400, by=by, ring_limit=RING_LIMIT,
                                   sl_threshold_s=SL_T, site=site)
                for by in ("site", "queue", "agent", "seat")}  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            diffs = [d for by in want for d in live_differences(by, live[by], want[by])]
            if not diffs or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        follower.cancel()
        now = clock()
        # the retained copy handed over again is a repeat, not a change
        assert core.live.counts["sign_ins"] == len(changes)
        assert health.store["db"]["sign_ins"] == len(changes)
        for c in changes:  # the retained sign-ins must not outlive the test's site
            await pbx.publish(topics.topic("seat_agent", seat=c["seat"]), b"", qos=1,
                              retain=True)  # fmt: skip
    return now, {"site": site}, diffs


def live_differences(by: str, got: Mapping[str, Mapping[str, Any]],
                     want: Mapping[str, Mapping[str, Any]]) -> list[str]:  # fmt: skip
    published = {k: v for k, v in got.items() if v}  # {}: the key is not in `today`
    rounded = {k: {n: _rounded(v) for n, v in f.items()} for k, f in want.items()}
    return differences(f"live today {by}", published, rounded, rel=0.0,
                       abs_=0.5 * 10**-LIVE_DECIMALS + 1e-9)  # fmt: skip


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, LIVE_DECIMALS)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    return v


@pytest.fixture(scope="module")
def answers(mqtt_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Answers:
    events, _ = the_day()
    changes = sign_ins(sorted({p["seat"] for k, p in events if k == "seat"} - {"x1", "x2"}))
    store = f"sqlite:///{tmp_path_factory.mktemp('reference')}/core.db"
    # the reference needs `until` before the core has answered: all seats are logged out
    # hours before it, so the time after the last event changes no figure
    reference0 = Day([p for k, p in events if k == "call"], [p for k, p in events if k == "seat"],
                     until=NOW, sign_ins=changes)  # fmt: skip
    now, info, live_diffs = run(lambda: _through_the_core(mqtt_broker, store, events, changes,
                                                          reference0), timeout=150)  # fmt: skip
    site = info["site"]
    targets = Targets(ring_limit=RING_LIMIT, sl_threshold_s=SL_T)
    report = daily_report(store, DAY, TZ, site=site, targets=targets, now=now)
    scopes: tuple[By, ...] = ("site", "queue", "agent", "seat")
    intervals = {(by, size): interval_kpis(store, DAY, TZ, by=by, size_s=size,
                                           site=site, targets=targets, now=now)
                 for by in scopes for size in (900, 3600)}  # fmt: skip
    reference = Day([p for k, p in events if k == "call"], [p for k, p in events if k == "seat"],
                    until=min(now, MIDNIGHT + 86400 + 3600), sign_ins=changes)  # fmt: skip
    return Answers(reference, report, intervals, live_diffs)


# --- comparing ---------------------------------------------------------------------------


def _same(x: Any, y: Any, rel: float, abs_: float) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, dict) or isinstance(y, dict):
        return isinstance(x, dict) and isinstance(y, dict) and x.keys() == y.keys() and \
            all(_same(x[k], y[k], rel, abs_) for k in x)  # fmt: skip
    return math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_)


def differences(where: str, got: Mapping[str, Mapping[str, Any]],
                want: Mapping[str, Mapping[str, Any]], *, rel: float = 1e-9,
                abs_: float = 1e-9) -> list[str]:  # fmt: skip
    """Every figure that differs, as `where key figure: core X, reference Y`."""
    out = []
    for key in sorted(set(got) | set(want)):
        if key not in want:
            out.append(f"{where} {key}: listed by the core, not by the reference")
            continue
        if key not in got:
            out.append(f"{where} {key}: listed by the reference, not by the core")
            continue
        for name in FIGURES:
            x, y = got[key].get(name), want[key][name]
            if not _same(x, y, rel, abs_):
                out.append(f"{where} {key} {name}: core {x!r}, reference {y!r}")
    return out


def figures(k: Kpis) -> dict[str, Any]:
    return dataclasses.asdict(k)


def local(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).strftime("%H:%M")


def our_buckets(size: int) -> list[tuple[float, float]]:
    return [(MIDNIGHT + i, MIDNIGHT + i + size) for i in range(0, 86400, size)]


def series_differences(what: str, by: str, size: int,
                       got: Sequence[tuple[Window, Mapping[str, Kpis]]], day: Day,
                       site: str) -> list[str]:  # fmt: skip
    windows = [(w.start, w.end) for w, _ in got]
    if windows != our_buckets(size):
        return [f"{what} {by} {size} s: buckets {windows[:3]}..., not local {size} s buckets"]
    out = []
    for w, per_key in got:
        want = day.kpis(w.start, w.end, by=by, ring_limit=RING_LIMIT, sl_threshold_s=SL_T,
                        site=site)  # fmt: skip
        out += differences(f"{what} {by} {local(w.start)}-{local(w.end)}",
                           {k: figures(v) for k, v in per_key.items()}, want)  # fmt: skip
    return out


def report_series(report: DailyReport, by: str, size: int
                  ) -> list[tuple[Window, Mapping[str, Kpis]]]:  # fmt: skip
    site = report.site
    series: dict[tuple[str, int], list[tuple[Window, Mapping[str, Kpis]]]] = {
        ("site", 900): [(w, {site: k}) for w, k in report.quarters],
        ("site", 3600): [(w, {site: k}) for w, k in report.hours],
        ("queue", 900): list(report.queue_quarters),
        ("queue", 3600): list(report.queue_hours),
        ("agent", 900): list(report.agent_quarters),
        ("agent", 3600): list(report.agent_hours),
    }
    return series[(by, size)]


def fail_on(diffs: list[str]) -> None:
    if diffs:
        shown = "\n".join(diffs[:40])
        more = f"\n... and {len(diffs) - 40} more" if len(diffs) > 40 else ""
        pytest.fail(f"{len(diffs)} differences from the reference:\n{shown}{more}",
                    pytrace=False)  # fmt: skip


# --- the tests ----------------------------------------------------------------------------


def test_the_day_has_what_the_reference_must_cover(answers: Answers) -> None:
    site = answers.report.site
    day = answers.reference.kpis(MIDNIGHT, MIDNIGHT + 86400, by="site", ring_limit=RING_LIMIT,
                                 sl_threshold_s=SL_T, site=site)[site]  # fmt: skip
    assert day["answered"] > 200 and day["abandoned"] > 0 and day["rona"] > 1
    assert day["holds"] > 20 and day["transfers"] >= 6 and day["outbound_handled"] == 1
    assert day["avg_acw_s"] is not None and day["not_ready_s"]
    queues = answers.reference.kpis(MIDNIGHT, MIDNIGHT + 86400, by="queue", site=site)
    assert set(queues) == {"q1", "q2", "q3", "renewals"}
    # what a supervisor reads per agent: ann's day is x1's morning and x2's afternoon, ag0
    # worked two seats; x2's early calls and the second seat's last hours were nobody's
    agents = answers.report.agents
    assert {"ann", "bob", "ag0", "ag5"} <= set(agents) and "x1" not in agents
    seats = answers.report.seats
    assert agents["ann"].handled > 0 and agents["bob"].handled >= 0
    assert agents["ann"].logged_in_s is not None and seats["x1"].logged_in_s is not None
    ann_x1 = seats["x1"].logged_in_s - (agents["bob"].logged_in_s or 0.0)
    assert (agents["ann"].logged_in_s or 0.0) > ann_x1 > 0  # x1, then x2
    assert day["unattributed_handled"] > 0 and day["unattributed_s"] > 0
    assert answers.report.site_kpis.unattributed_handled == day["unattributed_handled"]
    assert seats["x2"].unattributed_handled > 0 and seats["x1"].unattributed_handled == 0
    assert sum(k.handled for k in agents.values()) < answers.report.site_kpis.handled


@pytest.mark.parametrize("by", ["site", "queue", "agent", "seat"])
def test_the_daily_report_s_day_is_the_reference_s(answers: Answers, by: str) -> None:
    r = answers.report
    got = {"site": {r.site: r.site_kpis}, "queue": r.queues, "agent": r.agents,
           "seat": r.seats}[by]
    if (r.window.start, r.window.end) != (MIDNIGHT, MIDNIGHT + 86400):
        pytest.fail(f"the report's day is {r.window}, not the local day")
    want = answers.reference.kpis(MIDNIGHT, MIDNIGHT + 86400, by=by, ring_limit=RING_LIMIT,
                                  sl_threshold_s=SL_T, site=r.site)  # fmt: skip
    fail_on(differences(f"report day {by}", {k: figures(v) for k, v in got.items()}, want))


@pytest.mark.parametrize("size", [3600, 900], ids=["hour", "15min"])
@pytest.mark.parametrize("by", ["site", "queue", "agent"])
def test_the_daily_report_s_intervals_are_the_reference_s(answers: Answers, by: str,
                                                           size: int) -> None:  # fmt: skip
    r = answers.report
    fail_on(series_differences("report", by, size, report_series(r, by, size),
                               answers.reference, r.site))  # fmt: skip


@pytest.mark.parametrize("size", [3600, 900], ids=["hour", "15min"])
@pytest.mark.parametrize("by", ["site", "queue", "agent", "seat"])
def test_interval_kpis_are_the_reference_s(answers: Answers, by: By, size: int) -> None:
    fail_on(series_differences("interval_kpis", by, size, answers.intervals[(by, size)],
                               answers.reference, answers.report.site))  # fmt: skip


def test_the_live_today_figures_are_the_reference_s(answers: Answers) -> None:
    fail_on(answers.live_diffs)
