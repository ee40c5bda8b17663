"""The desk's page (/desk?seat=..., issue 19) in a real headless Chromium: an agent logs in
at the desk and is signed in at its seat, sees its own figures and its seat's alerts, and
signs out; wrong passwords, a taken seat and a password to change first are said plainly."""

from __future__ import annotations

import time
from typing import Any

import playwright.sync_api as playwright_sync
from api_support import PASSWORD, USERS, LiveApi
from test_wallboard import (  # the same browser, page and API fixtures
    WAIT_MS,
    _kpi_live,
    _online,
    _state,
    api,
    browser,
    page,
    wait_until,
)

from gateway.api.accounts import Role

__all__ = ["api", "browser", "page"]  # fixtures, used by name
expect = playwright_sync.expect
AGENT = USERS[Role.AGENT]


def _desk(page: Any, api: LiveApi, seat: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{api.url}/desk?seat={seat}")
    expect(page.locator("#desk-seat")).to_have_text(seat)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_agent_signs_in_at_the_desk_and_out(api: LiveApi, page: Any) -> None:
    for seat in ("s101", "s102"):
        _online(api, seat)
        _state(api, seat, state="ready")
    api.publish("kpi_live", _kpi_live("agent", "a1", {"answered": 12, "avg_acw_s": 75.0,
                                                      "avg_talk_s": 120.0}),
                scope="agent", key="a1")  # fmt: skip
    wait_until(lambda: len(api.floor.seats) == 2 and api.floor.kpis.get("agent"))

    _desk(page, api, "s101", AGENT[0], password="not the password")
    expect(page.locator("#message")).to_contain_text("Login refused: wrong username or password")

    _desk(page, api, "s101", AGENT[0])
    expect(page.locator("#where")).to_have_text(f"Signed in at s101 as {AGENT[1]}")
    expect(page.locator("#seat-state")).to_contain_text("s101: Ready")
    acw = page.locator('#my-kpis [data-kpi="avg_acw_s"]')
    expect(acw).to_have_attribute("data-verdict", "missed")  # 75 s against 60 s
    expect(page.locator('#my-kpis [data-kpi="avg_talk_s"]')).to_have_attribute("data-verdict",
                                                                               "met")  # fmt: skip
    with api.client(Role.SUPERVISOR) as c:
        assert [(s["seat"], s["agent"]) for s in c.get("/signins").json()] == [("s101", "a1")]

    # the agent's own alerts show on its page, without a reload: the one at its seat and one
    # from the seat it sat at before; not the one of the agent before it at this seat
    now = time.time()

    def alert(ident: str, seat: str, agent: str, message: str) -> dict[str, Any]:
        return {"v": 1, "id": ident, "rule": "hold", "seed": "S3 1.6",
                "rule_text": "a single hold must not exceed 30 s", "seat": seat, "call": 7,
                "since": now - 40, "raised": now - 5, "measured": 31.0, "threshold": 30.0,
                "unit": "s", "severity": "warning", "message": message, "status": "raised",
                "t": now, "who": None, "note": "", "agent": agent}  # fmt: skip

    api.publish("alerts_open", {"v": 1, "t": now, "more": 0, "alerts": [
        alert("hold-s101-1", "s101", "a1", "s101 (a1): call 7 on hold for 31 s"),
        alert("hold-s101-0", "s101", "a9", "s101 (a9): call 6 on hold for 45 s"),
        alert("hold-s102-1", "s102", "a1", "s102 (a1): call 5 on hold for 33 s")]})
    expect(page.locator("#my-alerts li")).to_contain_text(
        ["on hold for 31 s", "on hold for 33 s"], timeout=WAIT_MS)  # fmt: skip
    expect(page.locator("#my-alerts li")).to_have_count(2)

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#message")).to_have_text("Signed out of s101.")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    with api.client(Role.SUPERVISOR) as c:
        assert c.get("/signins").json() == []


def test_a_taken_seat_and_a_password_to_change_are_said(api: LiveApi, page: Any) -> None:
    _state(api, "s101", state="ready")
    wait_until(lambda: "s101" in api.floor.seats)
    api.accounts.create_user(username="grace.hopper", password=PASSWORD,
                             full_name="Grace Hopper", role=Role.AGENT, agent="a2")  # fmt: skip
    with api.client(Role.AGENT) as c:
        assert c.post("/me/signin", json={"seat": "s101"}).status_code == 200
    _desk(page, api, "s101", "grace.hopper")
    message = page.locator("#message")
    expect(message).to_contain_text("Not signed in at s101: seat s101 is taken")
    expect(message).to_contain_text(AGENT[1])
    expect(page.locator("#where")).to_have_text("You are not signed in at any seat")

    api.accounts.create_user(username="ken.new", password=PASSWORD, full_name="Ken New",
                             role=Role.AGENT, agent="a3", must_change_password=True)  # fmt: skip
    page.evaluate("() => sessionStorage.clear()")
    _desk(page, api, "s102", "ken.new")
    expect(page.locator("#password-change")).to_be_visible()
    expect(message).to_contain_text("must be changed before you can sign in at s102")
    fresh = "Desk-2026 fresh!"
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(fresh)
    page.get_by_label("New password, again").fill(fresh)
    page.get_by_role("button", name="Change password").click()
    # s102 is no seat the floor knows (it knows s101): said, and nothing changed
    expect(message).to_contain_text("Not signed in at s102: no seat 's102' on the floor")


def test_a_link_without_a_seat_says_so(api: LiveApi, page: Any) -> None:
    page.goto(f"{api.url}/desk")
    expect(page.locator("#message")).to_contain_text("This link names no seat")
    expect(page.locator("#login-form")).to_be_hidden()
