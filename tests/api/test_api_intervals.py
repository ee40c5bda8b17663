"""A day's hours and quarter-hours per site, queue and agent through the API (issue 18):
`GET /kpis/intervals`, read from a real core store holding tests/interval_day.py, gives what
kpi.py's Python API computes for the same events, to the roles that may see them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import LiveApi

from gateway.api.accounts import Role
from gateway.core.kpi import By, SignIns, buckets, kpis, state_intervals
from gateway.core.report import Targets, day_window
from tests import interval_day

DAY = interval_day.DAY.isoformat()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mqtt_broker: Any) -> Iterator[LiveApi]:
    tmp = tmp_path_factory.mktemp("intervals")
    interval_day.fill(tmp / "core.db")
    with LiveApi(tmp, mqtt_broker, timezone="Asia/Shanghai") as api:
        yield api


def expected(by: By, size_s: int, site: str, targets: Targets | None = None
             ) -> list[dict[str, dict[str, Any]]]:  # fmt: skip
    """kpis() over the day's buckets, as the API's JSON carries them."""
    targets = targets or Targets()
    calls, seats = interval_day.events()
    day = day_window(interval_day.DAY, interval_day.TZ)
    spans = state_intervals(seats, until=interval_day.DAY_END)
    return [{k: dataclasses.asdict(v) for k, v in kpis(
                calls, spans, window=w, by=by, site=site, ring_limit=targets.ring_limit,
                sl_threshold_s=targets.sl_threshold_s,
                sign_ins=SignIns(interval_day.sign_ins())).items()}
            for w in buckets(day.start, day.end, size_s, tz=interval_day.TZ)]  # fmt: skip


def test_a_supervisor_reads_every_scope_per_hour_and_quarter(live: LiveApi) -> None:
    site = live.topics.site
    with live.client(Role.SUPERVISOR) as c:
        queues = c.get("/kpis/intervals", params={"day": DAY, "scope": "queue"})
        agents = c.get("/kpis/intervals", params={"day": DAY, "scope": "agent", "bucket": 15})
        whole = c.get("/kpis/intervals", params={"day": DAY})
        one = c.get("/kpis/intervals", params={"day": DAY, "scope": "queue", "key": "sales",
                                               "bucket": 60})  # fmt: skip
    assert queues.status_code == 200, queues.text
    body = queues.json()
    assert (body["day"], body["scope"], body["bucket"], body["timezone"]) == (
        DAY, "queue", 60, "Asia/Shanghai")  # fmt: skip
    assert (body["ring_limit"], body["sl_threshold_s"]) == (3, 20.0)
    assert len(body["intervals"]) == 24
    assert body["intervals"][10]["start"] == "2026-01-16T10:00:00+08:00"
    assert body["intervals"][10]["end"] == "2026-01-16T11:00:00+08:00"
    assert [i["kpis"] for i in body["intervals"]] == expected("queue", 3600, site)
    # by hand: the 11:00 hour of support: call 3 answered in 12 s, call 5 abandoned
    support = body["intervals"][11]["kpis"]["support"]
    assert (support["offered"], support["answered"], support["abandoned"]) == (2, 1, 1)
    assert (support["service_level"], support["aht_s"]) == (1.0, 110.0)  # 90 + 20
    quarters = agents.json()["intervals"]
    assert len(quarters) == 96
    assert [i["kpis"] for i in quarters] == expected("agent", 900, site)
    # 10:00-10:15: a1 answered call 1 (8 s), talked 120 s and took 30 s of ACW
    a1 = quarters[40]["kpis"]["a1"]
    assert (a1["answered"], a1["handled"], a1["avg_acw_s"], a1["aht_s"]) == (1, 1, 30.0, 150.0)
    assert [i["kpis"] for i in whole.json()["intervals"]] == expected("site", 3600, site)
    assert set(whole.json()["intervals"][0]["kpis"]) == {site}  # the site is always listed
    only = [i["kpis"] for i in one.json()["intervals"]]
    assert only == [{k: v for k, v in e.items() if k == "sales"}
                    for e in expected("queue", 3600, site)]  # fmt: skip
    assert only[10]["sales"]["answered"] == 1 and only[9] == {}


def test_an_agent_reads_its_own_intervals_only(live: LiveApi) -> None:
    site = live.topics.site
    with live.client(Role.AGENT) as c:  # alan.turing, agent id a1
        own = c.get("/kpis/intervals", params={"day": DAY, "scope": "agent", "key": "a1",
                                               "bucket": 15})  # fmt: skip
        other = c.get("/kpis/intervals", params={"day": DAY, "scope": "agent", "key": "s2"})
        every = c.get("/kpis/intervals", params={"day": DAY, "scope": "agent"})
        queue = c.get("/kpis/intervals", params={"day": DAY, "scope": "queue",
                                                 "key": "support"})  # fmt: skip
        whole = c.get("/kpis/intervals", params={"day": DAY})
    assert own.status_code == 200, own.text
    assert [i["kpis"] for i in own.json()["intervals"]] == [
        {k: v for k, v in e.items() if k == "a1"} for e in expected("agent", 900, site)
    ]
    for refused in (other, every, queue, whole):
        assert refused.status_code == 403, refused.text
        assert "own figures only" in refused.json()["detail"]
        assert "key=a1" in refused.json()["detail"]
    with live.client(Role.FACILITIES) as c:
        assert c.get("/kpis/intervals", params={"day": DAY}).status_code == 403
    with live.client() as c:
        nobody = c.get("/kpis/intervals", params={"day": DAY, "scope": "agent", "key": "a1"})
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("params", "field", "says"), [
    ({"day": "2026-02-30"}, "day", "date"),
    ({"day": "16/01/2026"}, "day", "date"),
    ({"day": "0001-01-01"}, "day", "a day from 1970-01-01 to 2999-12-31"),
    ({}, "day", "Field required"),
    ({"day": DAY, "scope": "team"}, "scope", "'site', 'queue', 'agent' or 'seat'"),
    ({"day": DAY, "bucket": 30}, "bucket", "15 or 60 minutes"),
    ({"day": DAY, "bucket": "hour"}, "bucket", "integer"),
    ({"day": DAY, "scope": "queue", "key": "q" * 65}, "key", "at most 64 characters"),
    ({"day": DAY, "scope": "queue", "key": "a/b"}, "key", "pattern"),
])  # fmt: skip
def test_bad_input_is_refused_naming_the_parameter(live: LiveApi, params: dict[str, Any],
                                                   field: str, says: str) -> None:  # fmt: skip
    with live.client(Role.SUPERVISOR) as c:
        r = c.get("/kpis/intervals", params=params)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["query", field]
    assert says in error["msg"]
    if field == "day" and params:  # the day's report and page take days as this does
        for path in ("/kpis/daily", "/reports/daily.html"):
            with live.client(Role.SUPERVISOR) as c:
                assert c.get(path, params={"day": params["day"]}).status_code == 422, path


def test_the_intervals_use_the_targets_of_the_cores_settings(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    """With 2 rings and T = 10 s in the core's [targets], the hours' service level and
    ring figures are computed with them, as the daily report's are."""
    interval_day.fill(tmp_path / "core.db")
    (tmp_path / "core.toml").write_text("[targets]\nring_limit = 2\nsl_threshold_s = 10\n")
    site = Targets(ring_limit=2, sl_threshold_s=10.0)
    with LiveApi(tmp_path, mqtt_broker, timezone="Asia/Shanghai",
                 core_config=tmp_path / "core.toml") as api, \
            api.client(Role.SUPERVISOR) as c:  # fmt: skip
        r = c.get("/kpis/intervals", params={"day": DAY, "scope": "queue"}).json()
    assert (r["ring_limit"], r["sl_threshold_s"]) == (2, 10.0)
    assert [i["kpis"] for i in r["intervals"]] == expected("queue", 3600, api.topics.site, site)
    # support at 10:00: call 1 answered in 8 s on the first ring; 11:00: call 3, 12 s, 2 rings
    assert r["intervals"][10]["kpis"]["support"]["service_level"] == 1.0
    assert r["intervals"][11]["kpis"]["support"]["service_level"] == 0.0  # 12 s > 10 s
    assert r["intervals"][11]["kpis"]["support"]["within_ring_limit"] == 1.0  # 2 <= 2
    assert r["intervals"][10]["kpis"]["sales"]["within_ring_limit"] == 0.0  # 3 > 2
