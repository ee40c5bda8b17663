"""Reports from the core's store: the monthly attendance report for HR and the daily KPI
page (docs/attendance.md, docs/report.md). The product flags; people decide."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from gateway.api.accounts import Session
from gateway.api.deps import STAFF, Responses, audit, require, services
from gateway.api.models import ReportDay
from gateway.core.store import StoreError

router = APIRouter(prefix="/reports", tags=["reports"])
_MONTH = r"^[0-9]{4}-[0-9]{2}$"
_FAILED: Responses = {400: {"description": "no such month, or no schedule set"},
           503: {"description": "the core's store cannot be read"}}  # fmt: skip


async def _months(request: Request, month: str) -> list[Any]:
    from gateway.core.queries import attendance_months, parse_month

    svc = services(request)
    try:
        year, number = parse_month(month)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if svc.settings.schedule is None:
        raise HTTPException(400, "no shift schedule is set: `schedule` in the API's settings "
                                 "(docs/attendance.md)")  # fmt: skip
    try:
        return await run_in_threadpool(lambda: attendance_months(
            svc.settings.store, svc.settings.schedule, year, number))  # type: ignore[arg-type]
    except (StoreError, OSError) as exc:
        raise HTTPException(503, f"the core's store cannot be read: {exc}") from None
    except ValueError as exc:
        raise HTTPException(400, f"the shift schedule is wrong: {exc}") from None


@router.get("/attendance", responses=_FAILED)
async def attendance(request: Request, session: Annotated[Session, Depends(require(STAFF))],
                     month: Annotated[str, Query(pattern=_MONTH)]) -> list[dict[str, Any]]:
    """Each agent's month: counts and HR flags (without the shift rows; see .html)."""
    months = await _months(request, month)
    await audit(request, session, action="report_attendance", outcome="ok", target=month)
    out = []
    for m in months:
        row = dataclasses.asdict(m)
        row.pop("rows", None)
        out.append(row)
    return out


@router.get("/attendance.html", response_class=HTMLResponse, responses=_FAILED)
async def attendance_html(request: Request,
                          session: Annotated[Session, Depends(require(STAFF))],
                          month: Annotated[str, Query(pattern=_MONTH)]) -> HTMLResponse:
    from gateway.core.attendance import monthly_html

    months = await _months(request, month)
    await audit(request, session, action="report_attendance", outcome="ok", target=month)
    return HTMLResponse(monthly_html(months, title=f"{services(request).settings.site} {month}"))


@router.get("/daily.html", response_class=HTMLResponse,
            responses={503: {"description": "the core's store cannot be read"}})  # fmt: skip
async def daily_html(request: Request, session: Annotated[Session, Depends(require(STAFF))],
                     day: Annotated[ReportDay, Query()]) -> HTMLResponse:  # fmt: skip
    from gateway.core.queries import daily_report
    from gateway.core.report import daily_html as page

    svc = services(request)
    try:
        report = await run_in_threadpool(lambda: daily_report(
            svc.settings.store, day, svc.settings.tz, site=svc.settings.site,
            targets=svc.targets))
    except (StoreError, OSError) as exc:
        raise HTTPException(503, f"the core's store cannot be read: {exc}") from None
    await audit(request, session, action="report_daily", outcome="ok", target=day.isoformat())
    return HTMLResponse(page(report))
