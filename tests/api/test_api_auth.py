"""Accounts through the API: the password policy, one live session per agent, delegated
access, bad tokens, and the audit trail of logins and account changes."""

from __future__ import annotations

import time

import httpx
import pytest
from api_support import PASSWORD, USERS, LiveApi

from gateway.api.accounts import Role


def _login(api: LiveApi, username: str, password: str) -> httpx.Response:
    return httpx.post(api.url + "/auth/token", data={"username": username, "password": password})


@pytest.mark.parametrize(("password", "says"), [
    ("Short1!", "at least 10"),
    ("longenoughbutnodigits!", "digit"),
    ("longenough1234567", "special"),
    ("1234567890!!", "letter"),
    ("kim.lee-Pass-2026", "username"),
])  # fmt: skip
def test_weak_passwords_are_refused_with_the_rule_named(api: LiveApi, password: str,
                                                        says: str) -> None:  # fmt: skip
    with api.client(Role.ADMIN) as c:
        r = c.post("/users", json={"username": "kim.lee", "full_name": "Kim Lee",
                                   "role": "supervisor", "password": password})  # fmt: skip
        assert r.status_code == 400, r.text
        assert says in r.json()["detail"]
        assert c.get("/users/kim.lee").status_code == 404  # nothing was created


def test_a_new_account_must_change_its_password_first(api: LiveApi) -> None:
    with api.client(Role.ADMIN) as c:
        r = c.post("/users", json={"username": "kim.lee", "full_name": "Kim Lee",
                                   "role": "supervisor", "password": "First-pass 2026"})
        assert r.status_code == 201, r.text
    r = _login(api, "kim.lee", "First-pass 2026")
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    token = r.json()["access_token"]
    with api.client(token=token) as c:
        assert c.get("/seats").status_code == 403
        assert "change your password" in c.get("/seats").json()["detail"]
        r = c.post("/auth/password", json={"old": "First-pass 2026", "new": "short"})
        assert r.status_code == 400 and "at least 10" in r.json()["detail"]
        r = c.post("/auth/password", json={"old": "wrong-Pass 2026", "new": "Second-pass 2026"})
        assert r.status_code == 400
        r = c.post("/auth/password", json={"old": "First-pass 2026", "new": "Second-pass 2026"})
        assert r.status_code == 204, r.text
        assert c.get("/seats").status_code == 200
    assert _login(api, "kim.lee", "First-pass 2026").status_code == 401
    assert _login(api, "kim.lee", "Second-pass 2026").status_code == 200


def test_a_second_agent_login_ends_the_first_session(api: LiveApi) -> None:
    first = api.new_login(Role.AGENT)
    with api.client(token=first) as c:
        assert c.get("/auth/me").status_code == 200
    r = _login(api, USERS[Role.AGENT][0], PASSWORD)
    assert r.json()["ended_sessions"] == 1
    with api.client(token=first) as c:
        r1 = c.get("/auth/me")
    assert r1.status_code == 401 and "ended" in r1.json()["detail"]
    with api.client(token=r.json()["access_token"]) as c:
        assert c.get("/auth/me").json()["username"] == USERS[Role.AGENT][0]
    # a supervisor may keep a wallboard and a desk open
    a, b = api.new_login(Role.SUPERVISOR), api.new_login(Role.SUPERVISOR)
    for token in (a, b):
        with api.client(token=token) as c:
            assert c.get("/auth/me").status_code == 200


@pytest.mark.parametrize("header", [
    "Bearer nonsense", "Bearer", "Basic dXNlcjpwYXNz", "bearer " + "x" * 5000, "Bearer \u00e9",
])  # fmt: skip
def test_bad_tokens_get_401_and_change_nothing(api: LiveApi, header: str) -> None:
    with httpx.Client(base_url=api.url) as c:
        r = c.get("/seats", headers={"Authorization": header.encode()})  # raw UTF-8 bytes
        assert r.status_code == 401, r.text
        r = c.post("/seats/s0/state", json={"state": "ready"}, headers={"Authorization": "x"})
        assert r.status_code == 401


def test_logins_and_account_changes_are_audited(api: LiveApi) -> None:
    assert _login(api, USERS[Role.SUPERVISOR][0], "wrong-Pass 2026").status_code == 401
    assert _login(api, "nobody.here", "wrong-Pass 2026").status_code == 401
    api.new_login(Role.SUPERVISOR)
    with api.client(Role.ADMIN) as c:
        r = c.patch(f"/users/{USERS[Role.FACILITIES][0]}", json={"disabled": True})
        assert r.status_code == 200 and r.json()["disabled"] is True
        logins = c.get("/audit", params={"action": "login"}).json()
        changes = c.get("/audit", params={"action": "user_update"}).json()
        page = c.get("/audit", params={"limit": 2}).json()
        older = c.get("/audit", params={"limit": 2, "before_id": page[-1]["id"]}).json()
        assert c.get("/audit", params={"limit": 0}).status_code == 422
    outcomes = [(e["target"], e["outcome"]) for e in logins]
    assert (USERS[Role.SUPERVISOR][0], "bad_credentials") in outcomes
    assert ("nobody.here", "bad_credentials") in outcomes
    assert (USERS[Role.SUPERVISOR][0], "ok") in outcomes
    assert all(e["ip"] == "127.0.0.1" for e in logins)
    assert changes[0]["actor"] == USERS[Role.ADMIN][0]
    assert changes[0]["target"] == USERS[Role.FACILITIES][0]
    assert len(page) == 2 and all(e["id"] < page[-1]["id"] for e in older)
    # a disabled account cannot log in
    r = _login(api, USERS[Role.FACILITIES][0], PASSWORD)
    assert r.status_code == 401


def test_delegated_access_needs_another_admin_and_expires(api: LiveApi) -> None:
    with api.client(Role.SUPERVISOR) as c:
        r = c.post("/delegations", json={"grantee": USERS[Role.FACILITIES][0],
                                         "role": "supervisor", "reason": "cover the late shift",
                                         "hours": 0.001})  # fmt: skip
        assert r.status_code == 201, r.text
        ident = r.json()["id"]
        assert c.post(f"/delegations/{ident}/approve").status_code == 403
    facilities = api.new_login(Role.FACILITIES)
    with api.client(token=facilities) as c:
        assert c.get("/alerts").status_code == 403  # not active before approval
    with api.client(Role.ADMIN) as c:
        r = c.post(f"/delegations/{ident}/approve")
        assert r.status_code == 200 and r.json()["active"] is True, r.text
    with api.client(token=facilities) as c:
        assert c.get("/alerts").status_code == 200
        assert "supervisor" in c.get("/auth/me").json()["roles"]
    time.sleep(3.7)  # 0.001 h
    with api.client(token=facilities) as c:
        assert c.get("/alerts").status_code == 403
    with api.client(Role.ADMIN) as c:
        audit = c.get("/audit", params={"action": "delegation_approve"}).json()
    assert audit[0]["target"] == str(ident) and audit[0]["actor"] == USERS[Role.ADMIN][0]


def test_an_admin_may_not_approve_its_own_request(api: LiveApi) -> None:
    with api.client(Role.ADMIN) as c:
        r = c.post("/delegations", json={"grantee": USERS[Role.SUPERVISOR][0], "role": "admin",
                                         "reason": "audit week", "hours": 2})  # fmt: skip
        assert r.status_code == 201
        r = c.post(f"/delegations/{r.json()['id']}/approve")
        assert r.status_code == 400 and "someone other than its requester" in r.json()["detail"]
        assert c.post("/delegations/424242/approve").status_code == 404
