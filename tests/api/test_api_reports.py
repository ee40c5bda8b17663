"""Reports and a day's KPIs through the API, read from a real core store holding a generated
day (12 seats, 08:00-12:00 in Shanghai): the same figures the core's own reports give."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import LiveApi

from gateway.api.accounts import Role
from gateway.contract.topics import Topics
from gateway.core.store import open_store
from tools.trace import generate

DAY_START = 1_768_492_800.0  # 2026-01-16 00:00 in Asia/Shanghai


def _fill(store_path: Path) -> int:
    trace = generate(seats=12, queues=2, start=DAY_START + 8 * 3600, hours=4, seed=3,
                     encode=True)  # fmt: skip
    topics = Topics(site="hq")
    messages = [(topics.seat_event(i) if k == "seat" else topics.topic("call_event", call=i), b)
                for k, i, b in trace.encoded]  # fmt: skip
    # agents a1 and a2 at the first two seats (the schedule's), at the others one each of
    # the seat's own id, signed in from before the day (issue 19: KPIs are by agent)
    for n, seat in enumerate(sorted({i for k, i, _ in trace.encoded if k == "seat"}), 1):
        agent = {1: "a1", 2: "a2"}.get(n, seat)
        change = {"v": 1, "id": f"api-{n}", "seat": seat, "agent": agent, "name": None,
                  "t": DAY_START, "by": "sup", "cause": "self", "previous": None}
        messages.append((topics.topic("seat_agent", seat=seat), json.dumps(change).encode()))
    with open_store(store_path, topics=topics, clock=lambda: DAY_START + 86400) as store:
        assert store.ingest(messages).stored == len(messages)
    return sum(b'"type":"answer"' in b for _, b in messages)


@pytest.fixture
def reports(tmp_path: Path, mqtt_broker: Any) -> Iterator[tuple[LiveApi, int]]:
    answered = _fill(tmp_path / "core.db")
    # the schedule names agents (a1, a2 signed in at s0001, s0002 by _fill; a99 nowhere)
    agents = (("a1", "08:00-12:00"), ("a2", "07:00-12:00"), ("a99", "08:00-12:00"))
    (tmp_path / "schedule.toml").write_text('zone = "Asia/Shanghai"\n' + "".join(
        f'[[agent]]\nid = "{a}"\n[agent.days]\n2026-01-16 = "{shift}"\n'
        for a, shift in agents))  # fmt: skip
    with LiveApi(tmp_path, mqtt_broker, timezone="Asia/Shanghai",
                 schedule=tmp_path / "schedule.toml") as api:  # fmt: skip
        yield api, answered


def test_attendance_flags_late_and_absent_agents(reports: tuple[LiveApi, int]) -> None:
    api, _ = reports
    with api.client(Role.SUPERVISOR) as c:
        rows = {r["agent"]: r for r in c.get("/reports/attendance",
                                             params={"month": "2026-01"}).json()}  # fmt: skip
        page = c.get("/reports/attendance.html", params={"month": "2026-01"})
        assert c.get("/reports/attendance", params={"month": "2026-13"}).status_code == 400
        assert c.get("/reports/attendance", params={"month": "Jan"}).status_code == 422
    assert rows["a1"]["half_days"] == 0 and rows["a1"]["absences"] == 0
    assert rows["a2"]["late"] == 1 and rows["a2"]["half_days"] >= 1
    assert rows["a99"]["absences"] == 1
    assert "rows" not in rows["a1"]  # the shift rows are in the page, not the summary
    assert page.status_code == 200 and "a99" in page.text
    with api.client(Role.ADMIN) as c:
        audit = c.get("/audit", params={"action": "report_attendance"}).json()
    assert [(e["actor"], e["target"]) for e in audit][0] == ("sam.okafor", "2026-01")


def test_a_days_kpis_match_the_store(reports: tuple[LiveApi, int]) -> None:
    api, answered = reports
    with api.client(Role.SUPERVISOR) as c:
        day = c.get("/kpis/daily", params={"day": "2026-01-16"}).json()
        empty = c.get("/kpis/daily", params={"day": "2026-01-15"}).json()
        page = c.get("/reports/daily.html", params={"day": "2026-01-16"})
        assert c.get("/kpis/daily", params={"day": "2026-02-30"}).status_code == 422
    assert day["site"]["answered"] == answered > 50
    assert sum(q["answered"] for q in day["queues"].values()) == answered
    assert len(day["agents"]) == 12
    assert empty["site"]["offered"] == 0  # a day with nothing: a report that says so
    assert page.status_code == 200 and f">{answered}<" in page.text.replace(",", "")


def test_a_days_kpis_and_page_use_the_targets_of_the_cores_settings(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    """Issue 18: with 2 rings and T = 25 s in the core's [targets], /kpis/daily and
    /reports/daily.html compute with them, as `seatlink core --report` does."""
    from tests import target_day

    target_day.fill(tmp_path / "core.db")
    (tmp_path / "core.toml").write_text(f'site = "{target_day.SITE}"\nstore = "core.db"\n'
                                        "[targets]\nring_limit = 2\nsl_threshold_s = 25\n")
    with LiveApi(tmp_path, mqtt_broker, core_config=tmp_path / "core.toml") as api, \
            api.client(Role.SUPERVISOR) as c:  # fmt: skip
        day = c.get("/kpis/daily", params={"day": target_day.DAY.isoformat()})
        page = c.get("/reports/daily.html", params={"day": target_day.DAY.isoformat()})
    assert day.status_code == 200, day.text
    assert target_day.figures(day.json()["site"]) == target_day.SITE_TARGETS
    assert target_day.figures(day.json()["queues"]["support"]) == target_day.SITE_TARGETS
    assert page.status_code == 200
    assert "Answered within 2 rings" in page.text and "answered within 25 s" in page.text
    assert ">50.0 %<" in page.text  # within 2 rings: calls 1 and 3 of 4


def test_the_api_refuses_a_core_config_with_bad_targets(tmp_path: Path) -> None:
    from gateway.api.settings import load_settings

    (tmp_path / "core.toml").write_text("[targets]\nservice_level = 80\n")
    (tmp_path / "api.toml").write_text('core_config = "core.toml"\n')
    with pytest.raises(ValueError, match=r"(?s)core_config .*targets\.service_level"):
        load_settings(tmp_path / "api.toml")
    (tmp_path / "api.toml").write_text('core_config = "nowhere.toml"\n')
    with pytest.raises(ValueError, match=r"core_config .*nowhere\.toml"):
        load_settings(tmp_path / "api.toml")
    (tmp_path / "core.toml").write_text("[targets]\nring_limit = 2\n")
    (tmp_path / "api.toml").write_text('core_config = "core.toml"\n')
    assert load_settings(tmp_path / "api.toml").site_targets().ring_limit == 2
