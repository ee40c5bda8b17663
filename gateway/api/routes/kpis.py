"""KPIs: the core's live figures (retained `kpi/{scope}/{key}`), and a day's figures and its
hours or quarter-hours from the core's store (docs/kpi.md). Agents see their own figures
only."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator

from gateway.api.accounts import Role, Session
from gateway.api.deps import STAFF, Responses, require, services
from gateway.api.models import ReportDay
from gateway.core.store import StoreError

router = APIRouter(prefix="/kpis", tags=["kpis"])
Scope = Literal["site", "queue", "agent", "seat"]
KEY_MAX = 64  # a queue name, agent id or seat id, as the topics allow them
_KEY = r"^[A-Za-z0-9_.-]+$"


def _may_see(session: Session, scope: str, key: str, agent: str | None) -> bool:
    if session.roles & STAFF:
        return True
    return scope == "agent" and agent is not None and key == agent


@router.get("")
async def live(request: Request,
               _: Annotated[Session, Depends(require(STAFF))]) -> dict[str, Any]:  # fmt: skip
    """Every live figure: {scope: {key: KpiLive}}."""
    return services(request).floor.kpis


@router.get("/daily")
async def daily(request: Request, _: Annotated[Session, Depends(require(STAFF))],
                day: Annotated[ReportDay, Query(description="YYYY-MM-DD, the site's local day")]
                ) -> dict[str, Any]:  # fmt: skip
    """The day's KPIs for the site, each queue, each agent (by agent id, from the sign-ins)
    and each seat, from the core's store."""
    from gateway.core.queries import daily_report

    svc = services(request)
    try:
        report = await run_in_threadpool(lambda: daily_report(
            svc.settings.store, day, svc.settings.tz, site=svc.settings.site,
            targets=svc.targets))
    except (StoreError, OSError) as exc:
        raise HTTPException(503, f"the core's store cannot be read: {exc}") from None
    return {"day": day.isoformat(), "site": _kpis(report.site_kpis),
            "queues": {k: _kpis(v) for k, v in report.queues.items()},
            "agents": {k: _kpis(v) for k, v in report.agents.items()},
            "seats": {k: _kpis(v) for k, v in report.seats.items()}}  # fmt: skip


_INTERVALS: Responses = {
    403: {"description": "an agent asked for figures other than its own"},
    503: {"description": "the core's store cannot be read"},
}


def _bucket(minutes: int) -> int:
    from gateway.core.report import BUCKETS

    if minutes not in BUCKETS:
        raise ValueError(f"a bucket is 15 or 60 minutes, not {minutes}")
    return minutes


@router.get("/intervals", responses=_INTERVALS)
async def intervals(
    request: Request,
    session: Annotated[Session, Depends(require(STAFF | {Role.AGENT}))],
    day: Annotated[ReportDay, Query(description="YYYY-MM-DD, the site's local day")],
    scope: Annotated[Scope, Query(description="site, queue, agent or seat")] = "site",
    key: Annotated[str | None, Query(min_length=1, max_length=KEY_MAX, pattern=_KEY,
                                     description="one queue, agent (agent id) or seat; none: "
                                     "all (an agent: its own agent id)")] = None,
    bucket: Annotated[int, Query(description="minutes: 15 or 60", json_schema_extra={
        "enum": [15, 60]}), AfterValidator(_bucket)] = 60,
) -> dict[str, Any]:  # fmt: skip
    """One scope's figures per hour or per 15 minutes of the day, from the core's store,
    with the site's targets: every bucket of the local day, each with the keys that had
    something in it. Supervisors and admins see all; an agent its own (scope agent, key
    its agent id)."""
    from gateway.core.queries import interval_kpis
    from gateway.core.report import BUCKETS

    svc = services(request)
    if not session.roles & STAFF:
        agent = await _agent_of(request, session)
        if key is None or not _may_see(session, scope, key, agent):
            raise HTTPException(403, "an agent may read its own figures only (scope=agent&"
                                     f"key={agent or '<your agent id>'})")  # fmt: skip
    site = svc.settings.site
    try:
        series = await run_in_threadpool(lambda: interval_kpis(
            svc.settings.store, day, svc.settings.tz, by=scope, size_s=BUCKETS[bucket],
            site=site, targets=svc.targets))  # fmt: skip
    except (StoreError, OSError) as exc:
        raise HTTPException(503, f"the core's store cannot be read: {exc}") from None
    tz = svc.settings.tz
    return {"day": day.isoformat(), "timezone": tz.key, "scope": scope, "key": key,
            "bucket": bucket, "ring_limit": svc.targets.ring_limit,
            "sl_threshold_s": svc.targets.sl_threshold_s,
            "intervals": [{"start": _iso(w.start, tz), "end": _iso(w.end, tz),
                           "kpis": {k: _kpis(v) for k, v in figures.items()
                                    if key is None or k == key}}
                          for w, figures in series]}  # fmt: skip


def _iso(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


async def _agent_of(request: Request, session: Session) -> str | None:
    user = await run_in_threadpool(services(request).accounts.user, session.username)
    return None if user is None else user.agent


def _kpis(k: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(k) and not isinstance(k, type):
        return dataclasses.asdict(k)
    return dict(k)


@router.get("/{scope}", responses={404: {"description": "nothing live for it yet"}})
async def live_scope(request: Request, scope: Scope,
                     session: Annotated[Session, Depends(require(STAFF))]) -> dict[str, Any]:
    return services(request).floor.kpis.get(scope, {})


@router.get("/{scope}/{key}", responses={403: {"description": "not yours"},
                                         404: {"description": "nothing live for it yet"}})
async def live_one(request: Request, scope: Scope, key: str,
                   session: Annotated[Session, Depends(require(STAFF | {Role.AGENT}))]
                   ) -> dict[str, Any]:
    """One agent's, queue's or the site's live figures. An agent may read its own."""
    svc = services(request)
    agent = None
    if Role.AGENT in session.roles and not session.roles & STAFF:
        agent = await _agent_of(request, session)
    if not _may_see(session, scope, key, agent):
        raise HTTPException(403, "an agent may read its own figures only "
                                 f"(/kpis/agent/{agent or '<your agent id>'})")  # fmt: skip
    found = svc.floor.kpis.get(scope, {}).get(key)
    if found is None:
        raise HTTPException(404, f"no live KPIs for {scope} {key!r} yet")
    return found
