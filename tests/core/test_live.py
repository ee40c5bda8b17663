"""Live KPIs against the batch formulas: the same generated day, bucket by bucket.

kpi.kpis() is checked on hand-computed traces (test_kpi.py); here the live projector must
give the same figures for every 15-minute, hourly and daily bucket and every agent, queue
and the site, whatever the order and the repeats, as its events arrive one by one."""

from __future__ import annotations

import dataclasses
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.core.kpi import By, Kpis, SignIns, Window, buckets, kpis, state_intervals
from gateway.core.live import LiveKpis
from tools.trace import Trace, generate, shuffled

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
TZ = ZoneInfo("Asia/Shanghai")
BYS: tuple[By, ...] = ("seat", "agent", "queue", "site")


@pytest.fixture(scope="module")
def trace() -> Trace:
    return generate(seats=12, queues=3, start=T0, hours=3, seed=7)


def models(events: Any) -> list[SeatEvent | CallEvent]:
    return [SeatEvent.model_validate(p) if k == "seat" else CallEvent.model_validate(p)
            for k, p in events]  # fmt: skip


def sign_ins(seats: list[str]) -> list[tuple[str, str | None, float, str]]:
    """Agents at the trace's seats: one each from before the day, except every fourth seat
    (nobody: its events are no agent's); at T0 + 1.5 h every agent moves one seat on, calls
    and states going on (seat time splits there, a call stays with who answered it); at
    T0 + 2 h the first seat's agent signs out."""
    n = len(seats)
    out: list[tuple[str, str | None, float, str]] = []
    for i, seat in enumerate(seats):
        out.append((seat, None if i % 4 == 3 else f"a{i}", T0 - 7200, f"in-{seat}"))
        out.append((seat, None if i % 4 == 2 else f"a{(i + 1) % n}", T0 + 5400,
                    f"move-{seat}"))  # fmt: skip
    out.append((seats[0], None, T0 + 7200, f"out-{seats[0]}"))
    return out


def trace_sign_ins(trace: Trace) -> list[tuple[str, str | None, float, str]]:
    return sign_ins(sorted({p["seat"] for p in trace.seat_events()}))


def fed(events: Any, *, now: float, settle_s: float = 10.0) -> LiveKpis:
    live = LiveKpis(tz=TZ)
    live.settle_s = settle_s
    seats = sorted({p["seat"] for kind, p in events if kind == "seat"})
    for change in sign_ins(seats):
        live.sign_in(*change)
    for e in models(events):
        live.feed([e])
        live.advance(e.t)
    live.advance(now)
    return live


def batch(trace: Trace, granularity: str, *, by: By) -> dict[float, dict[str, Kpis]]:
    size = {"15min": 900, "hour": 3600, "day": 86400}[granularity]
    intervals = state_intervals(trace.seat_events(), until=trace.end)
    signed = SignIns(trace_sign_ins(trace))
    return {w.start: kpis(trace.call_events(), intervals, window=w, by=by, sign_ins=signed)
            for w in buckets(trace.start, trace.end, size, tz=TZ)}  # fmt: skip


def same(a: dict[str, Kpis], b: dict[str, Kpis], where: str) -> None:
    assert sorted(a) == sorted(b), where
    for key in a:
        for f in dataclasses.fields(Kpis):
            x, y = getattr(a[key], f.name), getattr(b[key], f.name)
            if isinstance(x, dict):
                assert x.keys() == y.keys(), f"{where} {key} {f.name}"
                assert list(x.values()) == pytest.approx(list(y.values())), f"{where} {key}"
            else:
                assert x == pytest.approx(y), f"{where} {key} {f.name}: live {x}, batch {y}"


def check_all(live: LiveKpis, trace: Trace) -> int:
    checked = 0
    for granularity in ("15min", "hour", "day"):
        for by in BYS:
            for start, expected in batch(trace, granularity, by=by).items():
                _, got = live.window(granularity, start, by=by)  # type: ignore[arg-type]
                same(got, expected, f"{granularity} {by} {start - T0:+.0f}")
                checked += 1
    return checked


def test_in_order_the_live_figures_are_the_batch_figures(trace: Trace) -> None:
    live = fed(trace.events, now=trace.end)
    assert check_all(live, trace) > 30
    calls = len({p["call"] for p in trace.call_events()})
    assert live.counts["calls"] == calls
    assert live.open_calls() == 0
    day = live.window("day", T0, by="site")[1]["site"]
    assert day.answered > 100 and day.abandoned > 0 and day.rona > 0 and day.holds > 0
    # the agents' figures, and what was nobody's: seats without an agent handled calls
    agents = live.window("day", T0, by="agent")[1]
    assert day.unattributed_handled > 0 and day.unattributed_s
    assert sum(k.handled + k.outbound_handled for k in agents.values()) + \
        day.unattributed_handled == day.handled + day.outbound_handled  # fmt: skip


