"""Run a worker of the policy/KPI core, or write its daily KPI or monthly attendance report."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from gateway.commands.edge import _run, serve_until_signal
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
    from gateway.core.queries import daily_report
    from gateway.core.report import daily_html, kpi_csv, report_rows

    tz = settings.tz
    report = daily_report(settings.store, day, tz, site=settings.site,
                          targets=settings.targets.targets())  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"kpi-{settings.site}-{day.isoformat()}.html"
    csv = out / f"kpi-{settings.site}-{day.isoformat()}.csv"
    html.write_text(daily_html(report), encoding="utf-8")
    csv.write_text(kpi_csv(report_rows(report), tz), encoding="utf-8")
    print(f"{html}\n{csv}")
    return 0


def _monthly(settings: CoreSettings, text: str, out: Path) -> int:
    from gateway.core.attendance import monthly_csv, monthly_html
    from gateway.core.queries import attendance_months, parse_month

    try:
        year, month = parse_month(text)
    except ValueError as exc:
        raise ValueError(f"--attendance: {exc}") from None
    if settings.schedule is None:
        raise ValueError("--attendance needs the shift schedule: set `schedule` in the "
                         "settings (docs/attendance.md)")  # fmt: skip
    first = date(year, month, 1)
    months = attendance_months(settings.store, settings.schedule, year, month)
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"attendance-{settings.site}-{first:%Y-%m}.html"
    csv = out / f"attendance-{settings.site}-{first:%Y-%m}.csv"
    html.write_text(monthly_html(months, title=f"{settings.site} {first:%Y-%m}"),
                    encoding="utf-8")  # fmt: skip
    csv.write_text(monthly_csv(months), encoding="utf-8")
    print(f"{html}\n{csv}")
    return 0
