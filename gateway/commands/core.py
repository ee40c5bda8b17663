"""Run a worker of the policy/KPI core, or write its daily KPI or monthly attendance report."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from gateway.commands.edge import _run, serve_until_signal
from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.core.settings import ENV_PREFIX, CoreSettings, load_settings
from gateway.core.store import StoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, metavar="FILE",
        help=f"TOML settings file (docs/core.md); {ENV_PREFIX}* environment variables "
             "override it",
    )  # fmt: skip
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--report", metavar="YYYY-MM-DD",
                      help="write the day's KPI report (HTML and CSV) from the store, then "
                           "exit")  # fmt: skip
    what.add_argument("--attendance", metavar="YYYY-MM",
                      help="write the month's attendance report (HTML and CSV) from the store "
                           "and the settings' schedule, then exit")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="where reports go (default: here)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        settings = load_settings(args.config)
        if args.report is not None:
            return _daily(settings, _day(args.report), args.out)
        if args.attendance is not None:
            return _monthly(settings, args.attendance, args.out)
        from gateway.core.service import CoreService

        service = CoreService(settings)
    except (ValidationError, ValueError, OSError, StoreError) as exc:
        print(f"seatlink core: {exc}", file=sys.stderr)
        return 2
    return _run(serve_until_signal(service))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--report {text!r}: a day as YYYY-MM-DD") from None


def _daily(settings: CoreSettings, day: date, out: Path) -> int:
    from gateway.core.report import build_daily, daily_html, day_window, kpi_csv, report_rows
    from gateway.core.store import open_store

    tz = settings.tz
    window = day_window(day, tz)
    # nothing after now (today's report: states still open end now, not at midnight); ACW
    # that runs past midnight is the day's (docs/kpi.md), so an hour after it is read
    until = min(time.time(), window.end + 3600)
    with open_store(settings.store) as store:
        # a call that began before midnight, and a seat idle overnight, belong to the day
        events = list(store.events(since=window.start - 12 * 3600, until=until))
        alerts = Counter(a["alert"].get("rule", "?") for a in store.alerts(since=window.start)
                         if a["alert"].get("raised", window.start) < window.end)  # fmt: skip
        rejected = store.counts()["db"]["rejected"]
    models = [e.model() for e in events]
    calls = [m for m in models if isinstance(m, CallEvent)]
    seats = [m for m in models if isinstance(m, SeatEvent)]
    report = build_daily(calls, seats, day, tz, site=settings.site, until=until,
                         alerts=sorted(alerts.items()), rejected=rejected)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"kpi-{settings.site}-{day.isoformat()}.html"
    csv = out / f"kpi-{settings.site}-{day.isoformat()}.csv"
    html.write_text(daily_html(report), encoding="utf-8")
    csv.write_text(kpi_csv(report_rows(report), tz), encoding="utf-8")
    print(f"{html}\n{csv}")
    return 0


def _monthly(settings: CoreSettings, text: str, out: Path) -> int:
    from gateway.core.attendance import monthly, monthly_csv, monthly_html, report_start
    from gateway.core.kpi import state_intervals
    from gateway.core.schedule import load_schedule
    from gateway.core.store import open_store

    try:
        year, month = (int(part) for part in text.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise ValueError(f"--attendance {text!r}: a month as YYYY-MM") from None
    if settings.schedule is None:
        raise ValueError("--attendance needs the shift schedule: set `schedule` in the "
                         "settings (docs/attendance.md)")  # fmt: skip
    schedule = load_schedule(settings.schedule)
    tz = schedule.tz
    start = datetime.combine(report_start(year, month), datetime.min.time(), tzinfo=tz)
    after = (first + timedelta(days=32)).replace(day=1) + timedelta(days=2)
    # shifts still to come are not judged: the data ends now
    end = min(time.time(), datetime.combine(after, datetime.min.time(), tzinfo=tz).timestamp())
    with open_store(settings.store) as store:
        seats = [m for e in store.events(kind="seat", since=start.timestamp() - 86400, until=end)
                 if isinstance(m := e.model(), SeatEvent)]  # fmt: skip
    intervals = state_intervals(seats, until=end)
    months = monthly(schedule, intervals, year, month, until=end)
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"attendance-{settings.site}-{first:%Y-%m}.html"
    csv = out / f"attendance-{settings.site}-{first:%Y-%m}.csv"
    html.write_text(monthly_html(months, title=f"{settings.site} {first:%Y-%m}"),
                    encoding="utf-8")  # fmt: skip
    csv.write_text(monthly_csv(months), encoding="utf-8")
    print(f"{html}\n{csv}")
    return 0
