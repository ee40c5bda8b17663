"""KPIs: the core's live figures (retained `kpi/{scope}/{key}`) and a day's report from the
core's store (docs/kpi.md). Agents see their own figures only."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from gateway.api.accounts import Role, Session
from gateway.api.deps import STAFF, require, services
from gateway.core.store import StoreError

router = APIRouter(prefix="/kpis", tags=["kpis"])
Scope = Literal["site", "queue", "agent"]


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
                day: Annotated[date, Query(description="YYYY-MM-DD, the site's local day")]
                ) -> dict[str, Any]:  # fmt: skip
    """The day's KPIs for the site, each queue and each agent, from the core's store."""
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
            "agents": {k: _kpis(v) for k, v in report.agents.items()}}  # fmt: skip


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
        user = await run_in_threadpool(svc.accounts.user, session.username)
        agent = None if user is None else user.agent
    if not _may_see(session, scope, key, agent):
        raise HTTPException(403, "an agent may read its own figures only "
                                 f"(/kpis/agent/{agent or '<your agent id>'})")  # fmt: skip
    found = svc.floor.kpis.get(scope, {}).get(key)
    if found is None:
        raise HTTPException(404, f"no live KPIs for {scope} {key!r} yet")
    return found
