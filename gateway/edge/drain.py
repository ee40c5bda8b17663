"""Outbox to broker: seat events published with QoS 1, removed only once the broker has them.

An event leaves the outbox after its PUBACK, so a broker outage or a gateway crash between
publish and removal publishes it again (at least once; subscribers drop a repeat by the
event id in the payload). Events go out one at a time, oldest first, so each seat's order
holds. While the broker is away the drainer's task ends with the MQTT error and the
connection loop (`bridge`) reconnects with backoff; the outbox keeps filling meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from gateway.contract.topics import Topics
from gateway.edge.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass
class DrainStats:
    published: int = 0
    reconnects: int = 0
    last_error: str | None = None


class Drainer:
    """`await drainer.run(client)` until cancelled or the connection fails; `wake()` after
    a put so new events go out at once instead of at the next poll."""

    BATCH = 64
    POLL_S = 0.5

    def __init__(self, *, outbox: Outbox, topics: Topics) -> None:
        self._outbox = outbox
        self._topics = topics
        self._wake = asyncio.Event()
        self.stats = DrainStats()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()
            entries = self._outbox.pending(self.BATCH)
            for entry in entries:
                await client.publish(self._topics.seat_event(entry.seat), entry.payload, qos=1)
                self._outbox.delivered([entry.id])
                self.stats.published += 1
            if len(entries) < self.BATCH:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.POLL_S)
                except TimeoutError:
                    pass


async def bridge(
    *,
    connect: Callable[[], aiomqtt.Client],
    drainer: Drainer,
    on_connect: Callable[[aiomqtt.Client], Awaitable[None]] | None = None,
    backoff_s: tuple[float, float] = (0.2, 5.0),
) -> None:
    """Keep a broker connection and the drainer on it, reconnecting with exponential
    backoff (first, cap) after any MQTT error, until cancelled. `on_connect` runs on every
    new connection first (publish `online`, republish retained state)."""
    delay = backoff_s[0]
    while True:
        try:
            async with connect() as client:
                delay = backoff_s[0]
                if on_connect is not None:
                    await on_connect(client)
                await drainer.run(client)
        except aiomqtt.MqttError as exc:
            drainer.stats.reconnects += 1
            drainer.stats.last_error = str(exc)
            log.warning("broker connection lost (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_s[1])
