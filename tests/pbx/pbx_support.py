"""A whole call path for a test: virtual seats (the real firmware bundle) behind the edge
gateway, the simulated PBX, a mosquitto of the test's own, and a subscriber that keeps
every message. Agents sign in at their seats (the retained seat/{seat}/agent, as the API
publishes it) and act on the seats' inputs, as at a desk: they wear the headset (lifted off
its hanger), answer and end calls with its call button (ANSWER) or by the hanger."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from edge_support import Collector, settings, site, until, write_inventory

from gateway.contract.payloads import SeatAgent
from gateway.contract.topics import Topics
from gateway.edge.service import EdgeService
from gateway.pbx.service import PbxService
from gateway.pbx.settings import PbxSettings
from gateway.virtual_farm import FarmSeat, SeatFarm
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_READY
from tests.stuck import run  # noqa: F401 - the flows' runner, re-exported

# ACW is short so a flow reaches Ready again within the test. The away timer keeps its
# default (10 s): the agents wear their headsets, so a Ready seat is not away.
SEAT_DEFAULTS = {"acw_s": 2}
SIGN_IN_WAIT_S = 0.5  # the edge tells a seat with no sign-in "nobody" this soon
# the agents who sign in at the seats, by seat: agent id, full name
AGENTS = {"s0": ("a1001", "Li Na"), "s1": ("a1002", "Omar Haddad"),
          "s2": ("a1003", "Grace Mwangi")}  # fmt: skip


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

    async def press(self, seat: str, bit: int, hold_s: float = 0.1) -> None:
        """A button pressed for hold_s (READY held 3 s logs out), then let go: each held
        longer than the firmware's debounce."""
        board = self.seats[seat].board
        board.bits |= bit
        await asyncio.sleep(hold_s)
        board.bits &= ~bit
        await asyncio.sleep(0.1)

    async def sign_in(self, seat: str) -> None:
        """The seat's agent (AGENTS) signs in there, as the API publishes it on the retained
        seat/{seat}/agent."""
        agent, name = AGENTS[seat]
        await self._seat_agent(SeatAgent(id=uuid.uuid4().hex, seat=seat, agent=agent,
                                         name=name, t=time.time(),
                                         by=name.lower().replace(" ", "."), cause="self"))

    async def _seat_agent(self, change: SeatAgent) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as c:
            await c.publish(self.topics.topic("seat_agent", seat=change.seat), change.dump(),
                            qos=1, retain=True)  # fmt: skip

    def refusals(self, seat: str) -> list[dict[str, Any]]:
        """The seat's login_refused events (a READY press with nobody signed in there)."""
        return [e for e in self.sub.events(seat)
                if e["type"] == "event" and e["data"]["event"] == "login_refused"]  # fmt: skip

    def changes(self, seat: str, state: str) -> list[dict[str, Any]]:
        """The seat's state events into `state`, in order."""
        return [e for e in self.sub.events(seat) if e["type"] == "event"
                and e["data"]["event"] == "state" and e["data"]["state"] == state]  # fmt: skip

    async def press_ready_until(self, seat: str, state: str, attempts: int = 10) -> None:
        """READY pressed, as a person does, until the seat changes to `state`: a press the
        seat refused (the login before the gateway told it of the sign-in: a red flash) is
        made again once its login_refused has come."""
        for _ in range(attempts):
            refused, changed = len(self.refusals(seat)), len(self.changes(seat, state))
            await self.press(seat, IN_READY)
            await until(lambda c=changed, r=refused: len(self.changes(seat, state)) > c  # type: ignore[misc]
                        or len(self.refusals(seat)) > r, 10,
                        f"{seat} {state} or its login refused")  # fmt: skip
            if len(self.changes(seat, state)) > changed:
                return
        raise AssertionError(f"{seat}: READY refused {attempts} times")

    async def login(self, *seats: str, wear: bool = True) -> None:
        """Each agent signs in at its desk, puts the headset on (lifts it off its hanger;
        `wear` False: leaves it there) and presses READY, one after the other: the first is
        the longest idle."""
        for seat in seats:
            await self.sign_in(seat)
            if wear:
                self.lift(seat)
            await self.press_ready_until(seat, "ready")
            await until(lambda s=seat: s in self.pbx.acd.ready_seats_any(), 5,  # type: ignore[misc]
                        f"the PBX to see {seat} Ready")

    def lift(self, seat: str) -> None:
        """The headset lifted off its hanger: worn; a ringing call is answered (why 2)."""
        self.seats[seat].board.bits &= ~IN_HANGER

    def hang_up(self, seat: str) -> None:
        """The headset put back on its hanger: a call being talked is released (why 2)."""
        self.seats[seat].board.bits |= IN_HANGER

    async def answer(self, seat: str) -> None:
        """The headset's call button: answers a ringing call, releases a talking one (why 5)."""
        await self.press(seat, IN_ANSWER)

    def why(self, seat: str, state: str) -> int | None:
        """What made the seat's latest change to `state` (docs/protocol.md, why)."""
        changes = self.changes(seat, state)
        return int(changes[-1]["data"]["a"]) if changes else None

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
                    wall: Any = None, seat_defaults: Mapping[str, int] | None = None,
                    **pbx: Any) -> AsyncIterator[Site]:  # fmt: skip
    """`count` seats s0, s1, ... (nobody signed in yet), the edge, the PBX. seat_defaults:
    the inventory's [defaults] on top of SEAT_DEFAULTS."""
    topics = site()
    with SeatFarm(count) as farm:
        seats = {f"s{i}": s for i, s in enumerate(farm.seats)}
        write_inventory(tmp / "inventory.toml", {k: s.uid for k, s in seats.items()},
                        defaults={**SEAT_DEFAULTS, **(seat_defaults or {})})  # fmt: skip
        edge_cfg = settings(tmp, broker, topics, [s.url for s in farm.seats],
                            drain_process=False, sign_in_wait_s=SIGN_IN_WAIT_S)  # fmt: skip
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