def test_any_order_and_repeats_give_the_same_figures(trace: Trace) -> None:
    events = list(trace.events)
    repeats = random.Random(3).sample(events, 200)
    mixed = list(shuffled(events + repeats, within=25))
    newest, lateness, seen = 0.0, 0.0, set()
    for _, p in mixed:
        newest = max(newest, p["t"])
        if p["id"] not in seen:  # a repeat hours later is dropped, not late
            lateness = max(lateness, newest - p["t"])
            seen.add(p["id"])
    assert 30 < lateness < 4000  # the boards report logged out an hour before the day
    # the live clock is the newest event: a call settles once nothing can be that late
    live = fed(mixed, now=trace.end, settle_s=lateness + 1)
    # a repeat within the last two hours is known by its id; an older one finds its call
    # counted (too late) or its seat already in the state it says
    assert live.counts["duplicates"] > 0 and live.counts["too_late"] <= 200
    assert live.counts["late_seat_events"] > 0  # the shuffle did put some out of order
    check_all(live, trace)


def test_reprocessing_the_same_events_changes_nothing(trace: Trace) -> None:
    live = fed(trace.events, now=trace.end)
    before = {by: live.window("day", T0, by=by)[1] for by in BYS}
    calls = live.counts["calls"]
    for e in models(trace.events):
        live.feed([e])
    live.advance(trace.end + 60)
    # ids are kept for the last two hours: older repeats find their call counted already
    assert live.counts["duplicates"] > 0 and live.counts["too_late"] > 0
    assert live.counts["calls"] == calls
    for by in BYS:
        same(live.window("day", T0, by=by)[1], before[by], by)


def test_a_seat_event_older_than_the_kept_history_is_counted_not_applied(trace: Trace) -> None:
    events = list(trace.events)
    first_seat = next(i for i, (k, _) in enumerate(events) if k == "seat")
    held_back = events.pop(first_seat)
    live = fed(events + [held_back], now=trace.end)
    assert live.counts["too_late"] == 1


def test_a_call_counts_as_it_goes_and_whole_once_settled_and_time_runs_to_now() -> None:
    live = LiveKpis(tz=TZ)
    seat = {"v": 1, "gateway": "gw1", "board": "B1", "boot": 1, "seat": "s1", "type": "event"}

    def state(seq: int, t: float, st: str, call: int | None = None) -> SeatEvent:
        return SeatEvent.model_validate({**seat, "id": f"B1-1-{seq}", "seq": seq, "t": T0 + t,
                                         "data": {"event": "state", "state": st,
                                                  "reason": None, "call": call}})  # fmt: skip

    def step(n: int, t: float, kind: str, **kw: Any) -> CallEvent:
        return CallEvent.model_validate({
            "v": 1, "id": f"p1-9-{n}", "pbx": "p1", "call": 9, "step": n, "type": kind,
            "t": T0 + t, "direction": "inbound", "queue": "q1", "seat": "s1",
            "number": None, "arrived": T0, **kw})  # fmt: skip

    live.feed([state(1, 0, "ready"), step(1, 10, "enter_queue", seat=None),
               step(2, 10, "offer", wait_s=0.0), state(2, 10, "ringing", 9),
               step(3, 14, "answer", wait_s=4.0, rings=1), state(3, 14, "talking", 9),
               step(4, 74, "release", talk_s=60.0), state(4, 74, "acw", 9)])  # fmt: skip
    live.advance(T0 + 100)
    site = live.rolling(5, by="site")[1]["site"]
    # what one event decides counts at once: offered, answered, its wait and rings
    assert (site.offered, site.answered, site.asa_s, site.avg_rings) == (1, 1, 4.0, 1.0)
    # what needs the whole call waits for it: the seat is still in ACW for the call
    assert (site.handled, site.avg_acw_s, site.one_stop_rate) == (0, None, None)
    assert site.logged_in_s == pytest.approx(100.0)  # ready 10 + ringing 4 + talk 60 + acw 26
    live.feed([state(5, 104, "ready")])
    live.advance(T0 + 120)
    site = live.rolling(5, by="site")[1]["site"]
    assert (site.answered, site.asa_s, site.avg_talk_s, site.avg_acw_s) == (1, 4.0, 60.0, 30.0)
    assert site.aht_s == 90.0


