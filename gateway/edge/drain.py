"""Outbox to broker: seat events published with QoS 1, removed only once the broker has them.

An event leaves the outbox after its PUBACK, so a broker outage or a gateway crash between
publish and removal publishes it again (at least once; subscribers drop a repeat by the
event id in the payload). A batch of the oldest events is published back to back on one
connection (MQTT keeps a connection's messages in order), and the batch is removed once
every PUBACK is in: each seat's order holds, and the broker's round trip is paid once per
batch instead of once per event. While the broker is away the drainer's task ends with the
MQTT error and the connection loop (`bridge`) reconnects with backoff; the outbox keeps
filling meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from gateway.contract.topics import Topics
from gateway.edge.store import AsyncOutbox

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

    def __init__(self, *, outbox: AsyncOutbox, topics: Topics) -> None:
        self._outbox = outbox
        self._topics = topics
        self._wake = asyncio.Event()
        self.stats = DrainStats()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, client: aiomqtt.Client) -> None:
        after = 0  # a new connection starts from the oldest event the broker may not have
        while True:
            self._wake.clear()
            entries = self._outbox.pending(self.BATCH, after=after)
            if entries:
                # No timer per message (aiomqtt's default is one wait_for each): a broker
                # that stops answering is found by the keepalive, which ends the connection
                # and with it these waits.
                await asyncio.gather(*(
                    client.publish(self._topics.seat_event(e.seat), e.payload, qos=1,
                                   timeout=math.inf)
                    for e in entries))  # fmt: skip
                self._outbox.delivered_later([e.id for e in entries])
                after = entries[-1].id
                self.stats.published += len(entries)
            if len(entries) < self.BATCH:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.POLL_S)
                except TimeoutError:
                    pass


Task = Callable[[aiomqtt.Client], Coroutine[Any, Any, None]]


async def bridge(
    *,
    connect: Callable[[], aiomqtt.Client],
    drainer: Drainer,
    on_connect: Callable[[aiomqtt.Client], Awaitable[None]] | None = None,
    tasks: Sequence[Task] = (),
    backoff_s: tuple[float, float] = (0.2, 5.0),
) -> None:
    """Keep a broker connection with the drainer and `tasks` running on it, reconnecting
    with exponential backoff (first, cap) after any MQTT error, until cancelled.
    `on_connect` runs on every new connection first (publish `online`, republish retained
    state, subscribe)."""
    delay = backoff_s[0]
    while True:
        try:
            async with connect() as client:
                delay = backoff_s[0]
                if on_connect is not None:
                    await on_connect(client)
                async with asyncio.TaskGroup() as group:
                    for task in (drainer.run, *tasks):
                        group.create_task(task(client))
        except* aiomqtt.MqttError as errors:
            exc = errors.exceptions[0]
            drainer.stats.reconnects += 1
            drainer.stats.last_error = str(exc)
            log.warning("broker connection lost (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_s[1])
