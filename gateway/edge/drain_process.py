"""The drainer in a process of its own, so publishing seat events uses the second core.

Measured on the 2-core target at 256 seats x 10 events/s: one event loop serving every
link, the outbox and the MQTT publishes is busy ~90 % of the time, and the QoS 1 publish
path (aiomqtt and paho, per message) is about 40 % of it. The child runs the same
`Drainer` on its own broker connection and reads committed events from the outbox file
(WAL: a reader never blocks the writer). It never writes the database: what the broker
has taken goes back to the gateway over a pipe, and the gateway's writer thread removes it
with its next commit, as in-process.

Pipe messages (pickled tuples), child -> parent: ("lease", id) before publishing up to id
(overflow spares those events), ("delivered", [ids]), ("stats", published, reconnects,
last_error). Parent -> child: ("wake",) after a commit that stored new events.
The child ends when the pipe closes (the gateway stopped it, or died: SIGKILL closes the
gateway's end too): quietly, publishing nothing more, within `STOP_S` even when a
cancellation is lost on the way (aiomqtt waits with asyncio.wait_for: gateway/aio.py).
What the broker took that the gateway never heard of is published again by the next
drainer (at least once; the event id drops the repeat). It ignores SIGINT: a terminal's
Ctrl-C reaches the whole process group, and the gateway stops its child itself. If the
child dies, the gateway starts another, which publishes again from the oldest event not
yet removed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.contract.topics import Topics
from gateway.edge.drain import Drainer, DrainStats, bridge, broker_client
from gateway.edge.outbox import Entry, read_pending

log = logging.getLogger(__name__)

STOP_S = 5.0  # once the gateway is gone, how long the child's tasks get to end


class ParentGone(Exception):
    """The gateway is gone: the drainer must not read or publish another event."""


@dataclass(frozen=True)
class DrainConfig:
    outbox: Path
    site: str
    root: str
    host: str
    port: int
    identifier: str
    username: str | None
    password: str | None
    keepalive_s: int
    backoff_s: tuple[float, float]


class _PipeOutbox:
    """What the drainer needs of the outbox, in the child: reads from the file, removals
    and leases to the parent. `on_gone` is called once the pipe is found closed."""

    def __init__(self, path: Path, conn: multiprocessing.connection.Connection,
                 on_gone: Callable[[], None]) -> None:  # fmt: skip
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self._conn = conn
        self._on_gone = on_gone
        self.gone = False
        self._deleting: set[int] = set()

    def send(self, message: tuple[Any, ...]) -> None:
        if self.gone:
            return
        try:
            self._conn.send(message)
        except OSError:  # BrokenPipeError, ConnectionResetError: the gateway is gone
            self.parent_gone()

    def parent_gone(self) -> None:
        if not self.gone:
            self.gone = True
            self._on_gone()

    def pending(self, limit: int, *, after: int = 0) -> list[Entry]:
        # an orphan publishes nothing more (no gateway would remove it). The drainer is
        # cancelled once the gateway is gone; this ends it where that cancellation was lost.
        if self.gone:
            raise ParentGone
        rows = read_pending(self._db, after, limit)
        fresh = [e for e in rows if e.id not in self._deleting]
        if fresh:
            self.send(("lease", fresh[-1].id))
            if self.gone:
                raise ParentGone
        return fresh

    def delivered_later(self, ids: list[int]) -> None:
        self.send(("delivered", ids))
        # until the parent's commit removes them a new connection must not send them again;
        # bounded: the parent removes them within a commit or two
        self._deleting.update(ids)
        if len(self._deleting) > 100_000:
            self._deleting.clear()


def _child(config: DrainConfig, conn: multiprocessing.connection.Connection) -> None:
    # the gateway stops its child by closing the pipe; a Ctrl-C meant for the gateway must
    # not end this one with a KeyboardInterrupt in the middle of a publish
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s drain: %(message)s")  # fmt: skip
    try:
        import uvloop

        uvloop.run(_child_main(config, conn))
    except ImportError:
        asyncio.run(_child_main(config, conn))


async def _child_main(config: DrainConfig, conn: multiprocessing.connection.Connection, *,
                      exit_now: Callable[[int], object] = os._exit) -> None:  # fmt: skip
    topics = Topics(site=config.site, root=config.root)
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()

    def parent_gone() -> None:
        loop.remove_reader(conn.fileno())
        gone.set()

    outbox = _PipeOutbox(config.outbox, conn, parent_gone)
    drainer = Drainer(outbox=outbox, topics=topics)

    def readable() -> None:
        try:
            while conn.poll():
                conn.recv()  # every message is a wake-up
        except (EOFError, OSError):
            outbox.parent_gone()
            return
        drainer.wake()

    loop.add_reader(conn.fileno(), readable)

    def connect() -> aiomqtt.Client:
        return broker_client(host=config.host, port=config.port,
                             identifier=config.identifier, username=config.username,
                             password=config.password, keepalive_s=config.keepalive_s)

    async def report() -> None:
        while not outbox.gone:
            await asyncio.sleep(0.5)
            s = drainer.stats
            outbox.send(("stats", s.published, s.reconnects, s.last_error))

    task = asyncio.create_task(bridge(connect=connect, drainer=drainer,
                                      backoff_s=config.backoff_s,
                                      stopping=gone.is_set))  # fmt: skip
    reporter = asyncio.create_task(report())
    waiting = asyncio.create_task(gone.wait())
    await asyncio.wait((task, waiting), return_when=asyncio.FIRST_COMPLETED)
    tasks = (task, reporter, waiting)
    for t in tasks:
        t.cancel()
    # awaited here, not left to asyncio.run's shutdown, which logs what a cancelled task
    # raised on its way out as unhandled, and waits for ever for one that lost its
    # cancellation
    _, left = await asyncio.wait(tasks, timeout=STOP_S)
    if left:
        log.warning("%d task(s) still running %.0f s after the stop; exiting", len(left),
                    STOP_S)  # fmt: skip
        logging.shutdown()
        exit_now(0)
        return
    errors = [None if t.cancelled() else t.exception() for t in tasks]  # each retrieved
    if not gone.is_set() and errors[0] is not None:
        # the bridge ended by itself (a bug): exit with it, and the gateway starts another
        raise errors[0]


class DrainProcess:
    """Start with `await start()` on the gateway's loop; `wake()` after a commit; `stop()`."""

    RESTART_S = 1.0  # how often the child is looked at, and the first restart delay
    RESTART_MAX_S = 30.0
    QUICK_DEATH_S = 5.0  # a child that lived less than this died of its start: back off

    def __init__(self, config: DrainConfig, *, on_lease: Callable[[int], None],
                 on_delivered: Callable[[list[int]], None]) -> None:  # fmt: skip
        self.config = config
        self.stats = DrainStats()
        self.restarts = 0
        self._on_lease = on_lease
        self._on_delivered = on_delivered
        self._ctx = multiprocessing.get_context("spawn")  # no copy of the gateway's threads
        self._process: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._published_before = 0  # by children that ended
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self._started = 0.0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    async def start(self) -> None:
        self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._watchdog())

    def _spawn(self) -> None:
        self._started = time.monotonic()
        parent, child = self._ctx.Pipe(duplex=True)
        self._process = self._ctx.Process(target=_child, args=(self.config, child),
                                          name="seatlink-edge-drain", daemon=True)  # fmt: skip
        self._process.start()
        child.close()
        self._conn = parent
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable)

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                message = conn.recv()
                kind = message[0]
                if kind == "delivered":
                    self._on_delivered(message[1])
                elif kind == "lease":
                    self._on_lease(message[1])
                elif kind == "stats":
                    self.stats.published = self._published_before + message[1]
                    self.stats.reconnects, self.stats.last_error = message[2], message[3]
        except (EOFError, OSError):
            self._drop_conn()

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()

    def wake(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.send(("wake",))
        except OSError:
            self._drop_conn()

    async def _watchdog(self) -> None:
        delay = self.RESTART_S
        while not self._stopping:
            await asyncio.sleep(delay)
            if self._process is not None and not self._process.is_alive():
                # one that dies at start would otherwise be started again every second
                quick = time.monotonic() - self._started < self.QUICK_DEATH_S
                delay = min(delay * 2, self.RESTART_MAX_S) if quick else self.RESTART_S
                log.error("event drainer process ended (exit %s); another in %.0f s",
                          self._process.exitcode, delay)  # fmt: skip
                self._drop_conn()
                self._published_before = self.stats.published
                self.restarts += 1
                await asyncio.sleep(delay - self.RESTART_S)
                if not self._stopping:
                    self._spawn()

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        self._drop_conn()  # the child sees the pipe close and ends
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
