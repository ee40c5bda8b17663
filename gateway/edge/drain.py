"""Outbox to broker: seat events published with QoS 1, removed only once the broker has them.

An event leaves the outbox after its PUBACK, so a broker outage or a gateway crash between
publish and removal publishes it again (at least once; subscribers drop a repeat by the
event id in the payload). Events go out oldest first on one connection (MQTT keeps a
connection's messages in order), each as soon as it is committed, up to `WINDOW` of them
waiting for their PUBACK at a time: each seat's order holds and the broker's round trip is
not paid per event. While the broker is away the drainer's task ends with the MQTT error
and the connection loop (`bridge`) reconnects with backoff; the outbox keeps filling
meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt

from gateway.aio import wait_event
from gateway.contract.topics import Topics
from gateway.edge.outbox import Entry

log = logging.getLogger(__name__)


class DrainSource(Protocol):
    """The outbox as the drainer sees it (AsyncOutbox in-process, a pipe in a child)."""

    def pending(self, limit: int, *, after: int = 0) -> list[Entry]: ...

    def delivered_later(self, ids: list[int]) -> None: ...


@dataclass
class DrainStats:
    published: int = 0
    reconnects: int = 0
    last_error: str | None = None


class Drainer:
    """`await drainer.run(client)` until cancelled or the connection fails; `wake()` after
    a put so new events go out at once instead of at the next poll."""

    BATCH = 64  # events read at a time, and removals handed back at a time
    WINDOW = 256  # events published and not yet acknowledged
    POLL_S = 0.5

    def __init__(self, *, outbox: DrainSource, topics: Topics) -> None:
        self._outbox = outbox
        self._topics = topics
        self._wake = asyncio.Event()
        self.stats = DrainStats()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, client: aiomqtt.Client) -> None:
        # A sliding window: new events go out as soon as they are committed, while up to
        # WINDOW earlier ones still wait for their PUBACK (one connection keeps them in
        # order); each is removed once its PUBACK is in.
        window = _Window(self, client)
        try:
            await window.run()
        finally:
            window.flush()  # what the broker has is removed, even as the connection goes


class _Window:
    def __init__(self, drainer: Drainer, client: aiomqtt.Client) -> None:
        self.d = drainer
        self.client = client
        self.room = asyncio.Semaphore(drainer.WINDOW)
        self.inflight = 0
        self.acked: list[int] = []

    async def run(self) -> None:
        d = self.d
        after = 0  # a new connection starts from the oldest event the broker may not have
        async with asyncio.TaskGroup() as group:
            while True:
                d._wake.clear()
                entries = d._outbox.pending(d.BATCH, after=after)
                for entry in entries:
                    await self.room.acquire()
                    self.inflight += 1
                    group.create_task(self.publish(entry))
                if entries:
                    after = entries[-1].id
                if len(entries) < d.BATCH:
                    await wait_event(d._wake, d.POLL_S)

    async def publish(self, entry: Entry) -> None:
        try:
            # No timer per message (aiomqtt's default is a wait_for each): a broker that
            # stops answering is found by the keepalive, which ends the connection and
            # with it these waits.
            await self.client.publish(self.d._topics.seat_event(entry.seat), entry.payload,
                                      qos=1, timeout=math.inf)  # fmt: skip
        finally:
            self.room.release()
            self.inflight -= 1
        self.acked.append(entry.id)
        self.d.stats.published += 1
        if len(self.acked) >= self.d.BATCH or not self.inflight:
            self.flush()

    def flush(self) -> None:
        if self.acked:
            self.d._outbox.delivered_later(self.acked)
            self.acked = []


def broker_client(*, host: str, port: int, identifier: str, username: str | None,
                  password: str | None, keepalive_s: int,
                  will: aiomqtt.Will | None = None) -> aiomqtt.Client:  # fmt: skip
    """A connection as the edge gateway makes them (its main one, its event drainer's)."""
    client = aiomqtt.Client(
        host, port, identifier=identifier, username=username, password=password,
        keepalive=keepalive_s, will=will, max_inflight_messages=200,
        max_queued_outgoing_messages=0, timeout=10,
        # small messages, one at a time: Nagle would hold each for the last one's ack
        socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))  # fmt: skip
    # many QoS 1 publishes in flight is the design, not a warning sign
    client.pending_calls_threshold = 1 << 30
    return client


async def publish_once(*, host: str, port: int, identifier: str, username: str | None,
                       password: str | None, topic: str, payload: bytes) -> None:
    """One retained QoS 1 message on a connection of its own, given up after 3 s: a
    service's `offline` as it stops (its main connection may be gone)."""
    with suppress(aiomqtt.MqttError, OSError, TimeoutError):
        async with aiomqtt.Client(host, port, identifier=identifier, username=username,
                                  password=password, timeout=3) as client:  # fmt: skip
            await client.publish(topic, payload, qos=1, retain=True)


Task = Callable[[aiomqtt.Client], Coroutine[Any, Any, None]]


async def bridge(
    *,
    connect: Callable[[], aiomqtt.Client],
    drainer: Drainer | None = None,
    stats: DrainStats | None = None,
    on_connect: Callable[[aiomqtt.Client], Awaitable[None]] | None = None,
    tasks: Sequence[Task] = (),
    backoff_s: tuple[float, float] = (0.2, 5.0),
    stopping: Callable[[], bool] | None = None,
) -> None:
    """Keep a broker connection with the drainer (if any) and `tasks` running on it,
    reconnecting with exponential backoff (first, cap) after any MQTT error, until
    cancelled; reconnects are counted in `stats` (default: the drainer's).
    `on_connect` runs on every new connection first (publish `online`, republish retained
    state, subscribe). `stopping`: true once the owner is stopping (and cancels this task):
    an MQTT error then ends it instead of a reconnect."""
    if stats is None:
        stats = drainer.stats if drainer is not None else DrainStats()
    runs = ((drainer.run,) if drainer is not None else ()) + tuple(tasks)
    delay = backoff_s[0]
    while True:
        try:
            async with connect() as client:
                delay = backoff_s[0]
                if on_connect is not None:
                    await on_connect(client)
                async with asyncio.TaskGroup() as group:
                    for task in runs:
                        group.create_task(task(client))
        except* aiomqtt.MqttError as errors:
            if stopping is not None and stopping():
                # A TaskGroup whose child fails while the group is being cancelled raises the
                # child's error, not the cancellation (Python 3.11): a stop that came with a
                # broker outage would be taken for the outage and retried forever. The
                # task's cancelling() count cannot tell (aiomqtt leaves it raised after a
                # plain outage): the owner says when it is stopping.
                raise asyncio.CancelledError from None
            exc = errors.exceptions[0]
            stats.reconnects += 1
            stats.last_error = str(exc)
            log.warning("broker connection lost (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_s[1])
