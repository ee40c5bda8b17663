"""Policy alerts from the core: the open ones, and acknowledge / resolve (docs/alerts.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from gateway.api.accounts import Session
from gateway.api.deps import STAFF, audit, require, services
from gateway.api.models import AlertAction, Outcome

router = APIRouter(prefix="/alerts", tags=["alerts"])
AlertId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
                                description="the alert's id (alerts/open)")]


@router.get("")
async def open_alerts(request: Request,
                      _: Annotated[Session, Depends(require(STAFF))]) -> dict[str, Any]:
    """The open alerts as the core last published them (`alerts/open`): newest changes,
    `more` counts those left out of the message."""
    return services(request).floor.alerts_open


async def _act(request: Request, session: Session, alert: str,
               action: Literal["acknowledge", "resolve"], note: str) -> Outcome:  # fmt: skip
    svc = services(request)
    body = {"v": 1, "action": action, "alert": alert, "who": session.username, "note": note}
    try:
        result = await svc.floor.command("alert_cmd", {}, body,
                                         timeout=svc.settings.command_timeout_s)  # fmt: skip
    except ConnectionError as exc:
        await audit(request, session, action=f"alert_{action}", outcome="broker_away",
                    target=alert)  # fmt: skip
        raise HTTPException(503, str(exc)) from None
    if result is None:
        outcome = Outcome(command=action, id="?", status="no_result",
                          detail="no core answered: is `seatlink core` running?")  # fmt: skip
    else:
        outcome = Outcome(command=action, id=str(result.get("id")),
                          status=result.get("status", "no_result"),
                          detail=str(result.get("detail") or ""))  # fmt: skip
    svc.metrics.commands.labels(f"alert_{action}", outcome.status).inc()
    await audit(request, session, action=f"alert_{action}", outcome=outcome.status,
                target=alert, detail={"note": note, "detail": outcome.detail})  # fmt: skip
    if outcome.status == "unknown":
        raise HTTPException(404, f"no open alert {alert!r}: {outcome.detail}".rstrip(": "))
    return outcome


@router.post("/{alert}/acknowledge", response_model=Outcome,
             responses={404: {"description": "no such alert"}})  # fmt: skip
async def acknowledge(request: Request, alert: AlertId, body: AlertAction,
                      session: Annotated[Session, Depends(require(STAFF))]) -> Outcome:  # fmt: skip
    """Someone is on it (`again`: it was acknowledged already)."""
    return await _act(request, session, alert, "acknowledge", body.note)


@router.post("/{alert}/resolve", response_model=Outcome,
             responses={404: {"description": "no such alert"}})  # fmt: skip
async def resolve(request: Request, alert: AlertId, body: AlertAction,
                  session: Annotated[Session, Depends(require(STAFF))]) -> Outcome:  # fmt: skip
    """Dealt with: it leaves the open alerts."""
    return await _act(request, session, alert, "resolve", body.note)
