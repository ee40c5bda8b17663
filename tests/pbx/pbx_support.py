"""A whole call path for a test: virtual seats (the real firmware bundle) behind the edge
gateway, the simulated PBX, a mosquitto of the test's own, and a subscriber that keeps
every message. Agents act on the seats' inputs, as at a desk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from edge_support import Collector, settings, site, until, write_inventory

from gateway.contract.topics import Topics
from gateway.edge.service import EdgeService
from gateway.pbx.service import PbxService
from gateway.pbx.settings import PbxSettings
from gateway.virtual_farm import FarmSeat, SeatFarm
from tests.stuck import run  # noqa: F401 - the flows' runner, re-exported

IN_HOOK, IN_READY, IN_WRAP, IN_HELP = 1, 2, 4, 8
# Agents wait with the headset on its hook and lift it to answer: no away timer here. ACW is
# short so a flow reaches Ready again within the test.
SEAT_DEFAULTS = {"away_s": 0, "acw_s": 2}


@dataclass
class Site:
    farm: SeatFarm
    topics: Topics
    sub: Collector
    pbx: PbxService
    broker: Any
    seats: dict[str, FarmSeat]

    def state(self, seat: str) -> dict[str, Any]:
        return self.sub.last("seat_state", seat=seat) or {}

    async def until_state(self, seat: str, state: str, timeout: float = 10) -> None:
        await until(lambda: self.state(seat).get("state") == state, timeout,
                    f"{seat} {state} (is {self.state(seat).get('state')})")

    async def press(self, seat: str, bit: int) -> None:
        board = self.seats[seat].board
        board.bits |= bit
        await asyncio.sleep(0.1)
        board.bits &= ~bit
        await asyncio.sleep(0.1)

    async def login(self, *seats: str) -> None:
        """READY pressed at each desk, one after the other: the first is the longest idle."""
        for seat in seats:
            await self.press(seat, IN_READY)
            await self.until_state(seat, "ready")
            await until(lambda s=seat: s in self.pbx.acd.ready_seats_any(), 5,  # type: ignore[misc]
                        f"the PBX to see {seat} Ready")

    def lift(self, seat: str) -> None:
        self.seats[seat].board.bits |= IN_HOOK

    def hang_up(self, seat: str) -> None:
        self.seats[seat].board.bits &= ~IN_HOOK

    def calls(self, call: int) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for body in self.sub.on("call_event", call=str(call)):
            if body["id"] not in seen:
                seen.add(body["id"])
                out.append(body)
        return out

    def steps(self, call: int) -> list[tuple[str, str | None]]:
        return [(e["type"], e["seat"]) for e in self.calls(call)]

    async def until_step(self, call: int, kind: str, timeout: float = 15) -> dict[str, Any]:
        await until(lambda: any(e["type"] == kind for e in self.calls(call)), timeout,
                    f"call {call} {kind} (steps so far: {self.steps(call)})")
        return [e for e in self.calls(call) if e["type"] == kind][-1]

    async def command(self, body: dict[str, Any]) -> dict[str, Any]:
        """A call control request on the PBX's command topic, as the API sends it; its
        result."""
        topic = self.topics.topic("pbx_cmd", pbx=self.pbx.pbx)
        async with aiomqtt.Client(self.broker.host, self.broker.port) as c:
            await c.publish(topic, json.dumps(body).encode(), qos=1)
        results = lambda: [r for r in self.sub.on("pbx_cmd_result", pbx=self.pbx.pbx)  # noqa: E731
                           if r["id"] == body.get("id")]  # fmt: skip
        await until(results, 5, f"result of {body.get('id')}")
        return results()[-1]


@asynccontextmanager
async def call_site(tmp: Path, broker: Any, count: int, *, queues: dict[str, Any],
                    wall: Any = None, **pbx: Any) -> AsyncIterator[Site]:  # fmt: skip
    topics = site()
    with SeatFarm(count) as farm:
        seats = {f"s{i}": s for i, s in enumerate(farm.seats)}
        write_inventory(tmp / "inventory.toml", {k: s.uid for k, s in seats.items()},
                        defaults=SEAT_DEFAULTS)  # fmt: skip
        edge_cfg = settings(tmp, broker, topics, [s.url for s in farm.seats],
                            drain_process=False)  # fmt: skip
        pbx_cfg = PbxSettings(
            pbx="pbx1", site=topics.site, root=topics.root,
            broker={"host": broker.host, "port": broker.port},  # type: ignore[arg-type]
            queues={k: {"seats": v} for k, v in queues.items()},  # type: ignore[misc]
            store=tmp / "pbx.db", health_interval_s=1.0,
            **{"compliance": {"dnc": tmp / "dnc.db"}, **pbx})  # fmt: skip
        sub = Collector(broker, topics)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(sub.connected.wait(), 5)
        try:
            async with EdgeService(edge_cfg):
                await until(lambda: all(sub.last("seat_state", seat=s) for s in seats), 15,
                            "every seat's state")  # fmt: skip
                from gateway.pbx.runner import build

                async with build(pbx_cfg, wall=wall) as service:
                    await service.wait_online()
                    yield Site(farm, topics, sub, service, broker, seats)
        finally:
            task.cancel()
