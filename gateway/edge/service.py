"""`seatlink edge`: every seat link of this gateway bridged to the site's MQTT broker.

    async with EdgeService(settings) as edge:   # links, outbox, broker connection running
        await edge.stopped()                    # until edge.stop() (SIGTERM, SIGINT)

Parts, each its own task: one `SeatLink` per port; the outbox's database thread; the
broker connection (`drain.bridge`) with the drainer, the command listener and the live
publisher on it; the inventory watcher; the health reporter. The live publisher sends
what changed (state, availability, health, quarantine, command results) every
`publish_interval_s`, so a burst of events costs one state message per seat, and after
every reconnect it republishes every retained topic.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, suppress
from types import TracebackType
from typing import Any

import aiomqtt

from gateway import __version__
from gateway.aio import raise_if_cancelled, wait_event
from gateway.contract.payloads import (
    CallCommand,
    CommandError,
    CommandResult,
    GatewayHealth,
    GatewayStatus,
    HelpCommand,
    HoldCommand,
    MessageCommand,
    OfferCommand,
    Payload,
    Quarantine,
    SeatAgent,
    SeatAvailability,
    SeatCommand,
    SetStateCommand,
    SettingsCommand,
    SyncCommand,
    parse_command,
    setting_keys,
)
from gateway.contract.topics import TopicError, Topics
from gateway.edge.drain import Drainer, DrainStats, bridge, broker_client
from gateway.edge.drain_process import DrainConfig, DrainProcess
from gateway.edge.firmware_update import FirmwareUpdates
from gateway.edge.inventory import InventoryWatcher, SeatBinding
from gateway.edge.link import LinkTuning, Request, SeatLink, SignIn
from gateway.edge.outbox import Outbox
from gateway.edge.settings import EdgeSettings
from gateway.edge.store import AsyncOutbox
from gateway.seatlink import messages
from gateway.seatlink.codec import Reason, State

log = logging.getLogger(__name__)


class EdgeService:
    INVENTORY_CHECK_S = 1.0
    EXPIRE_CHECK_S = 60.0
    ANNOUNCE_MAX = 10_000  # extension messages waiting for the broker; the latest are kept

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.gateway = settings.gateway
        self.topics = Topics(site=settings.site, root=settings.root)
        self.inventory = InventoryWatcher(settings.inventory)
        tuning = LinkTuning(
            heartbeat_misses=settings.heartbeat_misses, ack_timeout_s=settings.ack_timeout_s,
            attempts=settings.attempts, reject_window_s=settings.reject_window_s,
            reopen_backoff_s=settings.reopen_backoff_s, baudrate=settings.baudrate)  # fmt: skip
        self.links = [SeatLink(url, hub=self, tuning=tuning) for url in settings.link_urls()]
        self.started = time.monotonic()
        self.commands: collections.Counter[str] = collections.Counter()
        self.lost_results = 0
        self._db: Outbox | None = None
        self._outbox: AsyncOutbox | None = None
        self.drainer: Drainer | None = None  # in this process (drain_process false)
        self.drain_process: DrainProcess | None = None
        self.mqtt = DrainStats()  # the main connection: reconnects
        self._dirty: set[SeatLink] = set()
        self._flushed_at: dict[SeatLink, float] = {}
        self._results: collections.deque[CommandResult] = collections.deque()
        self._sent: dict[str, bytes] = {}  # topic -> last retained payload published
        self._quarantine_dirty = True
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.failed = False  # a part died of an error and stopped the gateway
        self._closing = False  # close() has begun: an MQTT error then ends the broker task
        self._tasks: list[asyncio.Task[None]] = []
        self._exit = AsyncExitStack()
        self._client: aiomqtt.Client | None = None
        self._announced: dict[str, Payload] = {}  # topic -> latest retained (extensions')
        # in order: a follower sees every step of an update, not only the latest
        self._announce_due: collections.deque[tuple[str, Payload]] = collections.deque(
            maxlen=self.ANNOUNCE_MAX)
        self.sign_ins: dict[str, SignIn] = {}  # seat -> from seat/{seat}/agent
        self.sign_in_counts: collections.Counter[str] = collections.Counter()
        self._sign_ins_from: float | None = None  # monotonic: first subscribed
        self.updates = FirmwareUpdates(gateway=self.gateway, topics=self.topics,
                                       links=self.links, backups=settings.firmware_backups,
                                       announce=self.announce)  # fmt: skip

    # --- Hub (what each link calls) ---------------------------------------------------------

    @property
    def outbox(self) -> AsyncOutbox:
        assert self._outbox is not None, "the service is not started"
        return self._outbox

    def binding(self, board: str) -> SeatBinding | None:
        return self.inventory.inventory.by_board(board)

    def changed(self, link: SeatLink) -> None:
        self._dirty.add(link)
        self._quarantine_dirty = True

    def announce(self, topic: str, payload: Payload) -> None:
        """A retained message of an extension: out with the next flush, in order; the
        latest per topic again after every reconnect."""
        self._announced[topic] = payload
        self._announce_due.append((topic, payload))
        self._wake.set()

    def sign_in(self, seat: str) -> SignIn | None:
        if not self.settings.sign_in:
            return None
        known = self.sign_ins.get(seat)
        if known is not None:
            return known
        since = self._sign_ins_from
        if since is not None and time.monotonic() - since >= self.settings.sign_in_wait_s:
            return SignIn(agent=None)  # no retained sign-in: nobody ever signed in there
        return None

    def _is_sign_in(self, topic: str) -> bool:
        try:
            return self.topics.parse(topic).spec.name == "seat_agent"
        except TopicError:
            return False

    def _take_sign_in(self, topic: str, payload: bytes) -> None:
        try:
            seat = self.topics.parse(topic).ids["seat"]
            change = SeatAgent.model_validate_json(payload)
            if change.seat != seat:
                raise ValueError(f"payload names seat {change.seat!r}, the topic {seat!r}")
        except (TopicError, KeyError, ValueError) as exc:
            self.sign_in_counts["invalid"] += 1  # nothing changes: the seat keeps what it had
            log.warning("sign-in on %s refused: %s", topic, str(exc).splitlines()[0])
            return
        self.sign_in_counts["taken"] += 1
        self.sign_ins[seat] = SignIn(agent=change.agent)
        for link in self.links:
            if link.seat == seat:
                link.sign_in_changed()

    def result(self, result: CommandResult) -> None:
        self.commands[result.status] += 1
        if len(self._results) >= self.settings.results_max:
            self._results.popleft()
            self.lost_results += 1
        self._results.append(result)
        self._wake.set()

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> EdgeService:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:  # fmt: skip
        await self.close()

    async def start(self) -> None:
        s = self.settings
        self._db = Outbox(s.outbox, max_events=s.outbox_max_events, max_age_s=s.outbox_max_age_s)
        self._outbox = AsyncOutbox(self._db)
        if s.drain_process:
            b = s.broker
            self.drain_process = DrainProcess(DrainConfig(
                outbox=s.outbox.resolve(), site=s.site, root=s.root, host=b.host, port=b.port,
                identifier=f"seatlink-edge-{self.gateway}-events", username=b.username,
                password=b.password_text,
                keepalive_s=b.keepalive_s, backoff_s=(0.2, 5.0)),
                on_lease=self._db.lease, on_delivered=self._outbox.delivered_later)  # fmt: skip
            await self.drain_process.start()
            self._outbox.on_stored = self.drain_process.wake
        else:
            self.drainer = Drainer(outbox=self._outbox, topics=self.topics)
            self._outbox.on_stored = self.drainer.wake
        for link in self.links:
            self._spawn(link.run(), f"link {link.url}")
        self._spawn(bridge(connect=self._connect, drainer=self.drainer, stats=self.mqtt,
                           on_connect=self._on_connect, tasks=(self._listen, self._publish),
                           stopping=lambda: self._closing), "broker")  # fmt: skip
        self._spawn(self._watch_inventory(), "inventory")
        self._spawn(self.updates.run(), "firmware updates")
        self._spawn(self._expire(), "outbox expiry")
        log.info("edge %s: %d links, site %s, broker %s:%d", self.gateway, len(self.links),
                 s.site, s.broker.host, s.broker.port)  # fmt: skip

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # a part died: the gateway must not limp on silently without it
            log.error("%s failed", task.get_name(), exc_info=task.exception())
            self.failed = True
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    async def stopped(self) -> None:
        await self._stop.wait()

    async def close(self) -> None:
        """Stop links, say offline (each seat, then the gateway) while the broker is there."""
        self._closing = True
        client = self._client
        if client is not None:
            with suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(2):
                    await self._goodbye(client)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        if self.drain_process is not None:
            await self.drain_process.stop()
        if self._outbox is not None:
            self._outbox.close()
        if self._db is not None:
            self._db.close()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        t = round(time.time(), 3)
        for binding in self.inventory.inventory.seats:
            await self._retain(client, self.topics.topic("seat_availability", seat=binding.seat),
                               SeatAvailability(seat=binding.seat, gateway=self.gateway,
                                                status="offline", why="gateway stopped", t=t))
        await self._retain(client, self.topics.gateway_status(self.gateway),
                           GatewayStatus(gateway=self.gateway, status="offline",
                                         version=__version__, t=t))  # fmt: skip

    # --- broker -----------------------------------------------------------------------------

    def _connect(self) -> aiomqtt.Client:
        b = self.settings.broker
        will = aiomqtt.Will(self.topics.gateway_status(self.gateway),
                            GatewayStatus(gateway=self.gateway, status="offline",
                                          version=__version__).dump(), qos=1, retain=True)
        return broker_client(
            host=b.host, port=b.port, identifier=f"seatlink-edge-{self.gateway}",
            username=b.username,
            password=b.password_text,
            keepalive_s=b.keepalive_s, will=will)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._sent.clear()  # everything retained goes out again
        self._quarantine_dirty = True
        await client.subscribe(self.topics.subscription("seat_cmd"), qos=1)
        if self.settings.sign_in:
            await client.subscribe(self.topics.subscription("seat_agent"), qos=1)
            if self._sign_ins_from is None:
                # each link asks sign_in() on every pass of its loop (at least every 0.25 s):
                # once the wait is over, a seat with no sign-in known is told "nobody"
                self._sign_ins_from = time.monotonic()
        await client.subscribe(self.topics.topic("firmware_cmd", gateway=self.gateway), qos=1)
        await self._retain(client, self.topics.gateway_status(self.gateway),
                           GatewayStatus(gateway=self.gateway, status="online",
                                         version=__version__, t=round(time.time(), 3)))
        await self._flush(client, everything=True)
        await self._health(client)

    async def _retain(self, client: aiomqtt.Client, topic: str, payload: Payload,
                      qos: int = 1) -> None:  # fmt: skip
        data = payload.dump()
        await client.publish(topic, data, qos=qos, retain=True)
        self._sent[topic] = self._strip_t(data)

    async def _publish(self, client: aiomqtt.Client) -> None:
        try:
            await self._publish_on(client)
        finally:
            if self._client is client:
                self._client = None  # gone: the goodbye at close must not wait on it

    async def _publish_on(self, client: aiomqtt.Client) -> None:
        next_health = time.monotonic() + self.settings.health_interval_s
        while True:
            raise_if_cancelled()  # a stop that a publish's ack wait took (seen: a test hung)
            self._wake.clear()
            await wait_event(self._wake, self.settings.publish_interval_s)
            await self._flush(client)
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + self.settings.health_interval_s
                await self._health(client)

    async def _flush(self, client: aiomqtt.Client, *, everything: bool = False) -> None:
        t = round(time.time(), 3)
        now = time.monotonic()
        if everything:
            dirty, self._dirty = set(self.links), set()
        else:
            # a seat's retained messages at most every state_min_interval_s: at hundreds of
            # events a second they would double the broker's load, and its events (sent
            # at once) are the timeline; the latest state still goes out, just coalesced
            gap = self.settings.state_min_interval_s
            dirty = {lk for lk in self._dirty if now - self._flushed_at.get(lk, -gap) >= gap}
            self._dirty -= dirty
        for link in dirty:
            self._flushed_at[link] = now
        sends: list[tuple[str, bytes, int]] = []
        for topic, payload, qos in self._retained(dirty, t, everything=everything):
            data = payload.dump()
            key_payload = self._strip_t(data)
            if self._sent.get(topic) == key_payload:
                continue
            self._sent[topic] = key_payload
            sends.append((topic, data, qos))
        if sends:
            await asyncio.gather(*(client.publish(topic, data, qos=qos, retain=True)
                                   for topic, data, qos in sends))  # fmt: skip
        if everything:
            self._announce_due.clear()
            for topic, payload in list(self._announced.items()):
                await self._retain(client, topic, payload)
        while self._announce_due:
            topic, payload = self._announce_due[0]
            await self._retain(client, topic, payload)
            self._announce_due.popleft()
        while self._results:
            result = self._results[0]
            await client.publish(self.topics.topic("seat_cmd_result", seat=result.seat),
                                 result.dump(), qos=1)  # fmt: skip
            self._results.popleft()

    @staticmethod
    def _strip_t(data: bytes) -> bytes:
        # a retained message that differs only in its timestamp is not news
        cut = data.rfind(b',"t":')
        return data if cut < 0 else data[:cut]

    def _retained(self, links: set[SeatLink], t: float, *,
                  everything: bool) -> Iterator[tuple[str, Payload, int]]:  # fmt: skip
        topics = self.topics
        seats_with_links: set[str] = set()
        for link in self.links:
            if link.seat is not None:
                seats_with_links.add(link.seat)
        for link in links:
            seat = link.seat
            if seat is None:
                continue
            if link.view is not None and (state := link.view.payload(t)) is not None:
                yield topics.seat_state(seat), state, 1
            yield (topics.topic("seat_availability", seat=seat),
                   SeatAvailability(seat=seat, gateway=self.gateway,
                                    status="online" if link.online else "offline",
                                    why=link.why, t=t), 1)  # fmt: skip
            if (health := link.health(t)) is not None:
                yield topics.topic("seat_health", seat=seat), health, 0
        if everything:
            for binding in self.inventory.inventory.seats:
                if binding.seat not in seats_with_links:
                    yield (topics.topic("seat_availability", seat=binding.seat),
                           SeatAvailability(seat=binding.seat, gateway=self.gateway,
                                            status="offline", why="board not heard on any link",
                                            t=t), 1)  # fmt: skip
        if self._quarantine_dirty or everything:
            self._quarantine_dirty = False
            entries = [e for link in self.links if (e := link.quarantine_entry()) is not None]
            yield (topics.topic("gateway_quarantine", gateway=self.gateway),
                   Quarantine(gateway=self.gateway, boards=entries, t=t), 1)

    async def _health(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics.topic("gateway_health", gateway=self.gateway),
                             (await self.health()).dump(), qos=0, retain=True)  # fmt: skip

    async def health(self) -> GatewayHealth:
        stats = await self.outbox.stats()
        drain = (self.drainer.stats if self.drainer is not None else
                 self.drain_process.stats if self.drain_process is not None else None)
        commands = {k: self.commands.get(k, 0) for k in
                    ("received", "done", "rejected", "expired", "failed", "invalid")}  # fmt: skip
        return GatewayHealth(
            gateway=self.gateway, uptime_s=round(time.monotonic() - self.started, 1),
            links=len(self.links), links_open=sum(link.is_open for link in self.links),
            seats_online=sum(link.online for link in self.links),
            quarantined=sum(link.quarantined for link in self.links),
            outbox_depth=stats.depth,
            outbox_oldest_age_s=None if stats.oldest_age_s is None
            else round(stats.oldest_age_s, 3),
            outbox_dropped=stats.dropped, outbox_dropped_total=stats.dropped_total,
            events_stored=self.outbox.stored, repeats_refused=self.outbox.repeats,
            published=drain.published if drain else 0,
            reconnects=self.mqtt.reconnects + (drain.reconnects if drain else 0),
            commands=commands, lost_results=self.lost_results,
            inventory_error=self.inventory.error,
            firmware_updates=dict(sorted(self.updates.counts.items())),
            sign_ins={k: self.sign_in_counts.get(k, 0) for k in ("taken", "invalid")},
            t=round(time.time(), 3),
        )  # fmt: skip

    # --- commands ---------------------------------------------------------------------------

    async def _listen(self, client: aiomqtt.Client) -> None:
        firmware_cmd = self.topics.topic("firmware_cmd", gateway=self.gateway)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if str(message.topic) == firmware_cmd:
                self.updates.request(payload)
            elif self._is_sign_in(str(message.topic)):
                self._take_sign_in(str(message.topic), payload)
            else:
                self.command(str(message.topic), payload)

    def command(self, topic: str, payload: bytes) -> None:
        """One message from a seat's command topic: to its link, or a clear error back."""
        self.commands["received"] += 1
        try:
            seat = self.topics.parse(topic).ids["seat"]
        except (TopicError, KeyError):
            self.commands["invalid"] += 1  # nowhere to answer: counted and logged
            log.warning("command on %r: not a seat command topic", topic)
            return
        link = next((lk for lk in self.links if lk.seat == seat), None)
        cid: str | None = None
        try:
            parsed = parse_command(payload)
            cid = parsed.id
            command = to_seat_command(parsed)
        except CommandError as exc:
            self._invalid(seat, exc.id or cid, str(exc))
            return
        except ValueError as exc:
            self._invalid(seat, cid, str(exc))
            return
        if link is None:
            if self.inventory.inventory.by_seat(seat) is not None:
                self.result(CommandResult(
                    id=cid, seat=seat, gateway=self.gateway, status="failed",
                    detail=f"seat {seat}'s board has not been heard on any link of this gateway",
                    t=round(time.time(), 3)))  # fmt: skip
            elif self.settings.answer_unknown_seats:
                self._invalid(seat, cid, f"unknown seat {seat!r}: not in this gateway's "
                              "inventory")  # fmt: skip
            return
        deadline = time.monotonic() + parsed.expires_in_s
        link.submit(Request(command, deadline, id=cid, seat=seat))

    def _invalid(self, seat: str, cid: str | None, detail: str) -> None:
        log.info("invalid command for %s: %s", seat, detail)
        self.result(CommandResult(id=cid, seat=seat, gateway=self.gateway, status="invalid",
                                  detail=detail, t=round(time.time(), 3)))  # fmt: skip

    # --- housekeeping -----------------------------------------------------------------------

    async def _watch_inventory(self) -> None:
        while True:
            await asyncio.sleep(self.INVENTORY_CHECK_S)
            if self.inventory.check():
                log.info("inventory changed: %d seats", len(self.inventory.inventory.seats))
                for link in self.links:
                    link.inventory_changed()
                self._quarantine_dirty = True
                self._wake.set()

    async def _expire(self) -> None:
        while True:
            dropped = await self.outbox.expire()
            if dropped:
                log.warning("outbox: %d events older than %.0f s dropped (counted)", dropped,
                            self.settings.outbox_max_age_s)  # fmt: skip
            await asyncio.sleep(self.EXPIRE_CHECK_S)


def to_seat_command(c: SeatCommand) -> messages.Command:
    """The seat link command for a parsed MQTT command; ValueError for values out of range."""
    if isinstance(c, OfferCommand):
        return messages.offer(c.call, ring_limit=c.ring_limit, ring_ms=c.ring_ms)
    if isinstance(c, CallCommand):
        build = {"cancel": messages.cancel, "connected": messages.connected,
                 "released": messages.released}[c.command]  # fmt: skip
        return build(c.call)
    if isinstance(c, HoldCommand):
        return messages.hold(c.call, on=c.on)
    if isinstance(c, SetStateCommand):
        reason = None if c.reason is None else Reason[c.reason.upper()]
        return messages.set_state(State[c.state.upper()], reason=reason)
    if isinstance(c, SettingsCommand):
        keys = setting_keys(c.settings)
        if len(keys) > 5:
            raise ValueError("at most 5 settings per command (one G frame)")
        return messages.settings(keys)
    if isinstance(c, HelpCommand):
        return messages.help_flag(c.on)
    if isinstance(c, MessageCommand):
        return messages.message(c.colour, c.seconds)
    assert isinstance(c, SyncCommand)
    return messages.sync()
