"""Login, logout, who am I, password change (OAuth2 password flow, bearer tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm

from gateway.api.accounts import AccountError, AuthError, Session
from gateway.api.deps import ALL, audit, client_ip, oauth2, require, services
from gateway.api.models import Me, PasswordChange, Token

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses={401: {"description": "refused"}})
async def login(request: Request,
                form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:  # fmt: skip
    """Log in with a personal account. An agent's earlier session elsewhere ends."""
    svc = services(request)
    username = form.username.strip().lower()
    try:
        user = await run_in_threadpool(svc.accounts.authenticate, username, form.password)
    except AuthError as exc:
        svc.metrics.logins.labels(exc.code).inc()
        await audit(request, None, action="login", outcome=exc.code, target=username[:64])
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc),
                            headers={"WWW-Authenticate": "Bearer"}) from None  # fmt: skip
    token, session, ended = await run_in_threadpool(
        lambda: svc.accounts.open_session(user, ip=client_ip(request)))
    svc.metrics.logins.labels("ok").inc()
    await audit(request, session, action="login", outcome="ok", target=user.username,
                detail={"session": session.id, "ended_sessions": ended})  # fmt: skip
    return Token(access_token=token, expires=session.expires, session=session.id,
                 must_change_password=user.must_change_password
                 or user.password_expired(session.created, svc.accounts.PASSWORD_MAX_AGE_S),
                 ended_sessions=len(ended))  # fmt: skip


@router.post("/logout", status_code=204)
async def logout(request: Request, token: Annotated[str | None, Depends(oauth2)],
                 session: Annotated[Session, Depends(require(ALL, password_ok=False))]
                 ) -> None:  # fmt: skip
    """End this session (the token stops working at once)."""
    svc = services(request)
    assert token is not None
    await run_in_threadpool(svc.accounts.end_session, token)
    await audit(request, session, action="logout", outcome="ok", target=session.username)


@router.get("/me", response_model=Me)
async def me(request: Request,
             session: Annotated[Session, Depends(require(ALL, password_ok=False))]) -> Me:
    svc = services(request)
    user = await run_in_threadpool(svc.accounts.user, session.username)
    assert user is not None
    return Me(username=user.username, full_name=user.full_name, role=user.role,
              roles=sorted(session.roles), agent=user.agent, session=session.id,
              expires=session.expires,
              must_change_password=user.must_change_password
              or user.password_expired(session.created, svc.accounts.PASSWORD_MAX_AGE_S))


@router.post("/password", status_code=204, responses={400: {"description": "refused"}})
async def change_password(request: Request, body: PasswordChange,
                          session: Annotated[Session, Depends(require(ALL, password_ok=False))]
                          ) -> None:  # fmt: skip
    """Change your own password (the old one is needed). Policy: at least 10 characters
    with letters, digits and special characters, not containing the username."""
    svc = services(request)
    try:
        await run_in_threadpool(lambda: svc.accounts.set_password(
            session.username, body.new, old=body.old))
    except AuthError:
        await audit(request, session, action="password_change", outcome="bad_credentials",
                    target=session.username)  # fmt: skip
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the old password is wrong") from None
    except AccountError as exc:
        await audit(request, session, action="password_change", outcome=exc.code,
                    target=session.username)  # fmt: skip
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    await audit(request, session, action="password_change", outcome="ok",
                target=session.username)  # fmt: skip
