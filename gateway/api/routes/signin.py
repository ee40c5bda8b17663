"""Agents at seats (issue 19, docs/api.md "Agents at seats"): an agent signs in at the desk's
seat with its own account, a supervisor signs one in or out, and everyone who sees the floor
reads who is where. Each change is stored (the account store), audited, and published on
the retained `seat/{seat}/agent` (api/signins.py)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator

from gateway.api.accounts import AccountError, Session, SignIn, SignInChange
from gateway.api.deps import (
    AGENTS,
    DEVICES,
    FLOOR_VIEW,
    STAFF,
    Responses,
    Services,
    audit,
    require,
    services,
)
from gateway.api.models import (
    CheckedSeat,
    DeskLink,
    MyDesk,
    MySignIn,
    ReportDay,
    Seat,
    SignInAnswer,
    SignInFor,
    SignInHistory,
    SignInInterval,
    SignInOut,
    SignInRequest,
    seat_id,
)

router = APIRouter(tags=["agents at seats"])
SeatPath = Annotated[str, Path(description="the seat's id (as on the desk's label)",
                               json_schema_extra={"pattern": r"^[A-Za-z0-9_.-]{1,64}$"}),
                     AfterValidator(seat_id)]  # fmt: skip
_CHANGE: Responses = {
    404: {"description": "no such seat on the floor, no such user, or nobody signed in"},
    409: {"description": "the seat is taken by another agent, or the account cannot be "
                         "signed in (not an agent, disabled)"},
}  # fmt: skip
# AccountError code -> HTTP status
_STATUS = {"seat_taken": 409, "not_agent": 409, "disabled": 409, "unknown_user": 404,
           "not_signed_in": 404, "bad_seat": 422}  # fmt: skip


def _out(s: SignIn) -> SignInOut:
    return SignInOut(seat=s.seat, agent=s.agent, username=s.username, name=s.name,
                     since=s.signed_in, by=s.signed_in_by, cause=s.in_cause)  # fmt: skip


def _interval(s: SignIn | None) -> SignInInterval | None:
    if s is None:
        return None
    return SignInInterval(seat=s.seat, agent=s.agent, username=s.username, name=s.name,
                          since=s.signed_in, by=s.signed_in_by, cause=s.in_cause,
                          until=s.signed_out, until_by=s.signed_out_by,
                          until_cause=s.out_cause)  # fmt: skip


async def _refuse_unknown(request: Request, session: Session, seat: str,
                          detail: dict[str, Any]) -> None:  # fmt: skip
    svc = services(request)
    try:
        _check_known(svc, seat)
    except HTTPException:
        await audit(request, session, action="signin", outcome="unknown_seat", target=seat,
                    detail=detail)  # fmt: skip
        raise


def _check_known(svc: Services, seat: str) -> None:
    """A seat the floor has never heard of, where it knows the site's seats, is refused:
    a typo must not sign an agent in at a desk that does not exist. The floor knows the
    seats from the edge's retained topics (every seat of an inventory has its
    availability); before it has heard of any seat, any valid id is taken."""
    if svc.floor.seats and seat not in svc.floor.seats:
        raise HTTPException(404, f"no seat {seat!r} on the floor (the seats are those the "
                                 "gateways report): nothing was changed")  # fmt: skip


async def _change(request: Request, session: Session, action: str, target: str,
                  detail: dict[str, Any], fn: Any) -> SignInAnswer:  # fmt: skip
    """Make a sign-in change, publish it, audit it whatever the outcome."""
    svc = services(request)
    try:
        change: SignInChange = await run_in_threadpool(fn)
    except AccountError as exc:
        await audit(request, session, action=action, outcome=exc.code, target=target,
                    detail={**detail, "error": str(exc)})  # fmt: skip
        raise HTTPException(_STATUS.get(exc.code, 400), str(exc)) from None
    published = True
    if change.seats:
        await svc.seat_agents.publish_pending()
        for record in change.seats:
            # a later change of the seat replaced this one: publishing it is that one's part
            now = await run_in_threadpool(svc.accounts.seat_agent, record.seat)
            if now is not None and now.change == record.change and not now.published:
                published = False
    answer = SignInAnswer(signin=None if change.signin is None else _out(change.signin),
                          changed=bool(change.seats), moved_from=change.moved_from,
                          changes={r.seat: r.change for r in change.seats},
                          replaced=_interval(change.replaced), ended=_interval(change.ended),
                          published=published, message=_message(change, published))  # fmt: skip
    await audit(request, session, action=action,
                outcome="done" if change.seats else "unchanged", target=target,
                detail={**detail, "seats": [r.seat for r in change.seats],
                        "changes": [r.change for r in change.seats],
                        "moved_from": change.moved_from,
                        "replaced": None if change.replaced is None
                        else change.replaced.username, "published": published})  # fmt: skip
    return answer


def _message(change: SignInChange, published: bool) -> str:
    parts: list[str] = []
    if change.signin is not None:
        s = change.signin
        parts.append(f"Signed in at {s.seat} as {s.name}" if change.seats
                     else f"Already signed in at {s.seat} as {s.name}")  # fmt: skip
        if change.moved_from is not None:
            parts.append(f"signed out of {change.moved_from}")
        if change.replaced is not None:
            parts.append(f"{change.replaced.name} was signed out of {s.seat}")
    elif change.ended is not None:
        parts.append(f"{change.ended.name} signed out of {change.ended.seat}")
    if change.seats and not published:
        parts.append("the seat will learn it when the broker is back")
    return "; ".join(parts)


# --- the agent itself -------------------------------------------------------------------------


@router.get("/me/signin", response_model=MySignIn)
async def my_signin(request: Request,
                    session: Annotated[Session, Depends(require(AGENTS))]) -> MySignIn:
    """Where you are signed in, and your latest sign-out (a move, a supervisor)."""
    accounts = services(request).accounts
    now = await run_in_threadpool(accounts.signin_of, session.username)
    last = await run_in_threadpool(accounts.last_signout, session.username)
    return MySignIn(signin=None if now is None else _out(now), last_signout=_interval(last))


@router.post("/me/signin", response_model=SignInAnswer, responses=_CHANGE)
async def sign_me_in(request: Request, body: SignInRequest,
                     session: Annotated[Session, Depends(require(AGENTS))]) -> SignInAnswer:
    """Sign in at a seat (the desk's page does it). Signed in at another seat, you are
    signed out there (`moved_from`); another agent at this seat is a 409 naming them."""
    svc = services(request)
    detail = {"username": session.username}
    await _refuse_unknown(request, session, body.seat, detail)
    return await _change(request, session, "signin", body.seat, detail,
                         lambda: svc.accounts.sign_in(seat=body.seat,
                                                      username=session.username,
                                                      by=session.username))  # fmt: skip


@router.delete("/me/signin", response_model=SignInAnswer, responses=_CHANGE)
async def sign_me_out(request: Request,
                      session: Annotated[Session, Depends(require(AGENTS))]) -> SignInAnswer:
    """Sign out of your seat (404 when you are not signed in anywhere)."""
    svc = services(request)
    signin = await run_in_threadpool(svc.accounts.signin_of, session.username)
    return await _change(request, session, "signout",
                         "-" if signin is None else signin.seat, {"username": session.username},
                         lambda: svc.accounts.sign_out(username=session.username,
                                                       by=session.username, cause="self"))


@router.get("/me/desk", response_model=MyDesk)
async def my_desk(request: Request,
                  session: Annotated[Session, Depends(require(AGENTS))]) -> MyDesk:
    """Your own page: your sign-in, your seat's state, your live KPIs (the core's
    kpi/agent/<your agent id>) with the site's targets, and your open alerts (the core names
    the agent signed in when an alert is raised), wherever you sat. Only your own: nobody
    else's figures or alerts, not even those of the agent before you at your seat."""
    svc = services(request)
    user = await run_in_threadpool(svc.accounts.user, session.username)
    if user is None:
        raise HTTPException(401, "no such user")
    now = await run_in_threadpool(svc.accounts.signin_of, session.username)
    last = await run_in_threadpool(svc.accounts.last_signout, session.username)
    floor = svc.floor
    seat = None
    alerts: list[dict[str, Any]] = []
    if now is not None and now.seat in floor.seats:
        seat = Seat(**floor.seat(now.seat))
    if user.agent is not None:
        alerts = [a for a in floor.alerts_open.get("alerts", []) if a.get("agent") == user.agent]
    kpis = None if user.agent is None else floor.kpis.get("agent", {}).get(user.agent)
    return MyDesk(username=user.username, full_name=user.full_name, agent=user.agent,
                  signin=None if now is None else _out(now), last_signout=_interval(last),
                  seat=seat, kpis=kpis, targets=dataclasses.asdict(svc.targets),
                  alerts=alerts)  # fmt: skip


