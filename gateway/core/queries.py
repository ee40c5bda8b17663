"""Reports read from the core's store: what `seatlink core --report/--attendance` writes and
the API serves (docs/report.md, docs/attendance.md). Each opens the store for the one read."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.core.attendance import AgentMonth, monthly, report_start
from gateway.core.kpi import By, Kpis, SignIns, Window, state_intervals
from gateway.core.report import (
    BUCKETS,
    DailyReport,
    Targets,
    build_daily,
    day_intervals,
    day_window,
)
from gateway.core.schedule import load_schedule
from gateway.core.store import open_store


def daily_report(store_url: str, day: date, tz: ZoneInfo, *, site: str, targets: Targets,
                 now: float | None = None) -> DailyReport:  # fmt: skip
    """The day's KPI report from the store, up to `now` (today's: states still open end now,
    not at midnight). `targets` are the site's (`[targets]`, gateway/core/targets.py): its
    ring limit and service-level T define figures, so there is no default to fall back on."""
    d = _read_day(store_url, day, tz, now=now, alerts=True)
    return build_daily(d.calls, d.seats, day, tz, site=site, targets=targets, until=d.until,
                       alerts=d.alerts, rejected=d.rejected, sign_ins=d.sign_ins)  # fmt: skip


def interval_kpis(store_url: str, day: date, tz: ZoneInfo, *, by: By, size_s: int,
                  site: str, targets: Targets, now: float | None = None
                  ) -> list[tuple[Window, dict[str, Kpis]]]:  # fmt: skip
    """One scope's figures (site, each queue, agent or seat) per bucket of the day, 900 or
    3600 s, from the store: the same figures as the daily report's (read as it reads)."""
    if size_s not in BUCKETS.values():
        raise ValueError(f"bucket of {size_s} s: 900 or 3600")
    d = _read_day(store_url, day, tz, now=now, alerts=False)
    return day_intervals(d.calls, d.seats, day, tz, by=by, size_s=size_s, site=site,
                         targets=targets, until=d.until, sign_ins=d.sign_ins)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _StoredDay:
    calls: list[CallEvent]
    seats: list[SeatEvent]
    until: float
    alerts: list[tuple[str, int]]
    rejected: dict[str, int]
    sign_ins: SignIns


def _read_day(store_url: str, day: date, tz: ZoneInfo, *, now: float | None,
              alerts: bool) -> _StoredDay:  # fmt: skip
    window = day_window(day, tz)
    # ACW that runs past midnight is the day's (docs/kpi.md), so an hour after it is read
    until = min(time.time() if now is None else now, window.end + 3600)
    raised: Counter[str] = Counter()
    with open_store(store_url) as store:
        # a call that began before midnight, and a seat idle overnight, belong to the day
        events = list(store.events(since=window.start - 12 * 3600, until=until))
        # who was signed in where: from each seat's last change before the events read
        sign_ins = SignIns((c.seat, c.agent, c.t, c.id) for c in store.sign_ins(
            since=window.start - 12 * 3600, until=until))  # fmt: skip
        if alerts:
            raised.update(a["alert"].get("rule", "?") for a in store.alerts(since=window.start)
                          if a["alert"].get("raised", window.start) < window.end)  # fmt: skip
        rejected = store.counts()["db"]["rejected"]
    models = [e.model() for e in events]
    return _StoredDay(calls=[m for m in models if isinstance(m, CallEvent)],
                      seats=[m for m in models if isinstance(m, SeatEvent)], until=until,
                      alerts=sorted(raised.items()), rejected=rejected,
                      sign_ins=sign_ins)  # fmt: skip


def parse_month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(part) for part in text.split("-"))
        date(year, month, 1)
    except ValueError:
        raise ValueError(f"{text!r} is not a month as YYYY-MM") from None
    return year, month


def attendance_months(store_url: str, schedule_path: Path, year: int, month: int, *,
                      now: float | None = None) -> list[AgentMonth]:  # fmt: skip
    """Every scheduled agent's month; shifts still to come are not judged."""
    schedule = load_schedule(schedule_path)
    tz = schedule.tz
    first = date(year, month, 1)
    start = datetime.combine(report_start(year, month), datetime.min.time(), tzinfo=tz)
    after = (first + timedelta(days=32)).replace(day=1) + timedelta(days=2)
    end = min(time.time() if now is None else now,
              datetime.combine(after, datetime.min.time(), tzinfo=tz).timestamp())  # fmt: skip
    with open_store(store_url) as store:
        seats = [m for e in store.events(kind="seat", since=start.timestamp() - 86400, until=end)
                 if isinstance(m := e.model(), SeatEvent)]  # fmt: skip
        sign_ins = SignIns((c.seat, c.agent, c.t, c.id) for c in store.sign_ins(
            since=start.timestamp() - 86400, until=end))  # fmt: skip
    intervals = state_intervals(seats, until=end)
    return monthly(schedule, intervals, year, month, sign_ins=sign_ins, until=end)
