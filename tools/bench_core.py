"""Figures of the policy/KPI core, printed as one JSON object (a section of `make bench`).

    python -m tools.bench_core                    # a day of a 5,000-seat site
    python -m tools.bench_core --seats 500        # a quick check

The day: tools/trace.py's model of a call centre, `seats` agents in queues of 50, 6 calls an
hour per agent for 10 hours (a fixed seed), as the JSON payloads the edge and the PBX
publish. Measured in this one process, on one core, none asserted (goals beside them):

- ingest: the first `ingest_events` of the day through what a core worker does with them
  (gateway/core/service.py, without the broker): batches of 2,000 (topic, payload) into a
  SQLite store in a temporary directory (WAL, synchronous=FULL), the store's tail read
  back and parsed, every event into the live KPIs and the alert engine, the clock moved on
  once a second's worth of events. Each stage's own rate is printed beside the whole's.
- queries: the rest of the day into the live KPIs alone, then each query kind `repeat`
  times, p50 and p99 (goal p99 <= 50 ms): the day, the current 15 minutes and the rolling
  15 minutes, of the site, of every queue, of every agent, and of one agent.
- memory: the live KPIs' resident memory for the day (RSS before and after feeding it,
  after a collection), their counts, and how long a full collection of the garbage
  collector takes then (the process holds the bench's own copy of the day's payloads too,
  which a worker does not).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.contract.topics import Topics
from gateway.core.alerts import AlertEngine
from gateway.core.live import LiveKpis
from gateway.core.store import open_store
from tools.trace import generate

GOAL_INGEST = 50_000  # events/s on one core, with the live KPIs updated
GOAL_QUERY_P99_MS = 50.0
START = 1_800_000_000.0 - 16 * 3600  # 2027-01-15 00:00 in Asia/Shanghai (UTC+8)
TZ = ZoneInfo("Asia/Shanghai")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(*, seats: int = 5000, ingest_events: int = 300_000, repeat: int = 30) -> dict[str, Any]:
    log(f"core: generating a day of {seats} seats ...")
    t0 = time.perf_counter()
    trace = generate(seats=seats, queues=max(1, seats // 50), start=START + 8 * 3600,
                     hours=10, calls_per_hour_per_seat=6, seed=11, encode=True)  # fmt: skip
    events = trace.encoded
    log(f"core: {len(events):,} events in {time.perf_counter() - t0:.0f} s")
    topics = Topics(site="bench")
    messages = [(topics.seat_event(ident) if kind == "seat"
                 else topics.topic("call_event", call=ident), body)
                for kind, ident, body in events]  # fmt: skip
    live = LiveKpis(tz=TZ, site="bench")
    # one agent signed in at each seat for the day, before its first event: the per-agent
    # figures are the agents' (docs/kpi.md, Attribution), not the empty set of nobody's
    sign_ins = [(seat, agent_of(seat), trace.start - 60, f"bench-{seat}") for seat in trace.seats]
    for sign_in in sign_ins:
        live.sign_in(*sign_in)
    figures: dict[str, Any] = {"seats": seats, "events_in_day": len(events)}
    figures["ingest"] = _ingest(messages[:ingest_events], topics, live, sign_ins)
    figures["queries"] = _queries(live, messages[ingest_events:], trace.start, repeat,
                                  figures)  # fmt: skip
    return figures


def agent_of(seat: str) -> str:
    return "a-" + seat


def _ingest(messages: list[tuple[str, bytes]], topics: Topics, live: LiveKpis,
            sign_ins: list[tuple[str, str, float, str]]) -> dict[str, Any]:  # fmt: skip
    alerts = AlertEngine()
    for sign_in in sign_ins:
        alerts.sign_in(*sign_in)
    stage = {"store": 0.0, "tail_and_parse": 0.0, "live_kpis": 0.0, "alerts": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "core.db", topics=topics, clock=lambda: START + 86400)
        position, clock_at = 0, 0.0
        begin = time.perf_counter()
        for i in range(0, len(messages), 2000):
            t = time.perf_counter()
            store.ingest(messages[i:i + 2000])
            stage["store"] += time.perf_counter() - t
            t = time.perf_counter()
            rows = store.tail(position, limit=5000)
            models = [e.model() for _, e in rows]
            position = rows[-1][0] if rows else position
            stage["tail_and_parse"] += time.perf_counter() - t
            t = time.perf_counter()
            live.feed(models)
            if models and models[-1].t - clock_at >= 1.0:
                clock_at = models[-1].t
                live.advance(clock_at)
            stage["live_kpis"] += time.perf_counter() - t
            t = time.perf_counter()
            for m in models:
                if isinstance(m, SeatEvent):
                    alerts.on_seat_event(m)
                else:
                    alerts.on_call_event(m)
            alerts.tick(clock_at)
            stage["alerts"] += time.perf_counter() - t
        total = time.perf_counter() - begin
        stored = store.counts()["db"]["events"]
        store.close()
    n = len(messages)
    return {
        "events": n, "stored": stored, "seconds": round(total, 2),
        "events_per_s": round(n / total), "goal_events_per_s": GOAL_INGEST,
        "stage_events_per_s": {k: round(n / v) if v else None for k, v in stage.items()},
        "stage_share": {k: round(v / total, 3) for k, v in stage.items()},
        "alerts_raised": dict(alerts.counts.raised),
    }  # fmt: skip


def _queries(live: LiveKpis, rest: list[tuple[str, bytes]], start: float, repeat: int,
             figures: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    batch: list[SeatEvent | CallEvent] = []
    for topic, body in rest:
        batch.append(SeatEvent.model_validate_json(body) if "/seat/" in topic
                     else CallEvent.model_validate_json(body))  # fmt: skip
        if len(batch) == 5000:
            live.feed(batch)
            live.advance(batch[-1].t)
            batch = []
    live.feed(batch)
    now = start + 10 * 3600 - 1800  # late in the day, seats still at work
    live.advance(now)
    log(f"core: the rest of the day into the live KPIs in {time.perf_counter() - t:.0f} s")
    gc.collect()
    t = time.perf_counter()
    gc.collect()  # what a full collection costs with a day in memory: a pause of the worker
    full_gc_ms = (time.perf_counter() - t) * 1000
    figures["memory"] = {"live_kpis_rss_mb": round(rss_mb() - before, 1),
                         "process_rss_mb": round(rss_mb(), 1),
                         "full_gc_ms": round(full_gc_ms, 1),
                         "gc_tracked_objects": len(gc.get_objects()),
                         "counts": dict(live.counts)}  # fmt: skip
    agent = agent_of(next(iter(sorted(live._seats))))
    kinds: dict[str, Callable[[], object]] = {
        "site_day": lambda: live.window("day", now, by="site"),
        "queues_day": lambda: live.window("day", now, by="queue"),
        "agents_day": lambda: live.window("day", now, by="agent"),
        "one_agent_day": lambda: live.window("day", now, by="agent", key=agent),
        "site_hour": lambda: live.window("hour", now, by="site"),
        "site_15min": lambda: live.window("15min", now, by="site"),
        "site_rolling_15min": lambda: live.rolling(15, by="site"),
        "queues_rolling_15min": lambda: live.rolling(15, by="queue"),
        "agents_rolling_15min": lambda: live.rolling(15, by="agent"),
        "one_agent_rolling_15min": lambda: live.rolling(15, by="agent", key=agent),
    }
    out: dict[str, Any] = {"goal_p99_ms": GOAL_QUERY_P99_MS}
    for name, query in kinds.items():
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            query()
            times.append((time.perf_counter() - t) * 1000)
        out[name] = _percentiles(times)
    site = live.window("day", now, by="site")[1]["bench"]
    out["site_day_figures"] = {"offered": site.offered, "answered": site.answered,
                               "abandoned": site.abandoned, "asa_s": _r(site.asa_s),
                               "occupancy": _r(site.occupancy)}  # fmt: skip
    return out


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"p50_ms": round(statistics.median(s), 2),
            "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))], 2),
            "max_ms": round(s[-1], 2)}  # fmt: skip


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def summary(f: dict[str, Any]) -> str:
    i, q = f["ingest"], f["queries"]
    return (f"core: ingest {i['events_per_s']:,} events/s (goal {GOAL_INGEST:,}); "
            f"site day p99 {q['site_day']['p99_ms']} ms, agents day p99 "
            f"{q['agents_day']['p99_ms']} ms (goal {GOAL_QUERY_P99_MS}); live KPIs "
            f"{f['memory']['live_kpis_rss_mb']} MB")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=5000)
    parser.add_argument("--ingest-events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    figures = measure(seats=args.seats, ingest_events=args.ingest_events, repeat=args.repeat)
    log(summary(figures))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