# --- supervisors: sign an agent in or out; everyone who sees the floor: read ----------------


@router.get("/signins", response_model=list[SignInOut])
async def list_signins(request: Request,
                       _: Annotated[Session, Depends(require(FLOOR_VIEW))]) -> list[SignInOut]:
    """Every agent signed in now, by seat."""
    found = await run_in_threadpool(services(request).accounts.signed_in)
    return [_out(s) for s in found]


@router.get("/signins/history", response_model=SignInHistory)
async def signin_history(request: Request, _: Annotated[Session, Depends(require(STAFF))],
                         day: Annotated[ReportDay, Query(description="YYYY-MM-DD, the "
                                                         "site's local day")],
                         ) -> SignInHistory:  # fmt: skip
    """Every sign-in interval that overlaps the site's local day, in the order they began:
    who was at which seat from when to when, who signed them in and out, and why."""
    svc = services(request)
    tz = svc.settings.tz
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)  # 23 or 25 h: DST days
    found = await run_in_threadpool(lambda: svc.accounts.signins(
        since=start.timestamp(), until=end.timestamp()))
    return SignInHistory(day=day, timezone=tz.key,
                         signins=[i for s in found if (i := _interval(s)) is not None])


@router.put("/signins/{seat}", response_model=SignInAnswer, responses=_CHANGE)
async def sign_in_for(request: Request, seat: SeatPath, body: SignInFor,
                      session: Annotated[Session, Depends(require(STAFF))]) -> SignInAnswer:
    """Sign an agent in at the seat. Another agent there is signed out (cause
    `supervisor`); the agent, signed in elsewhere, is signed out there (cause `moved`)."""
    svc = services(request)
    detail = {"username": body.username}
    await _refuse_unknown(request, session, seat, detail)
    return await _change(request, session, "signin", seat, detail,
                         lambda: svc.accounts.sign_in(seat=seat, username=body.username,
                                                      by=session.username,
                                                      supervisor=True))  # fmt: skip


