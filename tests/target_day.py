"""A small stored day whose figures differ between 2 and 3 rings and between a 20 s and a
25 s service-level threshold: the tests that the report, the CLI and the API compute with
the site's own targets (issue 18, defect 1), not with the defaults.

2026-01-16 (UTC), queue `support`, seat s1. Four answered calls and one abandon:

| call | rings | wait_s | within 2 / 3 rings | within 20 / 25 s |
|---|---|---|---|---|
| 1 answered | 1 | 10 | yes / yes | yes / yes |
| 2 answered | 3 | 22 | no / yes | no / yes |
| 3 answered | 2 | 24 | yes / yes | no / yes |
| 4 answered | 4 | 30 | no / no | no / no |
| 5 abandoned | | 23 | | no / yes |
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from gateway.contract.topics import Topics
from gateway.core.store import open_store

DAY = date(2026, 1, 16)
DAY_START = 1_768_521_600.0  # 2026-01-16 00:00 UTC
SITE = "hq"

# (call, kind, rings, wait_s) at 10:00 + call minutes
CALLS = ((1, "answer", 1, 10.0), (2, "answer", 3, 22.0), (3, "answer", 2, 24.0),
         (4, "answer", 4, 30.0), (5, "abandon", None, 23.0))  # fmt: skip

# the site's figures for the day with the defaults (3 rings, 20 s) and with 2 rings, 25 s
DEFAULTS = {"within_ring_limit": 0.75, "service_level": 0.25, "service_level_abandoned": 0.2}
SITE_TARGETS = {"within_ring_limit": 0.5, "service_level": 0.75,
                "service_level_abandoned": 0.8}  # fmt: skip


def _event(call: int, step: int, kind: str, t: float, arrived: float,
           **fields: Any) -> dict[str, Any]:  # fmt: skip
    event: dict[str, Any] = {
        "v": 1, "id": f"p1-{call}-{step}", "pbx": "p1", "call": call, "step": step,
        "type": kind, "t": t, "direction": "inbound", "queue": "support", "seat": None,
        "number": "***1234", "arrived": arrived, "detail": "",
    }  # fmt: skip
    event.update(fields)
    return event


def call_events() -> list[dict[str, Any]]:
    events = []
    for call, kind, rings, wait in CALLS:
        arrived = DAY_START + 10 * 3600 + call * 60
        events.append(_event(call, 1, "enter_queue", arrived, arrived))
        if kind == "answer":
            events.append(_event(call, 2, "answer", arrived + wait, arrived, seat="s1",
                                 wait_s=wait, rings=rings, ring_s=rings * 5.0))  # fmt: skip
        else:
            events.append(_event(call, 2, "abandon", arrived + wait, arrived, wait_s=wait,
                                 by="caller"))  # fmt: skip
    return events


def fill(store_url: str | Path) -> None:
    """Store the day as the core would."""
    topics = Topics(site=SITE)
    messages = [(topics.topic("call_event", call=str(e["call"])), json.dumps(e).encode())
                for e in call_events()]  # fmt: skip
    with open_store(store_url, topics=topics, clock=lambda: DAY_START + 86400) as store:
        result = store.ingest(messages)
        assert result.stored == len(messages), result


def figures(kpis: Any) -> dict[str, float]:
    """The three figures the targets change, from a Kpis or its dict."""
    get = kpis.get if isinstance(kpis, dict) else lambda name: getattr(kpis, name)
    return {name: get(name) for name in DEFAULTS}
