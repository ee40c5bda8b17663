"""The PBX connector's side of the site broker, whichever backend runs behind it.

One connection (reconnected with backoff) with a last will of `offline` on
`pbx/{pbx}/status`. Everything to publish waits in one ordered queue while the broker is
away: call events are never given up unless the queue overflows (counted), a seat command
that waited past its expiry is counted and not sent late. Messages heard go into `inbox`,
stamped with when they arrived (for the routing latency figure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiomqtt

from gateway import __version__
from gateway.contract.payloads import PbxStatus
from gateway.contract.topics import Topics
from gateway.edge.drain import bridge, broker_client, publish_once
from gateway.edge.settings import BrokerSettings

log = logging.getLogger("seatlink.pbx")
Inbound = tuple[str, bytes, float]  # topic, payload, when it arrived (perf_counter)


@dataclass(slots=True)
class _Out:
    topic: str
    payload: bytes
    expires: float | None  # monotonic; None: never (call events)


@dataclass
class PbxStats:
    received: int = 0
    ignored: int = 0  # messages that are no input of the PBX's (bad JSON, wrong version)
    published: int = 0
    dropped: int = 0  # outgoing messages given up while the broker was away too long
    stale_commands: int = 0  # seat commands not sent because they expired while queued
    reconnects: int = 0
    last_error: str | None = None
    offer_latency_ms: list[float] = field(default_factory=list)  # trigger in -> offer out


class BrokerSide:
    OUTGOING_MAX = 100_000

    def __init__(self, *, pbx: str, topics: Topics, broker: BrokerSettings,
                 backend: Literal["sim", "ami"], subscriptions: Sequence[str],
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.pbx = pbx
        self.topics = topics
        self.broker = broker
        self.backend = backend
        self.subscriptions = tuple(subscriptions)
        self.clock = clock
        self.stats = PbxStats()
        self.inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self.online = asyncio.Event()
        self._outgoing: deque[_Out] = deque()
        self._wake = asyncio.Event()
        self.closing = False  # set by the owner before it cancels run()

    @property
    def backlog(self) -> int:
        return len(self._outgoing)

    def send(self, topic: str, payload: bytes, *, expires_in_s: float | None = None) -> None:
        if len(self._outgoing) >= self.OUTGOING_MAX:
            self._outgoing.popleft()
            self.stats.dropped += 1
        expires = None if expires_in_s is None else time.monotonic() + expires_in_s
        self._outgoing.append(_Out(topic, payload, expires))
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled."""
        await bridge(connect=self._connect, on_connect=self._on_connect,
                     tasks=(self._reader, self._writer), stopping=lambda: self.closing,
                     stats=self.stats)  # type: ignore[arg-type]  # fmt: skip

    def status(self, status: Literal["online", "offline"]) -> PbxStatus:
        return PbxStatus(pbx=self.pbx, status=status, backend=self.backend, version=__version__,
                         t=None if status == "offline" else round(self.clock(), 3))

    async def goodbye(self) -> None:
        """`offline` on the status topic, on a connection of its own (the main one may be
        gone)."""
        b = self.broker
        await publish_once(host=b.host, port=b.port, identifier=f"seatlink-pbx-{self.pbx}-bye",
                           username=b.username, password=b.password_text,
                           topic=self.topics.topic("pbx_status", pbx=self.pbx),
                           payload=self.status("offline").dump())  # fmt: skip

    def _connect(self) -> aiomqtt.Client:
        b = self.broker
        will = aiomqtt.Will(self.topics.topic("pbx_status", pbx=self.pbx),
                            self.status("offline").dump(), qos=1, retain=True)
        return broker_client(host=b.host, port=b.port, identifier=f"seatlink-pbx-{self.pbx}",
                             username=b.username, password=b.password_text,
                             keepalive_s=b.keepalive_s, will=will)  # fmt: skip

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        for topic in self.subscriptions:
            await client.subscribe(topic, qos=1)
        await client.publish(self.topics.topic("pbx_status", pbx=self.pbx),
                             self.status("online").dump(), qos=1, retain=True)
        self.online.set()

    async def _reader(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.inbox.put_nowait((str(message.topic), payload, time.perf_counter()))

    async def _writer(self, client: aiomqtt.Client) -> None:
        try:
            while True:
                while self._outgoing:
                    out = self._outgoing[0]
                    if out.expires is not None and time.monotonic() > out.expires:
                        self.stats.stale_commands += 1
                    else:
                        # no timer per message: a broker that stops answering is found by
                        # the keepalive, which ends the connection (and this task)
                        await client.publish(out.topic, out.payload, qos=1, timeout=float("inf"))
                        self.stats.published += 1
                    self._outgoing.popleft()
                self._wake.clear()
                await self._wake.wait()
        finally:
            self.online.clear()


async def first_failure(tasks: list[asyncio.Task[None]]) -> None:
    """Wait until a task of `tasks` ends with an exception, log it, return. Tasks that end
    normally (a scenario that is over) are waited past; with none left, wait for ever."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s stopped by an error", task.get_name(), exc_info=task.exception())
                return
    await asyncio.Event().wait()
