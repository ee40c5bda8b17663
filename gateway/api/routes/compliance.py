"""Outbound compliance: the PBX's recent decisions, and Do-Not-Call additions (they take
effect in the PBX before its answer comes back; docs/compliance.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from gateway.api.accounts import Session
from gateway.api.deps import ALL, STAFF, audit, require, services
from gateway.api.models import DncAdd, Outcome
from gateway.pbx.dialer import mask

router = APIRouter(prefix="/compliance", tags=["compliance"])


@router.get("/decisions")
async def decisions(request: Request, _: Annotated[Session, Depends(require(STAFF))],
                    denied_only: bool = False,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The newest decisions first (numbers masked, as the PBX publishes them)."""
    found = list(services(request).floor.decisions)[::-1]
    if denied_only:
        found = [d for d in found if not d.get("allowed")]
    return found[:limit]


@router.post("/dnc", response_model=Outcome, responses={
    400: {"description": "the PBX refused the number"},
    503: {"description": "the broker is away: nothing was sent"}})  # fmt: skip
async def add_dnc(request: Request, body: DncAdd,
                  session: Annotated[Session, Depends(require(ALL))]) -> Outcome:  # fmt: skip
    """Put a number on the Do-Not-Call list: every later dial to it is denied. Agents may
    (the customer asked them on the call)."""
    svc = services(request)
    masked = mask(body.number)  # who added a number is kept, the number is not
    message = {"v": 1, "command": "dnc_add", "number": body.number}
    try:
        result = await svc.floor.command("pbx_cmd", {"pbx": svc.settings.pbx}, message,
                                         timeout=svc.settings.command_timeout_s)  # fmt: skip
    except ConnectionError as exc:
        await audit(request, session, action="dnc_add", outcome="broker_away", target=masked)
        raise HTTPException(503, str(exc)) from None
    if result is None:
        outcome = Outcome(command="dnc_add", id="?", status="no_result",
                          detail=f"PBX {svc.settings.pbx} did not answer")  # fmt: skip
    else:
        outcome = Outcome(command="dnc_add", id=str(result.get("id")),
                          status=result.get("status", "no_result"),
                          detail=str(result.get("detail") or ""))  # fmt: skip
    svc.metrics.commands.labels("dnc_add", outcome.status).inc()
    await audit(request, session, action="dnc_add", outcome=outcome.status, target=masked,
                detail={"detail": outcome.detail})  # fmt: skip
    if outcome.status == "invalid":
        raise HTTPException(400, f"the PBX refused the number: {outcome.detail}")
    return outcome
