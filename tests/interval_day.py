"""A small stored day for the per-queue and per-agent intervals (issue 18): two queues,
two agents, calls across two hours, on Asia/Shanghai's clock, so the buckets are local.

2026-01-16, seats `a1` and `s2`, where the agents of the same ids are signed in from 09:00
(`a1` is the agent account's agent id in tests/api):

| call | queue | seat | enters | wait_s | rings | talk_s | hold | ACW |
|---|---|---|---|---|---|---|---|---|
| 1 | support | a1 | 10:05 | 8 | 1 | 120 | | 30 |
| 2 | sales | s2 | 10:40 | 25 | 3 | 200 | 20 s | 40 |
| 3 | support | s2 | 11:10 | 12 | 2 | 90 | | 20 |
| 4 | sales | a1 | 11:50 | 30 | 4 | 60 | | 10 |
| 5 | support | | 11:20 | abandoned after 15 s |
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.contract.topics import Topics
from gateway.core.store import open_store

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 1, 16)
SITE = "hq"
DAY_END = datetime(2026, 1, 17, tzinfo=TZ).timestamp()

# (call, queue, seat, enters hh:mm, wait_s, rings, talk_s, hold_s, acw_s); seat None: abandon
CALLS = (
    (1, "support", "a1", "10:05", 8.0, 1, 120.0, 0.0, 30.0),
    (2, "sales", "s2", "10:40", 25.0, 3, 200.0, 20.0, 40.0),
    (3, "support", "s2", "11:10", 12.0, 2, 90.0, 0.0, 20.0),
    (4, "sales", "a1", "11:50", 30.0, 4, 60.0, 0.0, 10.0),
    (5, "support", None, "11:20", 15.0, None, 0.0, 0.0, 0.0),
)


def at(hhmm: str) -> float:
    return datetime.combine(DAY, datetime.strptime(hhmm, "%H:%M").time(), tzinfo=TZ).timestamp()


def events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(call events, seat events) of the day, as dicts (docs/mqtt.md)."""
    calls: list[dict[str, Any]] = []
    seats: dict[str, list[tuple[float, str, int | None]]] = {
        "a1": [(at("09:00"), "ready", None)], "s2": [(at("09:00"), "ready", None)]}  # fmt: skip
    for call, queue, seat, enters, wait, rings, talk, hold, acw in CALLS:
        t0 = at(enters)
        steps: list[tuple[str, float, dict[str, Any]]] = [("enter_queue", t0, {})]
        if seat is None:
            steps.append(("abandon", t0 + wait, {"wait_s": wait, "by": "caller"}))
        else:
            answer, end = t0 + wait, t0 + wait + talk
            steps += [("offer", t0 + 1, {"seat": seat, "wait_s": 1.0}),
                      ("answer", answer, {"seat": seat, "wait_s": wait, "rings": rings,
                                          "ring_s": wait - 1})]  # fmt: skip
            if hold:
                steps += [
                    ("hold", answer + 10, {"seat": seat}),
                    ("unhold", answer + 10 + hold, {"seat": seat, "hold_s": hold}),
                ]
            steps.append(("release", end, {"seat": seat, "talk_s": talk, "hold_s": hold,
                                           "by": "caller"}))  # fmt: skip
            seats[seat] += [(t0 + 1, "ringing", call), (answer, "talking", call)]
            if hold:
                seats[seat] += [(answer + 10, "hold", call), (answer + 10 + hold, "talking", call)]
            seats[seat] += [(end, "acw", call), (end + acw, "ready", None)]
        for step, (kind, t, extra) in enumerate(steps, 1):
            calls.append({"v": 1, "id": f"p1-{call}-{step}", "pbx": "p1", "call": call,
                          "step": step, "type": kind, "t": t, "direction": "inbound",
                          "queue": queue, "seat": None, "number": "***1234", "arrived": t0,
                          "detail": "", **extra})  # fmt: skip
    seat_events = []
    for n, (seat, changes) in enumerate(sorted(seats.items()), 1):
        changes.append((at("13:00"), "logged_out", None))
        for seq, (t, state, on_call) in enumerate(sorted(changes, key=lambda c: c[0]), 1):
            seat_events.append({"v": 1, "id": f"5EA7000{n}-1-{seq}", "seat": seat,
                                "gateway": "gw1", "board": f"5EA7000{n}", "boot": 1,
                                "seq": seq, "t": t, "type": "event",
                                "data": {"event": "state", "state": state, "reason": None,
                                         "call": on_call, "a": 1, "b": 0}})  # fmt: skip
    return calls, seat_events


def sign_ins() -> list[dict[str, Any]]:
    """Who is signed in where (seat/{seat}/agent payloads): agent a1 at seat a1, s2 at s2."""
    return [{"v": 1, "id": f"api-{seat}", "seat": seat, "agent": seat, "name": None,
             "t": at("09:00"), "by": "sup", "cause": "self", "previous": None}
            for seat in ("a1", "s2")]  # fmt: skip


def fill(store_url: str | Path) -> None:
    """Store the day as the core would."""
    topics = Topics(site=SITE)
    calls, seats = events()
    messages = [(topics.topic("call_event", call=str(e["call"])), json.dumps(e).encode())
                for e in calls]  # fmt: skip
    messages += [(topics.topic("seat_agent", seat=c["seat"]), json.dumps(c).encode())
                 for c in sign_ins()]  # fmt: skip
    messages += [(topics.seat_event(e["seat"]), json.dumps(e).encode()) for e in seats]
    with open_store(store_url, topics=topics, clock=lambda: DAY_END) as store:
        result = store.ingest(messages)
        assert result.stored == len(messages), result
