"""Users (admins), delegated access (requested by supervisors, approved and revoked by
admins), and the audit log (admins)."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from gateway.api.accounts import AccountError, Delegation, Role, Session, User
from gateway.api.deps import STAFF, Responses, audit, require, services
from gateway.api.models import (
    AuditOut,
    DelegationOut,
    DelegationRequest,
    PasswordReset,
    UserCreate,
    UserOut,
    UserUpdate,
)

router = APIRouter(tags=["users"])
ADMIN = frozenset({Role.ADMIN})
ID_MAX = 2**62  # ids are database integers: anything larger names nothing
DelegationId = Annotated[int, Path(ge=1, le=ID_MAX)]
_REFUSED: Responses = {400: {"description": "refused, nothing changed"},
            404: {"description": "no such user or delegation"}}  # fmt: skip


def _user(u: User) -> UserOut:
    return UserOut(**dataclasses.asdict(u))


def _delegation(d: Delegation) -> DelegationOut:
    return DelegationOut(**dataclasses.asdict(d), active=d.active(time.time()))


async def _account_call(request: Request, session: Session, action: str, target: str,
                        detail: dict[str, Any], fn: Any) -> Any:  # fmt: skip
    """Run an account change; audit it whatever the outcome; AccountError -> 400/404."""
    try:
        result = await run_in_threadpool(fn)
    except AccountError as exc:
        await audit(request, session, action=action, outcome=exc.code, target=target,
                    detail={**detail, "error": str(exc)})  # fmt: skip
        code = status.HTTP_404_NOT_FOUND if exc.code.startswith("unknown") else 400
        raise HTTPException(code, str(exc)) from None
    await audit(request, session, action=action, outcome="ok", target=target, detail=detail)
    return result


@router.get("/users", response_model=list[UserOut])
async def list_users(request: Request,
                     _: Annotated[Session, Depends(require(ADMIN))]) -> list[UserOut]:  # fmt: skip
    return [_user(u) for u in await run_in_threadpool(services(request).accounts.users)]


@router.post("/users", response_model=UserOut, status_code=201, responses=_REFUSED)
async def create_user(request: Request, body: UserCreate,
                      session: Annotated[Session, Depends(require(ADMIN))]) -> UserOut:  # fmt: skip
    """A personal account. It must change its password at first login."""
    accounts = services(request).accounts
    user: User = await _account_call(
        request, session, "user_create", body.username,
        {"role": body.role.value, "agent": body.agent},
        lambda: accounts.create_user(username=body.username, password=body.password,
                                     full_name=body.full_name, role=body.role,
                                     agent=body.agent, must_change_password=True))  # fmt: skip
    return _user(user)


@router.get("/users/{username}", response_model=UserOut, responses=_REFUSED)
async def get_user(request: Request, username: str,
                   _: Annotated[Session, Depends(require(ADMIN))]) -> UserOut:  # fmt: skip
    user = await run_in_threadpool(services(request).accounts.user, username)
    if user is None:
        raise HTTPException(404, f"no user {username!r}")
    return _user(user)


@router.patch("/users/{username}", response_model=UserOut, responses=_REFUSED)
async def update_user(request: Request, username: str, body: UserUpdate,
                      session: Annotated[Session, Depends(require(ADMIN))]) -> UserOut:  # fmt: skip
    """Change name, role, agent id, or disable (ends the user's sessions). An agent signed
    in at a seat that is disabled, loses the agent role or its agent id is signed out
    (cause `account`)."""
    accounts = services(request).accounts
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise HTTPException(400, "nothing to change: give full_name, role, agent or disabled")
    user: User = await _account_call(
        request, session, "user_update", username, {k: str(v) for k, v in changes.items()},
        lambda: accounts.update_user(username, **changes, by=session.username))
    # a disabled agent, or one that is no agent any more, was signed out of its seat
    await services(request).seat_agents.publish_pending()
    return _user(user)


@router.post("/users/{username}/password", status_code=204, responses=_REFUSED)
async def reset_password(request: Request, username: str, body: PasswordReset,
                         session: Annotated[Session, Depends(require(ADMIN))]) -> None:  # fmt: skip
    """An admin's reset: the user's sessions end and it must change the password again."""
    accounts = services(request).accounts
    await _account_call(request, session, "password_reset", username, {},
                        lambda: accounts.set_password(username, body.password, by_admin=True))


@router.delete("/users/{username}/sessions", status_code=200, responses=_REFUSED)
async def end_sessions(request: Request, username: str,
                       session: Annotated[Session, Depends(require(ADMIN))]) -> dict[str, int]:
    accounts = services(request).accounts
    if await run_in_threadpool(accounts.user, username) is None:
        raise HTTPException(404, f"no user {username!r}")
    n: int = await _account_call(request, session, "sessions_end", username, {},
                                 lambda: accounts.end_sessions(username))  # fmt: skip
    return {"ended": n}


# --- delegated access -------------------------------------------------------------------------


@router.get("/delegations", response_model=list[DelegationOut])
async def list_delegations(request: Request,
                           session: Annotated[Session, Depends(require(STAFF))],
                           active_only: bool = False) -> list[DelegationOut]:  # fmt: skip
    """Admins see all; a supervisor sees those it requested or holds."""
    found = await run_in_threadpool(
        lambda: services(request).accounts.delegations(active_only=active_only))
    if Role.ADMIN not in session.roles:
        found = [d for d in found if session.username in (d.requested_by, d.grantee)]
    return [_delegation(d) for d in found]


@router.post("/delegations", response_model=DelegationOut, status_code=201, responses=_REFUSED)
async def request_delegation(request: Request, body: DelegationRequest,
                             session: Annotated[Session, Depends(require(STAFF))]
                             ) -> DelegationOut:  # fmt: skip
    """Ask for a user to hold a role for some hours; an admin other than the requester and
    the grantee must approve it before it counts."""
    accounts = services(request).accounts
    if body.role is Role.ADMIN and Role.ADMIN not in session.roles:
        raise HTTPException(403, "only an admin may request admin rights for someone")
    d: Delegation = await _account_call(
        request, session, "delegation_request", body.grantee,
        {"role": body.role.value, "hours": body.hours, "reason": body.reason},
        lambda: accounts.request_delegation(grantee=body.grantee, role=body.role,
                                            reason=body.reason,
                                            expires=time.time() + body.hours * 3600,
                                            requested_by=session.username))  # fmt: skip
    return _delegation(d)


@router.post("/delegations/{delegation_id}/approve", response_model=DelegationOut,
             responses=_REFUSED)  # fmt: skip
async def approve_delegation(request: Request, delegation_id: DelegationId,
                             session: Annotated[Session, Depends(require(ADMIN))]
                             ) -> DelegationOut:  # fmt: skip
    accounts = services(request).accounts
    d: Delegation = await _account_call(
        request, session, "delegation_approve", str(delegation_id), {},
        lambda: accounts.approve_delegation(delegation_id, by=session.username))
    return _delegation(d)


@router.post("/delegations/{delegation_id}/revoke", response_model=DelegationOut,
             responses=_REFUSED)  # fmt: skip
async def revoke_delegation(request: Request, delegation_id: DelegationId,
                            session: Annotated[Session, Depends(require(ADMIN))]
                            ) -> DelegationOut:  # fmt: skip
    accounts = services(request).accounts
    d: Delegation = await _account_call(
        request, session, "delegation_revoke", str(delegation_id), {},
        lambda: accounts.revoke_delegation(delegation_id, by=session.username))
    return _delegation(d)


# --- audit ------------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], responses=_REFUSED)
async def audit_log(request: Request, _: Annotated[Session, Depends(require(ADMIN))],
                    actor: str | None = None, action: str | None = None,
                    since: Annotated[float | None, Query(allow_inf_nan=False)] = None,
                    until: Annotated[float | None, Query(allow_inf_nan=False)] = None,
                    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    accounts = services(request).accounts
    try:
        rows = await run_in_threadpool(lambda: accounts.audit_log(
            actor=actor, action=action, since=since, until=until, before_id=before_id,
            limit=limit))
    except AccountError as exc:
        raise HTTPException(400, str(exc)) from None
    return [AuditOut(id=e.id, t=e.t, actor=e.actor, action=e.action, target=e.target,
                     outcome=e.outcome, detail=dict(e.detail), ip=e.ip) for e in rows]  # fmt: skip
