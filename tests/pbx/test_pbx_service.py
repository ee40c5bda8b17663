"""The simulated PBX on its own broker: what it publishes while the broker is away is kept
and delivered in order after the reconnect, and its status follows it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge_support import Collector, retained, site, until
from pbx_support import run

from gateway.pbx.runner import build
from gateway.pbx.settings import PbxSettings


def test_call_events_made_during_a_broker_outage_are_delivered_after_it(
        tmp_path: Path, own_broker: Any) -> None:  # fmt: skip
    topics = site()
    cfg = PbxSettings(pbx="pbx1", site=topics.site, root=topics.root,
                      broker={"host": own_broker.host, "port": own_broker.port,  # type: ignore[arg-type]
                              "keepalive_s": 5},
                      store=tmp_path / "pbx.db", health_interval_s=0.5,
                      compliance={"dnc": tmp_path / "dnc.db"})  # type: ignore[arg-type]  # fmt: skip

    async def flow() -> None:
        sub = Collector(own_broker, topics)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(sub.connected.wait(), 5)
        async with build(cfg) as pbx:
            await pbx.wait_online()
            own_broker.stop()
            await until(lambda: not pbx.broker.online.is_set(), 10, "the PBX to notice")
            calls = [pbx.arrive("support", patience_s=0.3) for _ in range(3)]  # nobody Ready
            await asyncio.sleep(1.0)  # they abandon while the broker is away
            assert pbx.acd.calls == {} and pbx.broker.backlog >= 6
            own_broker.restart()
            await until(lambda: all(len(sub.on("call_event", call=str(c))) >= 2 for c in calls),
                        20, "the calls' events after the outage")  # fmt: skip
            for c in calls:
                steps = [e["type"] for e in sub.on("call_event", call=str(c))]
                assert steps[:2] == ["enter_queue", "abandon"]
            assert pbx.stats.dropped == 0 and pbx.health().lost == 0
            status = retained(own_broker, topics.topic("pbx_status", pbx="pbx1"))
            assert status["status"] == "online" and status["backend"] == "sim"
        status = retained(own_broker, topics.topic("pbx_status", pbx="pbx1"))
        assert status["status"] == "offline"
        task.cancel()

    run(flow, timeout=60)
