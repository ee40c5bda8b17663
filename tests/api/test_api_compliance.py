"""Compliance through the API with the real PBX connector behind it: a Do-Not-Call number an
agent adds is refused on the very next dial, and the decision shows in the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_support import LiveApi

from gateway.api.accounts import Role
from gateway.pbx.runner import build
from gateway.pbx.settings import PbxSettings

DAYTIME = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: within calling hours


@pytest.fixture
def with_pbx(tmp_path: Path, mqtt_broker: Any) -> Iterator[LiveApi]:
    with LiveApi(tmp_path, mqtt_broker, pbx="pbx1") as api:
        cfg = PbxSettings(pbx="pbx1", site=api.topics.site, root=api.topics.root,
                          broker={"host": mqtt_broker.host,  # type: ignore[arg-type]
                                  "port": mqtt_broker.port},
                          queues={"q1": {"seats": ["s0"]}},  # type: ignore[dict-item]
                          store=tmp_path / "pbx.db", health_interval_s=1.0,
                          compliance={"dnc": tmp_path / "dnc.db"})  # type: ignore[arg-type]
        pbx = api.call(_build(cfg))  # its stores belong to the loop's thread
        try:
            api.call(pbx.wait_online())
            yield api
        finally:
            api.call(pbx.__aexit__(None, None, None))


async def _build(cfg: PbxSettings) -> Any:
    pbx = build(cfg, wall=lambda: DAYTIME)
    await pbx.__aenter__()
    return pbx


def _dial(api: LiveApi, number: str, ident: str) -> dict[str, Any]:
    api.publish("pbx_cmd", {"v": 1, "id": ident, "command": "dial", "seat": "s0",
                            "number": number, "caller_id": "+86 21 6000 0000"},
                pbx="pbx1")  # fmt: skip
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [d for d in api.floor.decisions if d.get("number", "").endswith(number[-4:])]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("no compliance decision in 5 s")


def test_a_number_an_agent_adds_is_refused_at_once(with_pbx: LiveApi) -> None:
    api = with_pbx
    with api.client(Role.AGENT) as c:
        r = c.post("/compliance/dnc", json={"number": "+86 21 6123 4567"})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        r = c.post("/compliance/dnc", json={"number": "12345 678"})
        assert r.status_code == 400 and "refused the number" in r.json()["detail"], r.text
        assert c.get("/compliance/decisions").status_code == 403
    denied = _dial(api, "021 6123 4567", "d1")
    assert (denied["allowed"], denied["rule"], denied["number"]) == (False, "dnc", "***4567")
    with api.client(Role.SUPERVISOR) as c:
        shown = c.get("/compliance/decisions", params={"denied_only": True}).json()
    assert [(d["rule"], d["number"]) for d in shown] == [("dnc", "***4567")]
    with api.client(Role.ADMIN) as c:
        audit = c.get("/audit", params={"action": "dnc_add"}).json()
    assert [(e["actor"], e["target"], e["outcome"]) for e in audit] == [
        ("alan.turing", "***5678", "invalid"), ("alan.turing", "***4567", "done")]
    assert all("6123" not in str(e) for e in audit)  # the number is never kept whole
