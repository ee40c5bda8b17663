"""Agents at seats through the API (issue 19): the agent's own sign-in, a supervisor's,
the rules (one agent at one seat, one agent per seat, agents only), the audit trail, and the
retained `seat/{seat}/agent` on a real mosquitto, including a broker that is away during a
sign-in. Every wait is on an event (a message arriving, the floor's state), never a sleep."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from api_support import PASSWORD, USERS, LiveApi, seat_state

from gateway.api.accounts import Role
from gateway.contract.payloads import SeatAgent

AGENT, SUPERVISOR = USERS[Role.AGENT][0], USERS[Role.SUPERVISOR][0]
OTHER = ("grace.hopper", "Grace Hopper", "a2")  # a second agent


class Watcher:
    """A subscriber of seat/+/agent: every message, retained or not, in order."""

    def __init__(self, api: LiveApi, host: str | None = None, port: int | None = None) -> None:
        self.topics = api.topics
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self._changed = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host or api.broker.host, port or api.broker.port)
        self.client.loop_start()
        self.client.subscribe(api.topics.subscription("seat_agent"), qos=1)
        assert subscribed.wait(5), "no SUBACK"

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        seat = self.topics.parse(message.topic).ids["seat"]
        body = json.loads(message.payload)
        SeatAgent.model_validate(body)  # every message is the contract's payload
        with self._changed:
            self.messages.append((seat, body, bool(message.retain)))
            self._changed.notify_all()

    def wait(self, condition: Callable[[list[tuple[str, dict[str, Any], bool]]], Any],
             what: str, timeout: float = 10) -> Any:  # fmt: skip
        with self._changed:
            found = self._changed.wait_for(lambda: condition(self.messages), timeout)
        assert found, f"timed out waiting for {what}; got {self.messages}"
        return found

    def by_id(self, change: str, timeout: float = 10) -> dict[str, Any]:
        found: dict[str, Any] = self.wait(
            lambda ms: next((b for _, b, _r in ms if b["id"] == change), None),
            f"message {change}", timeout)  # fmt: skip
        return found

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def watcher(api: LiveApi) -> Iterator[Watcher]:
    w = Watcher(api)
    try:
        yield w
    finally:
        w.close()


def add_agent(api: LiveApi, username: str = OTHER[0], name: str = OTHER[1],
              agent: str = OTHER[2], **kw: Any) -> None:  # fmt: skip
    api.accounts.create_user(username=username, password=PASSWORD, full_name=name,
                             role=Role.AGENT, agent=agent, **kw)  # fmt: skip


def login(api: LiveApi, username: str) -> Any:
    r = httpx.post(api.url + "/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return api.client(token=r.json()["access_token"])


def seats(api: LiveApi, *names: str) -> None:
    """Seats the floor knows (their state, retained, as the edge publishes it)."""
    for seat in names:
        api.publish("seat_state", seat_state(seat, t=time.time()), seat=seat)
    wait(lambda: all(s in api.floor.seats for s in names), "the floor knows the seats")


def wait(condition: Callable[[], Any], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def audit(api: LiveApi, action: str) -> list[dict[str, Any]]:
    with api.client(Role.ADMIN) as c:
        entries: list[dict[str, Any]] = c.get("/audit", params={"action": action}).json()
    return entries


# --- the agent itself -------------------------------------------------------------------------


def test_an_agent_signs_in_and_the_seat_is_told(api: LiveApi, watcher: Watcher) -> None:
    seats(api, "s1")
    with api.client(Role.AGENT) as c:
        assert c.get("/me/signin").json() == {"signin": None, "last_signout": None}
        r = c.post("/me/signin", json={"seat": "s1"})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["changed"] and answer["published"] and answer["moved_from"] is None
        assert answer["signin"]["seat"] == "s1" and answer["signin"]["agent"] == "a1"
        assert answer["signin"]["cause"] == "self" and answer["signin"]["by"] == AGENT
        assert answer["message"] == "Signed in at s1 as Alan Turing"
        body = watcher.by_id(answer["changes"]["s1"])
        assert body | {"t": 0} == {"v": 1, "id": answer["changes"]["s1"], "seat": "s1",
                                   "agent": "a1", "name": "Alan Turing", "t": 0, "by": AGENT,
                                   "cause": "self", "previous": None}  # fmt: skip
        assert c.get("/me/signin").json()["signin"]["seat"] == "s1"
        # again at the same seat: nothing changes, nothing is published
        again = c.post("/me/signin", json={"seat": "s1"}).json()
        assert not again["changed"] and again["changes"] == {}
        assert again["message"] == "Already signed in at s1 as Alan Turing"
    # the floor (and so the wallboard) shows the name on the seat
    wait(lambda: api.floor.seat("s1")["agent_name"] == "Alan Turing", "the floor's s1")
    with api.client(Role.SUPERVISOR) as c:
        seat = c.get("/seats/s1").json()
        assert (seat["agent"], seat["agent_name"]) == ("a1", "Alan Turing")
        assert [s["seat"] for s in c.get("/signins").json()] == ["s1"]
    with api.client(Role.AGENT) as c:
        r = c.delete("/me/signin")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["signin"] is None and out["ended"]["until_cause"] == "self"
        body = watcher.by_id(out["changes"]["s1"])
        assert (body["agent"], body["name"], body["cause"], body["previous"]) == (
            None, None, "self", "a1")  # fmt: skip
        assert c.delete("/me/signin").status_code == 404
        assert c.get("/me/signin").json()["last_signout"]["seat"] == "s1"
    wait(lambda: api.floor.seat("s1")["agent_name"] is None, "s1 without a name")
    assert [e["outcome"] for e in audit(api, "signin")] == ["unchanged", "done"]
    assert [e["outcome"] for e in audit(api, "signout")] == ["not_signed_in", "done"]


def test_a_move_signs_out_of_the_old_seat_and_publishes_both(api: LiveApi,
                                                             watcher: Watcher) -> None:  # fmt: skip
    seats(api, "s1", "s2")
    with api.client(Role.AGENT) as c:
        first = c.post("/me/signin", json={"seat": "s1"}).json()
        watcher.by_id(first["changes"]["s1"])
        r = c.post("/me/signin", json={"seat": "s2"})
        assert r.status_code == 200, r.text
        moved = r.json()
    assert moved["moved_from"] == "s1" and moved["signin"]["seat"] == "s2"
    assert moved["message"] == "Signed in at s2 as Alan Turing; signed out of s1"
    assert set(moved["changes"]) == {"s1", "s2"}
    old = watcher.by_id(moved["changes"]["s1"])
    new = watcher.by_id(moved["changes"]["s2"])
    assert (old["agent"], old["cause"], old["previous"], old["by"]) == (None, "moved", "a1",
                                                                        AGENT)  # fmt: skip
    assert (new["agent"], new["cause"]) == ("a1", "self")
    # a late subscriber gets the retained picture: nobody at s1 (moved), the agent at s2
    late = Watcher(api)
    try:
        late.wait(lambda ms: {s for s, _b, retained in ms if retained} == {"s1", "s2"},
                  "both retained messages")  # fmt: skip
        retained = {s: b for s, b, _r in late.messages}
        assert retained["s1"]["id"] == moved["changes"]["s1"]
        assert (retained["s1"]["agent"], retained["s1"]["cause"]) == (None, "moved")
        assert retained["s2"]["agent"] == "a1"
    finally:
        late.close()
    with api.client(Role.AGENT) as c:
        last = c.get("/me/signin").json()["last_signout"]
        assert (last["seat"], last["until_cause"]) == ("s1", "moved")


def test_a_taken_seat_is_refused_naming_who(api: LiveApi, watcher: Watcher) -> None:
    seats(api, "s1")
    add_agent(api)
    with api.client(Role.AGENT) as c:
        watcher.by_id(c.post("/me/signin", json={"seat": "s1"}).json()["changes"]["s1"])
    with login(api, OTHER[0]) as grace:
        r = grace.post("/me/signin", json={"seat": "s1"})
        assert r.status_code == 409, r.text
        assert "Alan Turing" in r.json()["detail"] and "taken" in r.json()["detail"]
        assert grace.get("/me/signin").json()["signin"] is None
    with api.client(Role.SUPERVISOR) as c:
        assert [(s["seat"], s["username"]) for s in c.get("/signins").json()] == [("s1", AGENT)]
    assert [e["outcome"] for e in audit(api, "signin")][0] == "seat_taken"
    assert len(watcher.messages) == 1  # nothing published for the refusal


def test_bad_or_unknown_seats_change_nothing(api: LiveApi, watcher: Watcher) -> None:
    with api.client(Role.AGENT) as c:
        for bad in ("s 1", "s1/x", "", "#", "x" * 65):
            r = c.post("/me/signin", json={"seat": bad})
            assert r.status_code == 422, (bad, r.text)
            assert "is not 1-64 characters of A-Z a-z 0-9 _ . -" in r.text, r.text
        # the floor knows no seat yet: any valid id is taken
        assert c.post("/me/signin", json={"seat": "s9"}).status_code == 200
        seats(api, "s1")
        # now it knows the site's seats: one it has never heard of is a 404
        r = c.post("/me/signin", json={"seat": "s7"})
        assert r.status_code == 404 and "no seat 's7' on the floor" in r.json()["detail"]
        assert c.get("/me/signin").json()["signin"]["seat"] == "s9"
    with api.client(Role.SUPERVISOR) as c:
        r = c.put("/signins/s%201", json={"username": AGENT})
        assert r.status_code == 422 and "is not 1-64 characters" in r.text
        assert c.put("/signins/s7", json={"username": AGENT}).status_code == 404
    assert [s for s, _b, _r in watcher.messages] == ["s9"]
    assert [e["outcome"] for e in audit(api, "signin")] == ["unknown_seat", "unknown_seat",
                                                            "done"]  # fmt: skip


def test_only_agents_with_their_own_account(api: LiveApi) -> None:
    seats(api, "s1", "s2")
    add_agent(api)
    with api.client(Role.AGENT) as c:
        # an agent names no one but itself: there is no field for another agent
        r = c.post("/me/signin", json={"seat": "s1", "username": OTHER[0]})
        assert r.status_code == 422 and "username" in r.text
        # and the supervisors' route is not an agent's
        r = c.put("/signins/s1", json={"username": OTHER[0]})
        assert r.status_code == 403 and "needs role admin, supervisor" in r.json()["detail"]
        assert c.delete("/signins/s1").status_code == 403
    with login(api, OTHER[0]) as grace:
        assert grace.get("/me/signin").json()["signin"] is None
    with api.client(Role.SUPERVISOR) as c:
        # a supervisor signs in agents only
        r = c.put("/signins/s1", json={"username": USERS[Role.FACILITIES][0]})
        assert r.status_code == 409 and "not an agent" in r.json()["detail"]
        assert c.put("/signins/s1", json={"username": "nobody.here"}).status_code == 404
        # and may not sign itself in at /me/signin: it is not an agent
        assert c.post("/me/signin", json={"seat": "s1"}).status_code == 403
        assert c.get("/signins").json() == []
    # a must-change-password agent does nothing before changing it
    add_agent(api, "ken.new", "Ken New", "a3", must_change_password=True)
    with login(api, "ken.new") as ken:
        r = ken.post("/me/signin", json={"seat": "s2"})
        assert r.status_code == 403 and "change your password first" in r.json()["detail"]


def test_a_supervisor_signs_agents_in_and_out_audited(api: LiveApi, watcher: Watcher) -> None:
    seats(api, "s1", "s2")
    add_agent(api)
    with api.client(Role.AGENT) as c:
        c.post("/me/signin", json={"seat": "s1"})
    with api.client(Role.SUPERVISOR) as c:
        # over another agent: that one is signed out (cause supervisor)
        r = c.put("/signins/s1", json={"username": OTHER[0]})
        assert r.status_code == 200, r.text
        over = r.json()
        assert over["signin"]["username"] == OTHER[0] and over["signin"]["cause"] == "supervisor"
        assert over["replaced"]["username"] == AGENT
        assert over["replaced"]["until_cause"] == "supervisor"
        assert over["replaced"]["until_by"] == SUPERVISOR
        body = watcher.by_id(over["changes"]["s1"])
        assert (body["agent"], body["previous"], body["cause"], body["by"]) == (
            "a2", "a1", "supervisor", SUPERVISOR)  # fmt: skip
        # the same agent to another seat: a move
        moved = c.put("/signins/s2", json={"username": OTHER[0]}).json()
        assert moved["moved_from"] == "s1"
        assert watcher.by_id(moved["changes"]["s1"])["cause"] == "moved"
        # and out
        r = c.delete("/signins/s2")
        assert r.status_code == 200, r.text
        body = watcher.by_id(r.json()["changes"]["s2"])
        assert (body["agent"], body["cause"], body["by"]) == (None, "supervisor", SUPERVISOR)
        assert c.delete("/signins/s2").status_code == 404
    # the replaced agent's page says why
    with api.client(Role.AGENT) as c:
        mine = c.get("/me/signin").json()
        assert mine["signin"] is None
        assert (mine["last_signout"]["until_cause"], mine["last_signout"]["until_by"]) == (
            "supervisor", SUPERVISOR)  # fmt: skip
    signins = [e for e in audit(api, "signin") if e["actor"] == SUPERVISOR]
    assert [(e["target"], e["outcome"], e["detail"]["username"]) for e in signins] == [
        ("s2", "done", OTHER[0]), ("s1", "done", OTHER[0])]  # fmt: skip
    assert signins[1]["detail"]["replaced"] == AGENT
    signouts = [e for e in audit(api, "signout") if e["actor"] == SUPERVISOR]
    assert [(e["target"], e["outcome"]) for e in signouts] == [("s2", "not_signed_in"),
                                                               ("s2", "done")]  # fmt: skip


def test_a_disabled_agent_is_signed_out(api: LiveApi, watcher: Watcher) -> None:
    seats(api, "s1")
    add_agent(api)
    with login(api, OTHER[0]) as grace:
        grace.post("/me/signin", json={"seat": "s1"})
    with api.client(Role.ADMIN) as c:
        assert c.patch(f"/users/{OTHER[0]}", json={"disabled": True}).status_code == 200
    body = watcher.wait(lambda ms: next((b for _s, b, _r in ms if b["cause"] == "account"),
                                        None), "the account's sign-out")  # fmt: skip
    assert (body["seat"], body["agent"], body["previous"], body["by"]) == (
        "s1", None, "a2", USERS[Role.ADMIN][0])  # fmt: skip
    with api.client(Role.SUPERVISOR) as c:
        assert c.get("/signins").json() == []
        r = c.put("/signins/s1", json={"username": OTHER[0]})
        assert r.status_code == 409 and "disabled" in r.json()["detail"]


def test_the_history_of_a_day(api: LiveApi) -> None:
    seats(api, "s1", "s2")
    with api.client(Role.AGENT) as c:
        c.post("/me/signin", json={"seat": "s1"})
        c.post("/me/signin", json={"seat": "s2"})
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with api.client(Role.SUPERVISOR) as c:
        r = c.get("/signins/history", params={"day": today})
        assert r.status_code == 200, r.text
        history = r.json()
        assert history["timezone"] == "UTC"
        assert [(i["seat"], i["cause"], i["until_cause"]) for i in history["signins"]] == [
            ("s1", "self", "moved"), ("s2", "self", None)]  # fmt: skip
        assert c.get("/signins/history", params={"day": "2001-01-01"}).json()["signins"] == []
        assert c.get("/signins/history", params={"day": "2026-02-30"}).status_code == 422
    with api.client(Role.FACILITIES) as c:
        assert c.get("/signins").status_code == 200
        assert c.get("/signins/history", params={"day": today}).status_code == 403


def test_the_agents_own_page_shows_its_own_only(api: LiveApi) -> None:
    seats(api, "s1", "s2")
    now = time.time()
    today = {"offered": 0, "answered": 12, "avg_acw_s": 71.0}
    for key in ("a1", "a2"):
        api.publish("kpi_live", {"v": 1, "scope": "agent", "key": key, "t": now,
                                 "windows": {"rolling_15min": {}, "current_15min": {},
                                             "today": today}},
                    scope="agent", key=key)  # fmt: skip
    alerts = [{"v": 1, "id": f"hold-{s}-1", "rule": "hold", "seed": "S3 1.6",
               "rule_text": "a single hold must not exceed 30 s", "seat": s, "call": 7,
               "since": now - 40, "raised": now - 5, "measured": 31.0, "threshold": 30.0,
               "unit": "s", "severity": "warning", "message": f"{s}: hold 31 s",
               "status": "raised", "t": now, "who": None, "note": "", "agent": agent}
              for s, agent in (("s1", "a1"), ("s2", "a2"))]  # fmt: skip
    api.publish("alerts_open", {"v": 1, "t": now, "more": 0, "alerts": alerts})
    wait(lambda: len(api.floor.kpis.get("agent", {})) == 2
         and len(api.floor.alerts_open["alerts"]) == 2, "KPIs and alerts on the floor")
    with api.client(Role.AGENT) as c:
        page = c.get("/me/desk").json()
        assert page["signin"] is None and page["seat"] is None
        assert [a["seat"] for a in page["alerts"]] == ["s1"]  # its own, signed in or not
        assert page["kpis"]["key"] == "a1" and page["targets"]["avg_acw_s"] == 60.0
        c.post("/me/signin", json={"seat": "s1"})
        page = c.get("/me/desk").json()
        assert page["signin"]["seat"] == "s1" and page["seat"]["seat"] == "s1"
        assert [a["seat"] for a in page["alerts"]] == ["s1"]  # not a2's at s2
        assert page["kpis"]["windows"]["today"]["avg_acw_s"] == 71.0
        # and no other agent's figures, nor the floor's alerts
        assert c.get("/kpis/agent/a2").status_code == 403
        assert c.get("/alerts").status_code == 403
    with api.client(Role.SUPERVISOR) as c:
        assert c.get("/me/desk").status_code == 403


def test_the_desk_page_and_its_link(api: LiveApi) -> None:
    seats(api, "s101", "s102")
    with api.client() as c:
        r = c.get("/desk", params={"seat": "s101"})
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "desk.js" in r.text
        assert c.get("/wallboard/desk.js").status_code == 200
    with api.client(Role.FACILITIES) as c:
        links = c.get("/desk/links").json()
        assert links == [{"seat": "s101", "url": f"{api.url}/desk?seat=s101"},
                         {"seat": "s102", "url": f"{api.url}/desk?seat=s102"}]  # fmt: skip
        one = c.get("/desk/links", params={"seat": "s102"}).json()
        assert [link["seat"] for link in one] == ["s102"]
        assert c.get("/desk/links", params={"seat": "s9"}).status_code == 404
        assert c.get("/desk/links", params={"seat": "s 9"}).status_code == 422


# --- the broker away --------------------------------------------------------------------------


def test_a_sign_in_while_the_broker_is_away_reaches_it_when_back(tmp_path: Path,
                                                                  own_broker: Any) -> None:
    with LiveApi(tmp_path, own_broker) as api:
        seats(api, "s1")
        api.mqtt()  # (the test's publisher, connected before the broker goes)
        own_broker.stop()
        wait(lambda: not api.floor.connected, "the API to see the broker go")
        with api.client(Role.AGENT) as c:
            r = c.post("/me/signin", json={"seat": "s1"})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["changed"] and not answer["published"]
        assert "when the broker is back" in answer["message"]
        change = answer["changes"]["s1"]
        assert not api.accounts.seat_agent("s1").published  # type: ignore[union-attr]
        with api.client() as c:
            assert "seatlink_api_seat_agents_unpublished 1.0" in c.get("/metrics").text
        own_broker.restart()
        # the API publishes it again on its reconnect, and notes when the broker took it
        wait(lambda: api.accounts.seat_agent("s1").published,  # type: ignore[union-attr]
             "the broker to take the change", timeout=20)  # fmt: skip
        wait(lambda: "seatlink_api_seat_agents_unpublished 0.0"
             in httpx.get(api.url + "/metrics").text, "the metric to say so")
        late = Watcher(api)  # a subscriber that comes after: the broker retained it
        try:
            body = late.by_id(change)
            assert (body["seat"], body["agent"], body["cause"]) == ("s1", "a1", "self")
            assert late.messages[0][2], "a retained message"
        finally:
            late.close()
