"""The live side of the API: the WebSocket feed, live KPIs (an agent sees its own only),
open alerts and Prometheus metrics, from what the floor publishes on a real mosquitto."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from api_support import LiveApi, seat_state
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gateway.api.accounts import Role
from gateway.api.routes import ws


def _feed(api: LiveApi, token: str) -> ClientConnection:
    return connect(api.url.replace("http", "ws", 1) + f"/ws?token={token}", open_timeout=5)


def _next(conn: ClientConnection, kind: str, timeout: float = 5) -> dict[str, Any]:
    """The next message or batched update of type `kind`."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(conn.recv(timeout=max(0.01, deadline - time.monotonic())))
        for update in message["updates"] if message["type"] == "batch" else [message]:
            if update["type"] == kind:
                return update  # type: ignore[no-any-return]


def _wait(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_feed_gives_a_snapshot_then_every_change(api: LiveApi) -> None:
    now = time.time()
    api.publish("seat_state", seat_state("s1", state="ready", since=now - 30), seat="s1")
    api.publish("seat_availability", {"v": 1, "seat": "s1", "gateway": "gw1",
                                      "status": "online", "why": "heard", "t": now},
                seat="s1")  # fmt: skip
    _wait(lambda: "s1" in api.floor.seats)
    with _feed(api, api.login(Role.SUPERVISOR)) as conn:
        snap = _next(conn, "snapshot")
        assert [(s["seat"], s["state"], s["online"]) for s in snap["seats"]] == [
            ("s1", "ready", True)]
        assert snap["seats"][0]["time_in_state_s"] >= 30
        assert snap["targets"]["ring_limit"] == 3  # the seeds' (no core_config)
        api.publish("seat_state", seat_state("s2", state="ringing", call=7, since=now),
                    seat="s2")  # fmt: skip
        change = _next(conn, "seat")["seat"]
        assert (change["seat"], change["state"], change["call"]) == ("s2", "ringing", 7)
        api.publish("alerts_open", {"v": 1, "t": now, "more": 0, "alerts": [_alert("s2")]})
        assert _next(conn, "alerts")["alerts"]["alerts"][0]["rule"] == "hold_over_30_s"
        conn.send("snapshot")  # a client may ask for a fresh one
        assert len(_next(conn, "snapshot")["seats"]) == 2


@pytest.mark.parametrize(("who", "code"), [("nobody", 4401), ("agent", 4403)])
def test_the_feed_refuses_bad_tokens_and_agents(api: LiveApi, who: str, code: int) -> None:
    token = "not-a-token" if who == "nobody" else api.login(Role.AGENT)
    with _feed(api, token) as conn, pytest.raises(ConnectionClosed) as closed:
        conn.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


def test_the_feed_closes_when_its_session_ends(api: LiveApi,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws, "SESSION_CHECK_S", 0.2)
    token = api.new_login(Role.SUPERVISOR)
    with _feed(api, token) as conn:
        _next(conn, "snapshot")
        with api.client(token=token) as c:
            assert c.post("/auth/logout").status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            _next(conn, "never", timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_a_slow_feed_is_told_to_resync_and_counted(api: LiveApi) -> None:
    feed = api.floor.subscribe()
    try:
        for i in range(api.settings.ws_queue_max + 5):  # one batch each
            api.call(_push_and_flush(api, {"type": "seat", "seat": {"seat": f"x{i}"}}))
        assert json.loads(api.call(feed.get())) == {"type": "resync"}
        assert api.floor.counts.feed_resyncs == 1
    finally:
        feed.close()


def test_changes_within_a_batch_go_out_once_at_their_latest(api: LiveApi) -> None:
    with _feed(api, api.login(Role.SUPERVISOR)) as conn:
        _next(conn, "snapshot")
        api.call(_push_all(api, [{"type": "seat", "seat": {"seat": "s7", "state": state}}
                                 for state in ("ringing", "talking", "hold")]
                         + [{"type": "kpi", "scope": "queue", "key": "q1", "kpi": {}}]))
        batch = json.loads(conn.recv(timeout=5))
    assert batch["type"] == "batch"
    assert [(u["type"], u.get("seat", {}).get("state")) for u in batch["updates"]] == [
        ("seat", "hold"), ("kpi", None)]


async def _push_all(api: LiveApi, updates: list[dict[str, Any]]) -> None:
    for update in updates:
        api.floor._push(update)


async def _push_and_flush(api: LiveApi, update: dict[str, Any]) -> None:
    api.floor._push(update)
    api.floor._flush()


def test_live_kpis_an_agent_sees_its_own_only(api: LiveApi) -> None:
    for scope, key in (("agent", "a1"), ("agent", "a2"), ("queue", "q1")):
        api.publish("kpi_live", {"v": 1, "scope": scope, "key": key, "t": time.time(),
                                 "windows": {"today": {"offered": 3}}},
                    scope=scope, key=key)  # fmt: skip
    _wait(lambda: len(api.floor.kpis.get("agent", {})) == 2 and api.floor.kpis.get("queue"))
    with api.client(Role.SUPERVISOR) as c:
        assert c.get("/kpis/queue/q1").json()["windows"]["today"]["offered"] == 3
        assert set(c.get("/kpis/agent").json()) == {"a1", "a2"}
        assert c.get("/kpis/queue/q9").status_code == 404
        assert c.get("/kpis/team/q1").status_code == 422
    with api.client(Role.AGENT) as c:  # the agent account's id is a1
        assert c.get("/kpis/agent/a1").status_code == 200
        assert c.get("/kpis/agent/a2").status_code == 403
        assert c.get("/kpis/queue/q1").status_code == 403


def test_metrics_count_seats_outbox_alerts_and_commands(api: LiveApi) -> None:
    now = time.time()
    for seat, status in (("s1", "online"), ("s2", "offline")):
        api.publish("seat_availability", {"v": 1, "seat": seat, "gateway": "gw1",
                                          "status": status, "why": "test", "t": now},
                    seat=seat)  # fmt: skip
    api.publish("alerts_open", {"v": 1, "t": now, "more": 0,
                                "alerts": [_alert("s1"), _alert("s2", ident="a-2")]})  # fmt: skip
    _wait(lambda: len(api.floor.seats) == 2 and api.floor.alerts_open["alerts"])
    with api.client(Role.SUPERVISOR) as c:
        c.post("/seats/nobody/state", json={"state": "ready"})  # 404, counted nowhere
    with api.client() as c:  # open for Prometheus: counts only
        text = c.get("/metrics").text
    assert "seatlink_seats_online 1.0" in text
    assert "seatlink_seats_known 2.0" in text
    assert 'seatlink_alerts_open{rule="hold_over_30_s"} 2.0' in text
    assert "seatlink_api_broker_connected 1.0" in text
    assert "alan" not in text and "s1" not in text  # no names, no seat ids


def _alert(seat: str, *, ident: str = "a-1") -> dict[str, Any]:
    now = time.time()
    return {"v": 1, "id": ident, "rule": "hold_over_30_s", "seed": "S3 1.6",
            "rule_text": "a hold over 30 s", "seat": seat, "call": 7, "since": now - 40,
            "raised": now - 10, "measured": 40, "threshold": 30, "unit": "s",
            "severity": "warning", "message": "hold 40 s", "status": "raised", "t": now,
            "who": None, "note": ""}  # fmt: skip


def test_bad_messages_on_the_floor_are_counted_and_kept_out(api: LiveApi) -> None:
    now = time.time()
    bad_state = {**seat_state("s1", since=now), "since": "yesterday"}
    api.publish("seat_state", bad_state, seat="s1")
    api.publish("seat_state", seat_state("s9"), seat="s2")  # names another seat
    api.publish("seat_state", b"not json", seat="s3")
    api.publish("kpi_live", {"v": 1, "scope": "queue", "key": "q2", "t": now, "windows": {}},
                scope="queue", key="q1")  # fmt: skip
    api.publish("seat_state", seat_state("s4", since=now), seat="s4")  # a good one after
    _wait(lambda: "s4" in api.floor.seats)
    with api.client(Role.SUPERVISOR) as c:
        seats = c.get("/seats")
        assert seats.status_code == 200
        assert [s["seat"] for s in seats.json()] == ["s4"]
        assert c.get("/kpis/queue").json() == {}
    with api.client() as c:
        text = c.get("/metrics").text
    assert 'seatlink_api_mqtt_malformed{topic="seat_state"} 3.0' in text  # not JSON too
    assert 'seatlink_api_mqtt_malformed{topic="kpi_live"} 1.0' in text