@router.delete("/signins/{seat}", response_model=SignInAnswer, responses=_CHANGE)
async def sign_out_at(request: Request, seat: SeatPath,
                      session: Annotated[Session, Depends(require(STAFF))]) -> SignInAnswer:
    """Sign out the agent signed in at the seat (cause `supervisor`)."""
    svc = services(request)
    return await _change(request, session, "signout", seat, {},
                         lambda: svc.accounts.sign_out(seat=seat, by=session.username,
                                                       cause="supervisor"))  # fmt: skip


# --- facilities: the desk's link ----------------------------------------------------------


@router.get("/desk/links", response_model=list[DeskLink],
            responses={404: {"description": "no such seat on the floor"}})  # fmt: skip
async def desk_links(request: Request, _: Annotated[Session, Depends(require(DEVICES))],
                     seat: Annotated[list[CheckedSeat] | None, Query(
                         description="seats (default: every seat on the floor)")] = None,
                     ) -> list[DeskLink]:  # fmt: skip
    """The desk page's link of each seat, to print on the desk's label (or as its QR
    code): `<this API>/desk?seat=<seat>`."""
    svc = services(request)
    wanted = sorted(svc.floor.seats) if seat is None else list(dict.fromkeys(seat))
    for s in wanted:
        _check_known(svc, s)
    base = str(request.base_url).rstrip("/")
    return [DeskLink(seat=s, url=f"{base}/desk?seat={quote(s)}") for s in wanted]
