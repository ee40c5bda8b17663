"""The role matrix: every endpoint of the API, called by every role and by nobody. A role
the matrix allows is let through (any answer but 401/403); any other gets 403, and no token
gets 401. An endpoint missing from the matrix fails the test: a new route must say who may
call it."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import PASSWORD, USERS, LiveApi

from gateway.api.accounts import Role

A, S, F, G = Role.ADMIN, Role.SUPERVISOR, Role.FACILITIES, Role.AGENT
EVERYONE = {A, S, F, G}
STAFF = {A, S}
FLOOR = {A, S, F}
DEVICES = {A, F}  # the seat boards are facilities' job (issue 19)
PUBLIC = None  # no token needed

# (method, path) -> roles allowed (PUBLIC: anyone, no token)
MATRIX: dict[tuple[str, str], set[Role] | None] = {
    ("POST", "/auth/token"): PUBLIC,
    ("POST", "/auth/logout"): EVERYONE,
    ("GET", "/auth/me"): EVERYONE,
    ("POST", "/auth/password"): EVERYONE,
    ("GET", "/users"): {A},
    ("POST", "/users"): {A},
    ("GET", "/users/{username}"): {A},
    ("PATCH", "/users/{username}"): {A},
    ("POST", "/users/{username}/password"): {A},
    ("DELETE", "/users/{username}/sessions"): {A},
    ("GET", "/delegations"): STAFF,
    ("POST", "/delegations"): STAFF,
    ("POST", "/delegations/{delegation_id}/approve"): {A},
    ("POST", "/delegations/{delegation_id}/revoke"): {A},
    ("GET", "/audit"): {A},
    ("GET", "/seats"): FLOOR,
    ("GET", "/seats/{seat}"): FLOOR,
    ("POST", "/seats/{seat}/state"): STAFF,
    ("POST", "/seats/{seat}/logout"): STAFF,
    ("POST", "/seats/{seat}/message"): STAFF,
    ("POST", "/seats/{seat}/settings"): STAFF,
    ("POST", "/seats/settings"): STAFF,
    ("GET", "/kpis"): STAFF,
    ("GET", "/kpis/daily"): STAFF,
    ("GET", "/kpis/intervals"): STAFF | {G},  # an agent: its own only (test_api_intervals)
    ("GET", "/kpis/{scope}"): STAFF,
    ("GET", "/kpis/{scope}/{key}"): STAFF | {G},  # an agent: its own only (test_api_kpis)
    ("GET", "/alerts"): STAFF,
    ("POST", "/alerts/{alert}/acknowledge"): STAFF,
    ("POST", "/alerts/{alert}/resolve"): STAFF,
    ("GET", "/reports/attendance"): STAFF,
    ("GET", "/reports/attendance.html"): STAFF,
    ("GET", "/reports/daily.html"): STAFF,
    ("GET", "/compliance/decisions"): STAFF,
    ("POST", "/compliance/dnc"): EVERYONE,
    ("POST", "/firmware/updates"): DEVICES,
    ("GET", "/firmware/jobs"): FLOOR,
    # agents at seats (issue 19): an agent signs itself in and reads its own page only
    ("GET", "/me/signin"): {G},
    ("POST", "/me/signin"): {G},
    ("DELETE", "/me/signin"): {G},
    ("GET", "/me/desk"): {G},
    ("GET", "/signins"): FLOOR,
    ("GET", "/signins/history"): STAFF,
    ("PUT", "/signins/{seat}"): STAFF,
    ("DELETE", "/signins/{seat}"): STAFF,
    ("GET", "/desk/links"): DEVICES,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/health"): PUBLIC,
}

# what each call sends: enough to pass validation, aimed at nothing that exists (so an
# allowed call changes nothing either)
PATHS = {"username": "nobody.here", "delegation_id": "999999", "seat": "no-such-seat",
         "scope": "agent", "key": "a1", "alert": "no-such-alert"}  # fmt: skip
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/auth/password"): {"json": {"old": "wrong-Password-1", "new": "x"}},
    ("POST", "/users"): {"json": {"username": "x", "full_name": "", "role": "agent",
                                  "password": "x"}},  # fmt: skip
    ("PATCH", "/users/{username}"): {"json": {"full_name": "Nobody"}},
    ("POST", "/users/{username}/password"): {"json": {"password": "Another-pass-2!"}},
    ("POST", "/delegations"): {"json": {"grantee": "nobody.here", "role": "facilities",
                                        "reason": "cover", "hours": 1}},  # fmt: skip
    ("POST", "/seats/{seat}/state"): {"json": {"state": "ready"}},
    ("POST", "/seats/{seat}/settings"): {"json": {"acw_s": 60}},
    ("POST", "/seats/{seat}/message"): {"json": {"colour": "cyan", "seconds": 5}},
    ("POST", "/seats/settings"): {"json": {"seats": ["no-such-seat"],
                                           "settings": {"acw_s": 60}}},  # fmt: skip
    ("POST", "/alerts/{alert}/acknowledge"): {"json": {"note": ""}},
    ("POST", "/alerts/{alert}/resolve"): {"json": {"note": ""}},
    ("GET", "/kpis/daily"): {"params": {"day": "2026-01-05"}},
    ("GET", "/kpis/intervals"): {"params": {"day": "2026-01-05", "scope": "agent", "key": "a1"}},
    ("GET", "/reports/attendance"): {"params": {"month": "2026-01"}},
    ("GET", "/reports/attendance.html"): {"params": {"month": "2026-01"}},
    ("GET", "/reports/daily.html"): {"params": {"day": "2026-01-05"}},
    ("POST", "/compliance/dnc"): {"json": {"number": "not a number"}},
    ("POST", "/auth/token"): {"data": {"username": USERS[F][0], "password": PASSWORD}},
    ("POST", "/me/signin"): {"json": {"seat": "not a seat"}},
    ("PUT", "/signins/{seat}"): {"json": {"username": "nobody.here"}},
    ("GET", "/signins/history"): {"params": {"day": "2026-01-05"}},
}


def _routes(api: LiveApi) -> set[tuple[str, str]]:
    """Every documented endpoint (the OpenAPI schema at /openapi.json)."""
    paths = api.service.app.openapi()["paths"]
    return {(m.upper(), p) for p, ops in paths.items() for m in ops}


def test_every_endpoint_is_in_the_matrix(shared_api: LiveApi) -> None:
    routes = _routes(shared_api)
    assert routes - set(MATRIX) == set(), "endpoints without a row in the role matrix"
    assert set(MATRIX) - routes == set(), "rows for endpoints that do not exist"


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_role_matrix(shared_api: LiveApi, method: str, path: str) -> None:
    allowed = MATRIX[(method, path)]
    url = path.format(**PATHS)
    kwargs = BODIES.get((method, path), {})
    for role in [None, *Role]:
        # a logout ends the token it is called with: use one of its own
        token = (shared_api.new_login(role) if role is not None and path == "/auth/logout"
                 else None)  # fmt: skip
        with shared_api.client(role, token=token) as c:
            r = c.request(method, url, **kwargs)
        who = "nobody" if role is None else role.value
        if allowed is PUBLIC:
            assert r.status_code not in (401, 403), (who, method, path, r.text)
        elif role is None:
            assert r.status_code == 401, (who, method, path, r.status_code, r.text)
            assert r.headers.get("www-authenticate") == "Bearer"
        elif role in allowed:
            assert r.status_code not in (401, 403), (who, method, path, r.status_code, r.text)
        else:
            assert r.status_code == 403, (who, method, path, r.status_code, r.text)
            assert "needs role" in r.json()["detail"]


def test_logout_ends_the_token_for_every_role(api: LiveApi) -> None:
    for role in Role:
        token = api.login(role)
        with api.client(token=token) as c:
            assert c.get("/auth/me").json()["username"] == USERS[role][0]
            assert c.post("/auth/logout").status_code == 204
            assert c.get("/auth/me").status_code == 401
