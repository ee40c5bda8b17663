"""Seats: the live picture, and the commands a supervisor sends them (docs/api.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from gateway.api.accounts import Session
from gateway.api.deps import FLOOR_VIEW, STAFF, Responses, audit, require, services
from gateway.api.models import (
    ForceState,
    GroupOutcome,
    GroupSettings,
    Outcome,
    Seat,
    SeatMessage,
    SeatSettings,
)

router = APIRouter(prefix="/seats", tags=["seats"])
_UNKNOWN: Responses = {400: {"description": "too many seats at once"},
                       404: {"description": "no such seat"},
            503: {"description": "the broker is away: nothing was sent"}}  # fmt: skip
SETTINGS_PER_COMMAND = 5  # one G frame (docs/mqtt.md, settings)
RESULT_GRACE_S = 3.0  # the edge answers `done` after the ack and its reject window


@router.get("", response_model=list[Seat])
async def list_seats(request: Request,
                     _: Annotated[Session, Depends(require(FLOOR_VIEW))]) -> list[Seat]:
    floor = services(request).floor
    return [Seat(**floor.seat(s)) for s in sorted(floor.seats)]


@router.get("/{seat}", response_model=Seat, responses=_UNKNOWN)
async def get_seat(request: Request, seat: str,
                   _: Annotated[Session, Depends(require(FLOOR_VIEW))]) -> Seat:  # fmt: skip
    floor = services(request).floor
    if seat not in floor.seats:
        raise HTTPException(404, f"no seat {seat!r} on the floor")
    return Seat(**floor.seat(seat))


async def send(request: Request, session: Session, seat: str, command: str,
               body: dict[str, Any]) -> Outcome:  # fmt: skip
    """Send one seat command and wait for its result; audited whatever the outcome."""
    svc = services(request)
    if seat not in svc.floor.seats:
        await audit(request, session, action=f"seat_{command}", outcome="unknown_seat",
                    target=seat, detail=body)  # fmt: skip
        raise HTTPException(404, f"no seat {seat!r} on the floor: nothing was sent")
    timeout = svc.settings.command_timeout_s
    message = {"v": 1, "command": command, "expires_in_s": timeout, **body}
    try:
        result = await svc.floor.command("seat_cmd", {"seat": seat}, message,
                                         timeout=timeout + RESULT_GRACE_S)  # fmt: skip
    except ConnectionError as exc:
        await audit(request, session, action=f"seat_{command}", outcome="broker_away",
                    target=seat, detail=body)  # fmt: skip
        raise HTTPException(503, str(exc)) from None
    if result is None:
        outcome = Outcome(seat=seat, command=command, id="?", status="no_result",
                          detail=f"no result within {timeout + RESULT_GRACE_S:.0f} s; the "
                                 "gateway may be down")  # fmt: skip
    else:
        outcome = Outcome(seat=seat, command=command, id=str(result.get("id")),
                          status=result.get("status", "no_result"),
                          detail=str(result.get("detail") or ""), error=result.get("error"),
                          field=result.get("field"))  # fmt: skip
    svc.metrics.commands.labels(command, outcome.status).inc()
    await audit(request, session, action=f"seat_{command}", outcome=outcome.status, target=seat,
                detail={**body, "id": outcome.id, "detail": outcome.detail})  # fmt: skip
    return outcome


@router.post("/{seat}/state", response_model=Outcome, responses=_UNKNOWN)
async def force_state(request: Request, seat: str, body: ForceState,
                      session: Annotated[Session, Depends(require(STAFF))]) -> Outcome:  # fmt: skip
    """Force the seat into ready, not ready (reason; default supervisor) or logged out."""
    args: dict[str, Any] = {"state": body.state}
    if body.state == "not_ready":
        args["reason"] = body.reason or "supervisor"
    return await send(request, session, seat, "set_state", args)


@router.post("/{seat}/logout", response_model=Outcome, responses=_UNKNOWN)
async def log_out(request: Request, seat: str,
                  session: Annotated[Session, Depends(require(STAFF))]) -> Outcome:  # fmt: skip
    """Log the seat's agent out."""
    return await send(request, session, seat, "set_state", {"state": "logged_out"})


@router.post("/{seat}/message", response_model=Outcome, responses=_UNKNOWN)
async def message(request: Request, seat: str, body: SeatMessage,
                  session: Annotated[Session, Depends(require(STAFF))]) -> Outcome:  # fmt: skip
    """Flash a colour over the seat's light for some seconds: a supervisor's nudge the
    agent sees at the desk (docs/seat.md, overlays)."""
    return await send(request, session, seat, "message",
                      {"colour": body.colour, "seconds": body.seconds})  # fmt: skip


async def _push_settings(request: Request, session: Session, seat: str,
                         settings: SeatSettings) -> list[Outcome]:  # fmt: skip
    given = list(settings.given().items())
    outcomes = []
    for at in range(0, len(given), SETTINGS_PER_COMMAND):
        chunk = dict(given[at : at + SETTINGS_PER_COMMAND])
        outcome = await send(request, session, seat, "settings", {"settings": chunk})
        outcomes.append(outcome)
        if outcome.status != "done":
            break  # the rest would leave the seat half set: say where it stopped
    return outcomes


@router.post("/{seat}/settings", response_model=GroupOutcome, responses=_UNKNOWN)
async def push_settings(request: Request, seat: str, body: SeatSettings,
                        session: Annotated[Session, Depends(require(STAFF))]) -> GroupOutcome:
    """Push ring, ACW and hold timers to one seat (RAM on the seat: the inventory's values
    come back at its next boot; docs/edge.md)."""
    return _group(await _push_settings(request, session, seat, body))


@router.post("/settings", response_model=GroupOutcome, responses=_UNKNOWN)
async def push_group_settings(request: Request, body: GroupSettings,
                              session: Annotated[Session, Depends(require(STAFF))]
                              ) -> GroupOutcome:  # fmt: skip
    """Push the same timers to a group of seats, all at once; one outcome per command."""
    svc = services(request)
    seats = list(dict.fromkeys(body.seats))
    if len(seats) > svc.settings.group_max:
        raise HTTPException(400, f"{len(seats)} seats: at most {svc.settings.group_max} at once")
    unknown = [s for s in seats if s not in svc.floor.seats]
    if unknown:
        await audit(request, session, action="seat_settings", outcome="unknown_seat",
                    target=",".join(unknown)[:200], detail=body.settings.given())  # fmt: skip
        raise HTTPException(404, f"no seat {', '.join(unknown[:10])} on the floor: nothing "
                                 "was sent")  # fmt: skip
    parts = await asyncio.gather(*(_push_settings(request, session, s, body.settings)
                                   for s in seats))  # fmt: skip
    return _group([o for part in parts for o in part])


def _group(outcomes: list[Outcome]) -> GroupOutcome:
    done = sum(o.status == "done" for o in outcomes)
    return GroupOutcome(outcomes=outcomes, done=done, not_done=len(outcomes) - done)

