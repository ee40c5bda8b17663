"""Firmware updates through the gateways (docs/api.md, docs/fleet.md "Remote update")."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from gateway.api.accounts import Session
from gateway.api.deps import DEVICES, FLOOR_VIEW, Responses, audit, require, services
from gateway.api.models import FirmwareJobView, FirmwareUpdate, FirmwareUpdateAccepted

router = APIRouter(prefix="/firmware", tags=["firmware"])
ANSWER_S = 10.0  # a gateway says queued (or invalid) as soon as it has read the job
_ERRORS: Responses = {404: {"description": "no such seat: nothing was sent"},
                      409: {"description": "a seat's gateway is not known, or a gateway "
                                           "refused the job"},
                      503: {"description": "the broker is away: nothing was sent"}}  # fmt: skip


@router.post("/updates", response_model=FirmwareUpdateAccepted, status_code=202,
             responses=_ERRORS)  # fmt: skip
async def request_update(request: Request, body: FirmwareUpdate,
                         session: Annotated[Session, Depends(require(DEVICES))],
                         ) -> FirmwareUpdateAccepted:  # fmt: skip
    """Request a firmware update of some seats. The bundle is checked whole here; each
    seat's gateway then takes its seats one at a time, keeps each board's running firmware,
    and rolls a seat back when the new firmware does not say hello in time. Answers once
    every gateway concerned has queued its job; follow each seat's `firmware_update` in
    GET /seats/{seat} and each job in GET /firmware/jobs. Facilities staff and admins
    only: a supervisor or an agent gets 403 and nothing is sent."""
    svc = services(request)
    floor = svc.floor
    version = str(body.bundle["firmware"])  # the model checked the whole bundle
    detail = {"seats": body.seats, "to_version": version}
    unknown = [s for s in body.seats if s not in floor.seats]
    if unknown:
        await audit(request, session, action="firmware_update", outcome="unknown_seat",
                    target=",".join(unknown), detail=detail)  # fmt: skip
        raise HTTPException(404, f"no seat {', '.join(unknown)} on the floor: nothing was sent")
    by_gateway: dict[str, list[str]] = {}
    for seat in body.seats:
        gateway = floor.seat(seat)["gateway"]
        if gateway is None:
            raise HTTPException(409, f"seat {seat}'s gateway is not known yet: nothing was "
                                     "sent")  # fmt: skip
        by_gateway.setdefault(gateway, []).append(seat)
    command: dict[str, Any] = {"v": 1, "bundle": body.bundle, "by": session.username,
                               "hello_deadline_s": body.hello_deadline_s,
                               "idle_wait_s": body.idle_wait_s}  # fmt: skip
    try:
        answers = await asyncio.gather(*(
            floor.command("firmware_cmd", {"gateway": gw},
                          {**command, "seats": seats, "id": f"fw-{uuid.uuid4().hex[:12]}"},
                          timeout=ANSWER_S)
            for gw, seats in by_gateway.items()))  # fmt: skip
    except ConnectionError as exc:
        await audit(request, session, action="firmware_update", outcome="broker_away",
                    target=",".join(body.seats), detail=detail)  # fmt: skip
        raise HTTPException(503, str(exc)) from None
    jobs = []
    for (gw, seats), answer in zip(by_gateway.items(), answers, strict=True):
        if answer is None:
            jobs.append(FirmwareJobView(gateway=gw, job=None, status="no_answer",
                                        seats=dict.fromkeys(seats, "unknown"),
                                        detail=f"gateway {gw} did not answer within "
                                               f"{ANSWER_S:g} s; it may be down"))  # fmt: skip
        else:
            jobs.append(FirmwareJobView(**answer))
    outcome = ",".join(sorted({j.status for j in jobs}))
    await audit(request, session, action="firmware_update", outcome=outcome,
                target=",".join(body.seats),
                detail={**detail, "jobs": [j.job for j in jobs]})  # fmt: skip
    if all(j.status in ("invalid", "no_answer") for j in jobs):
        raise HTTPException(409, "; ".join(f"gateway {j.gateway}: {j.detail}" for j in jobs))
    return FirmwareUpdateAccepted(to_version=version, jobs=jobs)  # a refusal shows in its job


@router.get("/jobs", response_model=list[FirmwareJobView])
async def list_jobs(request: Request,
                    _: Annotated[Session, Depends(require(FLOOR_VIEW))],
                    ) -> list[FirmwareJobView]:  # fmt: skip
    """Each gateway's latest firmware update job and every seat's stage in it. Readable by
    everyone who sees the floor (each seat's `firmware_update` is in GET /seats too)."""
    floor = services(request).floor
    return [FirmwareJobView(**kept["firmware_job"]) for _, kept in sorted(floor.gateways.items())
            if kept.get("firmware_job")]
