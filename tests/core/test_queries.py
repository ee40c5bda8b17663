"""The interval figures read from the store (gateway/core/queries.py, issue 18): on SQLite
and PostgreSQL, the same as the report's, computed from the same events in memory."""

from __future__ import annotations

import pytest

from gateway.core.kpi import By, SignIns
from gateway.core.queries import daily_report, interval_kpis
from gateway.core.report import Targets, day_intervals
from tests import interval_day


@pytest.mark.parametrize(("by", "size_s"), [("queue", 3600), ("agent", 900), ("site", 3600)])
def test_interval_kpis_from_the_store_are_the_events_figures(store_url: str, by: By,
                                                             size_s: int) -> None:  # fmt: skip
    interval_day.fill(store_url)
    targets = Targets(ring_limit=2, sl_threshold_s=10.0)
    stored = interval_kpis(store_url, interval_day.DAY, interval_day.TZ, by=by,
                           size_s=size_s, site="hq", targets=targets,
                           now=interval_day.DAY_END)  # fmt: skip
    calls, seats = interval_day.events()
    assert stored == day_intervals(calls, seats, interval_day.DAY, interval_day.TZ, by=by,
                                   size_s=size_s, site="hq", targets=targets,
                                   until=interval_day.DAY_END,
                                   sign_ins=SignIns(interval_day.sign_ins()))  # fmt: skip
    assert len(stored) == 86400 // size_s
    report = daily_report(store_url, interval_day.DAY, interval_day.TZ, site="hq",
                          targets=targets, now=interval_day.DAY_END)  # fmt: skip
    series = {
        ("queue", 3600): report.queue_hours,
        ("agent", 900): report.agent_quarters,
        ("site", 3600): [(w, {"hq": k}) for w, k in report.hours],
    }[(by, size_s)]
    assert stored == list(series)


def test_interval_kpis_refuses_a_bucket_the_report_does_not_offer(store_url: str) -> None:
    with pytest.raises(ValueError, match="900 or 3600"):
        interval_kpis(store_url, interval_day.DAY, interval_day.TZ, by="queue", size_s=1800,
                      site="hq", targets=Targets())  # fmt: skip
