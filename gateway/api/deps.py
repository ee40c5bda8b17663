"""What every route depends on: the caller's session (bearer token), the role check, and the
audit trail. Roles are checked here, once per endpoint, by the role each route names; the
role-matrix test (tests/api/test_roles.py) calls every endpoint with every role."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer

from gateway.api.accounts import AccountStore, AuditEntry, Role, Session
from gateway.api.floor import Floor
from gateway.api.metrics import ApiMetrics
from gateway.api.settings import ApiSettings
from gateway.api.signins import SeatAgentPublisher
from gateway.core.report import Targets

Responses = dict[int | str, dict[str, Any]]  # extra answers a route documents in OpenAPI
oauth2 = OAuth2PasswordBearer(tokenUrl="auth/token", auto_error=False)

ALL = frozenset(Role)
STAFF = frozenset({Role.SUPERVISOR, Role.ADMIN})  # the floor's supervisors, and admins
FLOOR_VIEW = frozenset({Role.SUPERVISOR, Role.FACILITIES, Role.ADMIN})
DEVICES = frozenset({Role.FACILITIES, Role.ADMIN})  # the seat boards: facilities' job
AGENTS = frozenset({Role.AGENT})  # an agent's own sign-in and page


@dataclass
class Services:
    """What the app holds for its routes (app.state.services)."""

    settings: ApiSettings
    accounts: AccountStore
    floor: Floor
    metrics: ApiMetrics
    targets: Targets  # the site's, read once at start (ApiSettings.site_targets)
    seat_agents: SeatAgentPublisher  # publishes who is signed in at each seat


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def session_of(token: str | None, svc: Services) -> Session:
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in: send "
                            "'Authorization: Bearer <token>' from POST /auth/token",
                            headers=_UNAUTHORIZED)  # fmt: skip
    session = await run_in_threadpool(svc.accounts.session, token)
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token unknown, expired or ended "
                            "(an agent's login elsewhere ends the earlier session)",
                            headers=_UNAUTHORIZED)  # fmt: skip
    return session


async def current_session(request: Request,
                          token: Annotated[str | None, Depends(oauth2)]) -> Session:  # fmt: skip
    return await session_of(token, services(request))


def require(roles: frozenset[Role], *, password_ok: bool = True
            ) -> Callable[..., Awaitable[Session]]:  # fmt: skip
    """A dependency: the caller's session if one of its roles (own or delegated) is in
    `roles`, else 403 naming them. `password_ok`: a caller whose password must be changed
    first is refused too (403), except on the routes that change it."""
    names = ", ".join(sorted(r.value for r in roles))

    async def check(request: Request,
                    session: Annotated[Session, Depends(current_session)]) -> Session:  # fmt: skip
        if not session.roles & roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs role {names}; you have "
                                f"{', '.join(sorted(r.value for r in session.roles))}")  # fmt: skip
        if password_ok:
            svc = services(request)
            user = await run_in_threadpool(svc.accounts.user, session.username)
            if user is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no such user",
                                    headers=_UNAUTHORIZED)  # fmt: skip
            if user.must_change_password or user.password_expired(
                    time.time(), svc.accounts.PASSWORD_MAX_AGE_S):
                raise HTTPException(status.HTTP_403_FORBIDDEN, "change your password first: "
                                    "POST /auth/password")  # fmt: skip
        return session

    return check


async def audit(request: Request, session: Session | None, *, action: str, outcome: str,
                target: str | None = None, detail: dict[str, Any] | None = None
                ) -> AuditEntry:  # fmt: skip
    svc = services(request)
    return await run_in_threadpool(
        lambda: svc.accounts.audit(action=action, outcome=outcome,
                                   actor=None if session is None else session.username,
                                   target=target, detail=detail, ip=client_ip(request)))
