"""`seatlink pbx --backend ami`: Asterisk's queues on the site's broker.

Asterisk (app_queue) routes the calls; this service only translates. Asterisk's queue and
call events become the same call events the simulator publishes, and the seat commands that
make the desks ring, connect, hold and release (AmiBackend). Each seat's state, as its
gateway publishes it, becomes a `QueuePause` with the reason, so Asterisk does not offer a
call to an agent who is away, in wrap-up or logged out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import suppress
from typing import Any

from gateway.contract.payloads import CallEvent, PbxHealth
from gateway.contract.topics import TopicError, Topics
from gateway.pbx.ami_bridge import AmiBackend
from gateway.pbx.broker_side import BrokerSide, first_failure
from gateway.pbx.settings import PbxSettings

log = logging.getLogger("seatlink.pbx.ami")

STATES = ("logged_out", "ready", "not_ready", "ringing", "talking", "hold", "acw")


class AmiService:
    def __init__(self, settings: PbxSettings) -> None:
        if settings.ami is None:
            raise ValueError("backend ami needs an [ami] section")
        self.settings = settings
        self.pbx = settings.pbx
        self.topics = Topics(site=settings.site, root=settings.root)
        self.broker = BrokerSide(
            pbx=self.pbx, topics=self.topics, broker=settings.broker, backend="ami",
            subscriptions=[self.topics.subscription("seat_state")])  # fmt: skip
        self.stats = self.broker.stats
        self.backend = AmiBackend(settings.ami, pbx=self.pbx, outputs=self)
        self.counts: dict[str, int] = {}
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    # PbxOutputs: what the backend hands over
    async def call_event(self, event: CallEvent) -> None:
        self.counts[event.type] = self.counts.get(event.type, 0) + 1
        self.broker.send(self.topics.topic("call_event", call=str(event.call)), event.dump())

    async def seat_command(self, seat: str, body: dict[str, Any]) -> None:
        self.broker.send(self.topics.seat_cmd(seat), json.dumps(body).encode(),
                         expires_in_s=float(body.get("expires_in_s", 10)))  # fmt: skip

    async def __aenter__(self) -> AmiService:
        self._tasks = [asyncio.create_task(self.broker.run(), name="pbx-broker"),
                       asyncio.create_task(self.backend.run(), name="pbx-ami"),
                       asyncio.create_task(self._seats(), name="pbx-seats"),
                       asyncio.create_task(self._health(), name="pbx-health")]  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.broker.closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        await self.broker.goodbye()

    async def stopped(self) -> None:
        """Returns when one of the service's tasks ended with an error (logged): a PBX
        whose engine died must not go on looking alive."""
        await first_failure(self._tasks)

    async def wait_online(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.broker.online.wait(), timeout)

    async def _seats(self) -> None:
        while True:
            topic, payload, _ = await self.broker.inbox.get()
            self.stats.received += 1
            try:
                seat = self.topics.parse(topic).ids["seat"]
                body = json.loads(payload)
                state = body["state"]
                if body.get("v") != 1 or state not in STATES:
                    raise ValueError(f"not a v1 seat state: {state!r}")
            except (TopicError, KeyError, TypeError, ValueError) as exc:
                self.stats.ignored += 1
                log.warning("ignored %s: %s", topic, exc)
                continue
            await self.backend.seat_state(seat, state, body.get("reason"))

    async def _health(self) -> None:
        while True:
            self.broker.send(self.topics.topic("pbx_health", pbx=self.pbx), self.health().dump())
            await asyncio.sleep(self.settings.health_interval_s)

    def health(self) -> PbxHealth:
        stats = self.backend.stats()
        return PbxHealth(pbx=self.pbx, backend="ami",
                         uptime_s=round(time.monotonic() - self._started, 3),
                         calls_active=int(stats["calls_active"]), queues={}, campaigns={},
                         counts=dict(self.counts), lost=self.stats.dropped,
                         seats_known=len(self.settings.ami.seats) if self.settings.ami else 0,
                         ami_connected=bool(stats["connected"]),
                         t=round(time.time(), 3))  # fmt: skip