def test_a_zero_length_acw_gives_each_leg_its_own_acw_live() -> None:
    from tests.core.test_kpi import transfer_back

    calls, seats = transfer_back()
    events = sorted([("call", p) for p in calls] + [("seat", p) for p in seats],
                    key=lambda kind_payload: kind_payload[1]["t"])  # fmt: skip
    live = fed(events, now=T0 + 1800)
    assert live.counts["calls"] == 1
    day = live.window("day", T0, by="queue")[1]
    support, sales = day["support"], day["sales"]
    assert (support.handled, support.avg_acw_s, support.aht_s) == (1, 0.0, 60.0)
    assert (sales.handled, sales.avg_acw_s, sales.aht_s) == (1, 30.0, 70.0)
    first = live.window("15min", T0, by="site")[1]["site"]
    second = live.window("15min", T0 + 900, by="site")[1]["site"]
    assert (first.handled, first.avg_acw_s, second.handled, second.avg_acw_s) == (1, 0.0, 1, 30.0)


# --- issue 18, defect 3: a backlog delivered hours after the calls --------------------------

DAY0 = T0 - 16 * 3600  # 2027-01-15 00:00 in Shanghai


@pytest.fixture(scope="module")
def day() -> Trace:
    return generate(seats=12, queues=3, start=DAY0, hours=24, seed=11)


def backlog(trace: Trace, *, chunk: int, tick_s: float) -> LiveKpis:
    """The day's events as a broker hands them over after a core outage: in the stored
    order, `chunk` at a time, the worker's clock (advance, as its ticker does between the
    store's pages) starting 5 hours after the last of them and moving `tick_s` a chunk."""
    live = LiveKpis(tz=TZ)
    wall = trace.end + 5 * 3600
    events = models(trace.events)
    live.advance(wall)
    for i in range(0, len(events), chunk):
        live.feed(events[i : i + chunk])
        wall += tick_s
        live.advance(wall)
    live.advance(wall + live.settle_s)
    return live


@pytest.mark.parametrize(("chunk", "tick_s"), [(5000, 1.0), (50, 1.0), (1, 1.0)],
                         ids=["one burst in pages", "small chunks", "one by one"])  # fmt: skip
def test_a_backlog_hours_old_loses_no_call(day: Trace, chunk: int, tick_s: float) -> None:
    live = backlog(day, chunk=chunk, tick_s=tick_s)
    calls = len({p["call"] for p in day.call_events()})
    assert calls > 2000
    # every call ended: none is closed as unfinished, none of its steps is thrown away
    assert (live.counts["unterminated_calls"], live.counts["too_late"]) == (0, 0)
    assert live.counts["calls"] == calls and live.open_calls() == 0
    intervals = state_intervals(day.seat_events(), until=day.end)
    whole = Window(DAY0, DAY0 + 86400)
    expected = kpis(day.call_events(), intervals, window=whole, by="site")["site"]
    got = live.window("day", DAY0, by="site")[1]["site"]
    # what the supervisor's wallboard shows for the day: as the report has it
    assert got.handled == expected.handled > 2000
    assert (got.avg_talk_s, got.avg_hold_s, got.avg_acw_s, got.aht_s, got.one_stop_rate) == \
        pytest.approx((expected.avg_talk_s, expected.avg_hold_s, expected.avg_acw_s,
                       expected.aht_s, expected.one_stop_rate))  # fmt: skip
    nobody = SignIns()  # nobody signed in anywhere: every event is no agent's
    for by in BYS:
        same(live.window("day", DAY0, by=by)[1],
             kpis(day.call_events(), intervals, window=whole, by=by, sign_ins=nobody),
             by)  # fmt: skip


def test_a_call_that_never_ends_is_closed_when_the_events_move_4_hours_past_it() -> None:
    live = LiveKpis(tz=TZ)

    def step(call: int, n: int, t: float, kind: str, **kw: Any) -> CallEvent:
        return CallEvent.model_validate({
            "v": 1, "id": f"p1-{call}-{n}", "pbx": "p1", "call": call, "step": n,
            "type": kind, "t": T0 + t, "direction": "inbound", "queue": "q1", "seat": "s1",
            "number": None, "arrived": T0, **kw})  # fmt: skip

    live.advance(T0 + 10 * 3600)  # the worker's clock: 10 hours on (a backlog)
    live.feed([step(1, 1, 0, "enter_queue", seat=None), step(1, 2, 5, "answer", wait_s=5.0)])
    live.advance(T0 + 10 * 3600 + 60)
    assert live.open_calls() == 1  # the PBX's clock has not moved: the call may go on
    live.feed([step(2, 1, 4 * 3600 + 4, "enter_queue", seat=None)])
    live.advance(T0 + 10 * 3600 + 61)
    assert live.open_calls() == 2  # 3 h 59 min 59 s after its last step
    live.feed([step(2, 2, 4 * 3600 + 5, "abandon", seat=None, wait_s=1.0)])
    live.advance(T0 + 10 * 3600 + 62)
    assert live.counts["unterminated_calls"] == 1 and live.open_calls() == 1
