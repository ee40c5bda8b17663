"""Alerts through the API with the real core worker behind it: an offline seat raises an
alert, which the API lists, acknowledges and resolves; the core answers each action and
keeps who did it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import USERS, LiveApi, seat_state

from gateway.api.accounts import Role
from gateway.core.service import CoreService
from gateway.core.settings import CoreSettings
from gateway.core.store import open_store


@pytest.fixture
def with_core(tmp_path: Path, mqtt_broker: Any) -> Iterator[LiveApi]:
    with LiveApi(tmp_path, mqtt_broker) as api:
        cfg = CoreSettings(site=api.topics.site, store=f"sqlite:///{tmp_path}/core.db",
                           broker={"host": mqtt_broker.host, "port": mqtt_broker.port},
                           kpi_interval_s=0.2, health_interval_s=0.2, batch_wait_s=0.01,
                           settle_s=0.0, alerts={"offline_grace_s": 0.5})  # fmt: skip
        core = CoreService(cfg)
        api.call(core.__aenter__())
        try:
            api.call(_online(core))
            yield api
        finally:
            api.call(core.__aexit__(None, None, None))


async def _online(core: CoreService) -> None:
    import asyncio

    await asyncio.wait_for(core.online.wait(), 10)


def _wait(condition: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def test_an_alert_is_listed_acknowledged_and_resolved(with_core: LiveApi) -> None:
    api = with_core
    now = time.time()
    api.publish("seat_state", seat_state("s1", since=now - 5), seat="s1")
    api.publish("seat_availability", {"v": 1, "seat": "s1", "gateway": "gw1",
                                      "status": "offline", "why": "test", "t": now},
                seat="s1")  # fmt: skip
    with api.client(Role.SUPERVISOR) as c:
        alert = _wait(lambda: next((a for a in c.get("/alerts").json()["alerts"]
                                    if a["rule"] == "offline"), None))  # fmt: skip
        assert alert["seat"] == "s1" and alert["status"] == "raised"
        r = c.post(f"/alerts/{alert['id']}/acknowledge", json={"note": "calling IT"})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        r = c.post(f"/alerts/{alert['id']}/acknowledge", json={"note": ""})
        assert r.json()["status"] == "again"
        r = c.post(f"/alerts/{alert['id']}/resolve", json={"note": "cable replaced"})
        assert r.json()["status"] == "done"
        _wait(lambda: not any(a["id"] == alert["id"] for a in c.get("/alerts").json()["alerts"]))
        r = c.post("/alerts/no-such-alert/resolve", json={"note": ""})
        assert r.status_code == 404
        r = c.post(f"/alerts/{alert['id']}/resolve", json={"note": "bad\x01note"})
        assert r.status_code == 422
    with open_store(api.settings.store) as store:
        stored = store.alert(alert["id"])
    assert stored is not None
    actions = {k: (v["who"], v["note"]) for k, v in stored["actions"].items()}
    who = USERS[Role.SUPERVISOR][0]
    assert actions["acknowledged"] == (who, "calling IT")
    assert actions["resolved"] == (who, "cable replaced")
    with api.client(Role.ADMIN) as c:
        audit = c.get("/audit", params={"action": "alert_resolve"}).json()
    assert [e["outcome"] for e in audit] == ["unknown", "done"]
