"""Commands from the API reach real seats: the edge gateway with virtual seats running the
real firmware, over a real mosquitto. Each answer is the seat's own outcome; bad input is a
clear 4xx and nothing is sent; every command is in the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import USERS, LiveApi

from gateway.api.accounts import Role
from gateway.edge.service import EdgeService
from gateway.virtual_farm import SeatFarm
from tests.edge.edge_support import release_bundle, write_inventory
from tests.edge.edge_support import settings as edge_settings

MSG = 18  # firmware/seat.py: the slot of a supervisor's message colour


@pytest.fixture
def farm(request: pytest.FixtureRequest) -> Iterator[SeatFarm]:
    """Two virtual seats; a test may give the board name their hello sends (indirect
    parametrize): "microbit" plays micro:bit v1 seats."""
    with SeatFarm(2, board_name=getattr(request, "param", "virtual")) as seats:
        yield seats


@pytest.fixture
def floor(tmp_path: Path, mqtt_broker: Any, farm: SeatFarm) -> Iterator[LiveApi]:
    """Two virtual seats behind a real edge gateway, and the API on the same site, with an
    agent signed in at s0 through the API before the gateway starts (issue 19: a seat with
    nobody signed in is logged out once its gateway says so)."""
    with LiveApi(tmp_path, mqtt_broker) as api:
        with api.client(Role.SUPERVISOR) as c:
            r = c.put("/signins/s0", json={"username": USERS[Role.AGENT][0]})
            assert r.status_code == 200 and r.json()["published"], r.text
        write_inventory(tmp_path / "inventory.toml",
                        {"s0": farm.seats[0].uid, "s1": farm.seats[1].uid})  # fmt: skip
        cfg = edge_settings(tmp_path, mqtt_broker, api.topics, [s.url for s in farm.seats],
                            drain_process=False)  # fmt: skip
        edge = EdgeService(cfg)
        api.call(edge.__aenter__())
        try:
            with api.client(Role.SUPERVISOR) as c:
                wait(lambda: all(s["online"] and s["state"] for s in c.get("/seats").json())
                     and len(c.get("/seats").json()) == 2, 20, "both seats online")  # fmt: skip
            yield api
        finally:
            api.call(edge.__aexit__(None, None, None))


def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def seat(api: LiveApi, seat: str) -> dict[str, Any]:
    with api.client(Role.SUPERVISOR) as c:
        body: dict[str, Any] = c.get(f"/seats/{seat}").json()
    return body


def test_force_state_and_log_out_reach_the_seat(floor: LiveApi) -> None:
    with floor.client(Role.SUPERVISOR) as c:
        r = c.post("/seats/s0/state", json={"state": "ready"})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        wait(lambda: seat(floor, "s0")["state"] == "ready", 5, "s0 ready")
        r = c.post("/seats/s0/state", json={"state": "not_ready", "reason": "meal"})
        assert r.json()["status"] == "done", r.text
        wait(lambda: (seat(floor, "s0")["state"], seat(floor, "s0")["reason"])
             == ("not_ready", "meal"), 5, "s0 not ready, meal")  # fmt: skip
        r = c.post("/seats/s0/state", json={"state": "not_ready"})
        assert r.json()["status"] == "done"
        wait(lambda: seat(floor, "s0")["reason"] == "supervisor", 5, "the default reason")
        r = c.post("/seats/s0/logout")
        assert r.json()["status"] == "done", r.text
        wait(lambda: seat(floor, "s0")["state"] == "logged_out", 5, "s0 logged out")
    assert seat(floor, "s1")["state"] == "logged_out"  # the other seat untouched
    with floor.client(Role.ADMIN) as c:
        entries = c.get("/audit", params={"action": "seat_set_state"}).json()
    assert [(e["actor"], e["target"], e["outcome"]) for e in entries][:4] == [
        (USERS[Role.SUPERVISOR][0], "s0", "done")] * 4
    assert entries[0]["detail"]["state"] == "logged_out"


def test_a_message_shows_on_the_seats_light(floor: LiveApi, farm: SeatFarm) -> None:
    seat_s = farm.seats[0].firmware.module("seat").S  # type: ignore[union-attr]
    with floor.client(Role.SUPERVISOR) as c:
        r = c.post("/seats/s0/message", json={"colour": "cyan", "seconds": 20})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        assert seat_s[MSG] == 6  # cyan, flashing over the light (docs/seat.md)
        r = c.post("/seats/s0/message", json={"colour": "cyan", "seconds": 0})
        assert r.json()["status"] == "done"
        assert seat_s[MSG] == 0
        r = c.post("/seats/s0/message", json={"colour": "pink", "seconds": 5})
        assert r.status_code == 422 and "colour" in r.text


def test_settings_to_one_seat_and_to_a_group(floor: LiveApi) -> None:
    with floor.client(Role.SUPERVISOR) as c:
        r = c.post("/seats/s0/settings", json={"acw_s": 45, "hold_limit_s": 40})
        assert r.status_code == 200, r.text
        assert r.json()["done"] == 1 and r.json()["not_done"] == 0, r.text
        # more than one G frame holds: sent as two commands, both done
        r = c.post("/seats/settings", json={"seats": ["s0", "s1"], "settings": {
            "ring_limit": 4, "ring_ms": 4000, "miss_limit": 2, "acw_s": 30, "acw_stay_nr": 0,
            "hold_remind_s": 20, "hold_limit_s": 30, "away_s": 15}})  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["done"], body["not_done"]) == (4, 0), body
        assert sorted(o["seat"] for o in body["outcomes"]) == ["s0", "s0", "s1", "s1"]


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("/seats/s0/settings", {"acw_s": 9999}, 422, "acw_s 9999 is not 0..600"),
    ("/seats/s0/settings", {}, 422, "no setting given"),
    ("/seats/s0/settings", {"debounce_ms": 10}, 422, "debounce_ms"),
    ("/seats/s0/state", {"state": "talking"}, 422, "state"),
    ("/seats/s0/state", {"state": "ready", "reason": "meal"}, 422, "not_ready only"),
    ("/seats/nobody/state", {"state": "ready"}, 404, "no seat 'nobody'"),
    ("/seats/settings", {"seats": ["s0", "nobody"], "settings": {"acw_s": 30}}, 404,
     "no seat nobody"),
])  # fmt: skip
def test_bad_commands_are_refused_and_nothing_is_sent(floor: LiveApi, path: str,
                                                      body: dict[str, Any], status: int,
                                                      says: str) -> None:  # fmt: skip
    before = floor.floor.counts.messages["seat_cmd_result"]
    with floor.client(Role.SUPERVISOR) as c:
        r = c.post(path, json=body)
    assert r.status_code == status, r.text
    assert says in r.text
    time.sleep(0.5)
    assert floor.floor.counts.messages["seat_cmd_result"] == before  # no command went out
    assert seat(floor, "s0")["state"] == "logged_out"


def test_a_firmware_update_requested_through_the_api(floor: LiveApi, farm: SeatFarm) -> None:
    good = release_bundle("0.1.1")
    with floor.client(Role.FACILITIES) as c:
        # bad input: a clear 4xx, nothing sent
        damaged = json.loads(json.dumps(good))
        damaged["boards"]["microbit"]["files"][0]["size"] = 1
        r = c.post("/firmware/updates", json={"seats": ["s0"], "bundle": damaged})
        assert r.status_code == 422 and "fw0: " in r.text and "truncated" in r.text, r.text
        r = c.post("/firmware/updates", json={"seats": ["s0", "nobody"], "bundle": good})
        assert r.status_code == 404 and "nobody" in r.json()["detail"], r.text
        r = c.post("/firmware/updates", json={"seats": ["s0", "s0"], "bundle": good})
        assert r.status_code == 422 and "listed twice" in r.text, r.text
        assert seat(floor, "s0")["firmware_update"] is None

        r = c.post("/firmware/updates", json={"seats": ["s0"], "bundle": good})
        assert r.status_code == 202, r.text
        [job] = r.json()["jobs"]
        assert (job["gateway"], job["status"], job["seats"]) == ("gw1", "queued",
                                                                 {"s0": "queued"})
        assert job["by"] == USERS[Role.FACILITIES][0]
        wait(lambda: (seat(floor, "s0")["firmware_update"] or {}).get("stage") == "done", 60,
             "s0 updated")  # fmt: skip
        wait(lambda: seat(floor, "s0")["firmware"] == "0.1.1", 20, "s0 reports 0.1.1")
        jobs = c.get("/firmware/jobs").json()
        assert [(j["job"], j["status"], j["seats"]) for j in jobs] == [
            (job["job"], "done", {"s0": "done"})]
    assert seat(floor, "s1")["firmware"] != "0.1.1"  # the other seat untouched
    with floor.client(Role.ADMIN) as c:
        entries = c.get("/audit", params={"action": "firmware_update"}).json()
    assert [(e["actor"], e["outcome"]) for e in entries][:2] == [
        (USERS[Role.FACILITIES][0], "queued"), (USERS[Role.FACILITIES][0], "unknown_seat")]
    assert entries[0]["detail"]["to_version"] == "0.1.1"


def test_a_supervisors_firmware_update_is_refused_and_nothing_is_sent(
        floor: LiveApi, farm: SeatFarm) -> None:  # fmt: skip
    """Firmware updates are facilities' and admins' (issue 19): a supervisor's request is a
    403 naming the roles, no job reaches a gateway, no seat is touched."""
    boots = [s.boot for s in farm.seats]
    jobs_before = floor.floor.counts.messages["firmware_job"]
    with floor.client(Role.SUPERVISOR) as c:
        r = c.post("/firmware/updates", json={"seats": ["s0"],
                                               "bundle": release_bundle("0.1.1")})
        assert r.status_code == 403, r.text
        assert r.json()["detail"] == "needs role admin, facilities; you have supervisor"
        time.sleep(1.0)  # a gateway answers a job at once (queued or invalid)
        assert c.get("/firmware/jobs").json() == []  # still readable by a supervisor
    assert floor.floor.counts.messages["firmware_job"] == jobs_before  # no job went out
    assert seat(floor, "s0")["firmware_update"] is None
    assert [s.boot for s in farm.seats] == boots
    with floor.client(Role.ADMIN) as c:
        assert c.get("/audit", params={"action": "firmware_update"}).json() == []


@pytest.mark.parametrize("farm", ["microbit"], indirect=True)
def test_a_firmware_update_of_microbit_v1_seats_is_refused(floor: LiveApi,
                                                           farm: SeatFarm) -> None:  # fmt: skip
    """micro:bit v1 seats take a whole image at the desk: the gateway refuses the job, and
    the API answers 409 with how they are updated instead; nothing is touched."""
    boots = [s.boot for s in farm.seats]
    with floor.client(Role.FACILITIES) as c:
        r = c.post("/firmware/updates", json={"seats": ["s0", "s1"],
                                               "bundle": release_bundle("0.1.1")})
        assert r.status_code == 409, r.text
        assert r.json()["detail"] == (
            "gateway gw1: s0, s1: micro:bit v1 seats take a whole image: seatlink flash --image "
            "FILE.hex --drive PATH at the desk (DAPLink); a remote update rewrites firmware "
            "files, which a micro:bit v1 does not keep (nothing was touched)")
    assert seat(floor, "s0")["firmware_update"] is None
    assert [s.boot for s in farm.seats] == boots
    with floor.client(Role.ADMIN) as c:
        entries = c.get("/audit", params={"action": "firmware_update"}).json()
    assert [e["outcome"] for e in entries][:1] == ["invalid"]
