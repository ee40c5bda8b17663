"""`seatlink core`: one worker of the policy/KPI core (issue 5).

Design requirements:

- Nothing lost: an event message is acknowledged to the broker only once the transaction
  that stored it has committed (manual PUBACK on a persistent session). A worker that dies
  leaves its unacknowledged messages to be delivered again; the store drops the repeats.
- Several workers split the load: each takes its share of `seat/+/event`, `call/+/event`
  and `seat/+/agent` (who is signed in where, issue 19) through one shared subscription
  (`$share/<group>/...`) and stores it; every worker then follows the store's tails
  (everything any worker stored, in commit order; the sign-ins first) into its live KPIs
  and alert engine, which book each seat's events to the agent signed in there. So each
  worker holds the whole site's live state, and the store decides who publishes an alert:
  the worker whose insert made it.
- The leader (the only worker on SQLite; the holder of an advisory lock on PostgreSQL)
  publishes the live KPIs and the open alerts; every worker publishes its own health.
- Every store call runs on one thread of its own: the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import islice
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from gateway import __version__
from gateway.aio import wait_event
from gateway.contract.payloads import (
    AlertCommand,
    AlertCommandResult,
    AlertMessage,
    AlertsOpen,
    CallEvent,
    CommandError,
    CoreHealth,
    CoreStatus,
    GatewayStatus,
    KpiLive,
    SeatAvailability,
    SeatEvent,
    parse_alert_command,
)
from gateway.contract.topics import TopicError, Topics
from gateway.core.alerts import RULES, Alert, AlertChange, AlertEngine
from gateway.core.kpi import By, Kpis
from gateway.core.live import LiveKpis
from gateway.core.schedule import Schedule, load_schedule
from gateway.core.settings import CoreSettings
from gateway.core.store import EventStore, StoreError, open_store
from gateway.edge.drain import bridge, publish_once

log = logging.getLogger("seatlink.core")
T = TypeVar("T")

RECEIVE_MAXIMUM = 10_000  # unacknowledged messages the broker may have out to this worker


@dataclass
class CoreStats:
    received: int = 0
    published: int = 0
    dropped: int = 0
    reconnects: int = 0
    store_errors: int = 0
    bad_commands: int = 0
    bad_availability: int = 0
    bad_events: int = 0  # stored events the live state could not take
    bad_messages: int = 0  # availability, status or commands that failed unforeseen
    last_error: str | None = None
    alerts_published: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


class CoreService:
    """`async with CoreService(settings) as core:` runs the worker until the block ends."""

    OUTGOING_MAX = 100_000
    FOLLOW_PAGE = 5000
    TICK_S = 1.0
    STORE_RETRY_S = (0.5, 10.0)

    def __init__(self, settings: CoreSettings, *, clock: Callable[[], float] = time.time
                 ) -> None:  # fmt: skip
        self.settings = settings
        self.topics = Topics(site=settings.site, root=settings.root)
        self.clock = clock
        self.stats = CoreStats()
        self.live = LiveKpis(tz=settings.tz, site=settings.site, ring_limit=settings.ring_limit,
                             sl_threshold_s=settings.sl_threshold_s)  # fmt: skip
        self.live.settle_s = settings.settle_s
        self.schedule: Schedule | None = None
        if settings.schedule is not None:
            self.schedule = load_schedule(settings.schedule)
        self.alerts = AlertEngine(settings.alert_settings(), shift_end=self._shift_end)
        self.store: EventStore | None = None
        self.leader = False
        self.position = 0  # of the store's tail, followed up to here
        self.sign_in_position = 0  # ... and of its sign-in changes
        self.newest_t: float | None = None
        self.online = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="core-store")
        self._client: aiomqtt.Client | None = None
        self._pending: deque[tuple[aiomqtt.Client, aiomqtt.Message]] = deque()
        self._arrived = asyncio.Event()
        self._stored = asyncio.Event()
        self._outgoing: deque[tuple[str, bytes, int, bool]] = deque()
        self._wake_writer = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._published_kpis: dict[tuple[str, str], dict[str, Any]] = {}
        self._open_alerts_version: tuple[int, int] | None = None
        self._alert_queue: asyncio.Queue[list[AlertChange]] = asyncio.Queue()
        self._gateway_of: dict[str, str] = {}  # seat -> the gateway it was last heard on
        self._store_errors: tuple[type[Exception], ...] = (StoreError,)

    # --- life -----------------------------------------------------------------------------

    async def __aenter__(self) -> CoreService:
        s = self.settings
        self.store = await self._db(partial(
            open_store, s.store, topics=self.topics,
            known_seats=None if s.known_seats is None else frozenset(s.known_seats),
            max_skew_s=s.max_skew_s, clock=self.clock))  # fmt: skip
        self._store_errors = (StoreError, *self.store.errors)
        await self._catch_up()
        self._task = asyncio.create_task(self._run(), name="core")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:  # fmt: skip
        self._closing = True
        cancelled = False  # the caller itself is being cancelled: that must reach it
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                cancelled = current is not None and current.cancelling() > 0
            except Exception:  # noqa: S110 - logged in _run: stopping goes on
                pass
        await self._goodbye()
        if self.store is not None:
            await self._db(self.store.close)
        self._executor.shutdown(wait=True)
        if cancelled:
            raise asyncio.CancelledError

    async def stopped(self) -> None:
        """Returns when the worker stopped on its own (an error it logged)."""
        if self._task is not None:
            with suppress(BaseException):
                await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(bridge(connect=self._connect, on_connect=self._on_connect,
                                         tasks=(self._reader, self._writer),
                                         stopping=lambda: self._closing,
                                         stats=self.stats))  # type: ignore[arg-type]  # fmt: skip
                group.create_task(self._ingester())
                group.create_task(self._follower())
                group.create_task(self._ticker())
                group.create_task(self._reporter())
                group.create_task(self._alert_writer())
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.exception("core worker stopped by an error")  # a silent core is the worst
            raise

    async def _db(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _db_retry(self, fn: Callable[[], T], what: str) -> T:
        """`fn` on the store until it works: a database that is away (restarting, a network
        cut) delays the work, it does not stop the worker or lose it."""
        delay = self.STORE_RETRY_S[0]
        while True:
            try:
                return await self._db(fn)
            except self._store_errors as exc:
                self.stats.store_errors += 1
                self.stats.last_error = f"{what}: {exc}"
                log.error("%s failed (%s); again in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.STORE_RETRY_S[1])
                if self.store is not None:  # a connection the server dropped is reopened
                    with suppress(*self._store_errors):
                        await self._db(self.store.reconnect)

    async def _catch_up(self) -> None:
        """Rebuild the live state of the days kept from the store, then follow its tail:
        the same events through the same code give the same figures and alert ids."""
        assert self.store is not None
        store = self.store
        now = self.clock()
        self.live.now = now
        since = self.live.day_floor() - 4 * 3600  # calls and ACW across the first midnight
        start = await self._db(store.position)
        # who was signed in where first: the events replayed are booked as they were live
        sign_in_start = await self._db(store.sign_in_position)
        for c in await self._db(partial(store.sign_ins, since=since)):
            self._sign_in(c.seat, c.agent, c.t, c.id)
        self.sign_in_position = sign_in_start
        rows = store.events(since=since)  # a generator of pages, advanced on the store thread
        while page := await self._db(lambda: [(e.model(), e.received)
                                              for e in islice(rows, 5000)]):  # fmt: skip
            # each as it arrived when the store took it: a call that ended long ago is
            # settled now, not `settle_s` after the restart (its figures would be empty
            # until then); a large site's two days do not fit at once
            self._feed([e for e, _ in page], arrived=[r for _, r in page])
        self.position = start  # events stored after `start` come again by the tail: repeats
        self.live.advance(now)
        self._alert_changes(self.alerts.tick(now))  # a hold that ran over while it was down

    # --- broker ---------------------------------------------------------------------------

    def _connect(self) -> aiomqtt.Client:
        b, s = self.settings.broker, self.settings
        status = self.topics.topic("core_status", core=s.core)
        will = aiomqtt.Will(status, self._status("offline").dump(), qos=1, retain=True)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600  # unacknowledged events wait for this worker
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client = aiomqtt.Client(
            b.host, b.port, identifier=f"seatlink-core-{s.site}-{s.core}",
            username=b.username, password=b.password_text, keepalive=b.keepalive_s, will=will,
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
            timeout=10, max_queued_outgoing_messages=0)  # fmt: skip
        client.pending_calls_threshold = 1 << 30
        # aiomqtt has no manual acknowledgement; the paho client it wraps does, and an event
        # must not be acknowledged before it is stored
        client._client.manual_ack_set(True)
        return client

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        s, t = self.settings, self.topics
        share = f"$share/{s.share_group}/"
        # seat_agent too: each sign-in change stored once, by one worker; the retained copy
        # handed over again on a reconnect is a repeat by id, dropped by the store
        for name in ("seat_event", "call_event", "seat_agent", "alert_cmd"):
            await client.subscribe(share + t.subscription(name), qos=1)
        await client.subscribe(t.subscription("seat_availability"), qos=1)
        await client.subscribe(t.subscription("gateway_status"), qos=1)
        self._client = client
        await client.publish(t.topic("core_status", core=s.core), self._status("online").dump(),
                             qos=1, retain=True)  # fmt: skip
        self.online.set()

    async def _reader(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                self.stats.received += 1
                name = self._topic_name(str(message.topic))
                if name in ("seat_availability", "gateway_status", "alert_cmd"):
                    try:
                        if name == "seat_availability":
                            self._availability(message.payload)
                        elif name == "gateway_status":
                            self._gateway_status(message.payload)
                        else:
                            await self._alert_command(message.payload)
                    except Exception:  # no message may stop the worker: counted, logged
                        self.stats.bad_messages += 1
                        log.exception("a message on %s could not be taken", message.topic)
                    self._ack(client, message)
                else:  # events and anything else the store should see (and refuse)
                    self._pending.append((client, message))
                    self._arrived.set()
        finally:
            self.online.clear()
            if self._client is client:
                self._client = None

    async def _writer(self, client: aiomqtt.Client) -> None:
        while True:
            while self._outgoing:
                topic, payload, qos, retain = self._outgoing[0]
                await client.publish(topic, payload, qos=qos, retain=retain,
                                     timeout=float("inf"))  # fmt: skip
                self._outgoing.popleft()
                self.stats.published += 1
            self._wake_writer.clear()
            await self._wake_writer.wait()

    def _send(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if len(self._outgoing) >= self.OUTGOING_MAX:
            self._outgoing.popleft()
            self.stats.dropped += 1
        self._outgoing.append((topic, payload, qos, retain))
        self._wake_writer.set()

    def _ack(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        # a message of a connection that is gone comes again on the next one
        if client is self._client and message.qos > 0:
            client._client.ack(message.mid, message.qos)

    def _topic_name(self, topic: str) -> str | None:
        try:
            return self.topics.parse(topic).spec.name
        except TopicError:
            return None

    async def _goodbye(self) -> None:
        b, s = self.settings.broker, self.settings
        await publish_once(host=b.host, port=b.port, identifier=f"seatlink-core-{s.core}-bye",
                           username=b.username, password=b.password_text,
                           topic=self.topics.topic("core_status", core=s.core),
                           payload=self._status("offline").dump())  # fmt: skip

    def _status(self, status: Literal["online", "offline"]) -> CoreStatus:
        return CoreStatus(core=self.settings.core, status=status, version=__version__,
                          t=None if status == "offline" else round(self.clock(), 3))

    # --- ingest ---------------------------------------------------------------------------

    async def _ingester(self) -> None:
        """Batches of event messages into the store; acknowledged once committed."""
        s = self.settings
        while True:
            await self._arrived.wait()
            if len(self._pending) < s.batch_max:
                await asyncio.sleep(s.batch_wait_s)
            batch = [self._pending.popleft() for _ in range(min(s.batch_max,
                                                                len(self._pending)))]  # fmt: skip
            if not self._pending:
                self._arrived.clear()
            messages = [(str(m.topic), _bytes(m.payload)) for _, m in batch]
            assert self.store is not None
            # the database away: the batch is kept and tried again, nothing acknowledged
            await self._db_retry(partial(self.store.ingest, messages), "storing a batch")
            for client, message in batch:
                self._ack(client, message)
            self._stored.set()

    # --- following the store --------------------------------------------------------------

    async def _follower(self) -> None:
        """Everything stored, by any worker, in commit order, into the live state."""
        assert self.store is not None
        store = self.store
        while True:
            # sign-in changes before the events stored with or after them: an event is
            # booked to the agent signed in at its seat at its time
            changes = await self._db_retry(partial(store.sign_in_tail, self.sign_in_position),
                                           "reading the store's sign-ins")  # fmt: skip
            if changes:
                self.sign_in_position = changes[-1][0]
                for _, c in changes:
                    self._sign_in(c.seat, c.agent, c.t, c.id)
            rows = await self._db_retry(partial(self._read_tail, store, self.position),
                                        "reading the store's tail")  # fmt: skip
            if rows:
                self.position = rows[-1][0]
                self._feed([m for _, m in rows])
                if len(rows) == self.FOLLOW_PAGE:
                    continue
            self._stored.clear()
            # other workers' events show up in the store without a wake-up: look now and then
            await wait_event(self._stored, 0.25)

    def _read_tail(self, store: EventStore, after: int) -> list[tuple[int, SeatEvent | CallEvent]]:
        return [(n, e.model()) for n, e in store.tail(after, limit=self.FOLLOW_PAGE)]

    def _feed(self, events: Iterable[SeatEvent | CallEvent],
              arrived: Sequence[float] | None = None) -> None:  # fmt: skip
        """`arrived`: when each arrived, if not now (a replay: when the store took it)."""
        changes: list[AlertChange] = []
        for i, e in enumerate(events):
            try:
                self.live.feed((e,), arrived=None if arrived is None else arrived[i])
                if isinstance(e, SeatEvent):
                    self._gateway_of[e.seat] = e.gateway
                    changes += self.alerts.on_seat_event(e)
                else:
                    changes += self.alerts.on_call_event(e)
            except Exception:  # a stored event no code foresaw: counted, never a stop
                self.stats.bad_events += 1
                if self.stats.bad_events <= 10:
                    log.exception("event %s could not be taken into the live state", e.id)
            if self.newest_t is None or e.t > self.newest_t:
                self.newest_t = e.t
        if changes:
            self._alert_changes(changes)

    def _sign_in(self, seat: str, agent: str | None, t: float, id: str) -> None:
        try:
            self.live.sign_in(seat, agent, t, id)
            self.alerts.sign_in(seat, agent, t, id)
        except Exception:  # a stored change no code foresaw: counted, never a stop
            self.stats.bad_events += 1
            log.exception("sign-in change %s could not be taken into the live state", id)

    def _availability(self, payload: Any) -> None:
        try:
            a = SeatAvailability.model_validate_json(_bytes(payload))
        except ValidationError:
            self.stats.bad_availability += 1
            return
        self._gateway_of[a.seat] = a.gateway
        if a.t > self.clock() + self.settings.max_skew_s:  # would move the alert clock on
            self.stats.bad_availability += 1
            return
        self._alert_changes(self.alerts.on_availability(a.seat, a.status == "online", a.t))

    def _gateway_status(self, payload: Any) -> None:
        """A gateway gone (its last will) takes its seats with it: each is offline."""
        try:
            g = GatewayStatus.model_validate_json(_bytes(payload))
        except ValidationError:
            self.stats.bad_availability += 1
            return
        if g.status == "online":
            return
        now = self.clock()
        t = g.t if g.t is not None else now  # the last will carries no time
        if t > now + self.settings.max_skew_s:
            self.stats.bad_availability += 1
            return
        for seat, gateway in list(self._gateway_of.items()):
            if gateway == g.gateway:
                self._alert_changes(self.alerts.on_availability(seat, False, t))

    def _shift_end(self, seat: str, t: float) -> float | None:
        """The end of the shift of the agent signed in at the seat (the schedule names
        agents); nobody signed in: no shift."""
        if self.schedule is None:
            return None
        agent = self.alerts.sign_ins.agent_at(seat, t)
        shift = None if agent is None else self.schedule.shift_at(agent, t)
        return None if shift is None else shift.end

    # --- alerts ---------------------------------------------------------------------------

    def _alert_changes(self, changes: list[AlertChange]) -> None:
        """Stored (once, whoever's worker stores it first) and, by that worker, published;
        in order, by one task. A change the store has already (another worker's, or this
        one's before a restart) is not published again; one it lacks is, replayed or not."""
        if changes:
            self._alert_queue.put_nowait(changes)

    async def _alert_writer(self) -> None:
        while True:
            await self._record(await self._alert_queue.get())

    async def _record(self, changes: list[AlertChange]) -> None:
        assert self.store is not None
        store = self.store
        for c in changes:
            a = c.alert
            if c.change == "raised":
                message = _message(a, "raised", c.t)
                text = message.dump().decode()
                new = await self._db_retry(partial(store.add_alert, id=a.id, rule=a.rule,
                                                   seat=a.seat, t=a.t, payload=text),
                                           "storing an alert")  # fmt: skip
            else:
                outcome = await self._db_retry(partial(
                    store.act_on_alert, id=a.id, action="cleared", who="core", t=c.t,
                    note=c.why), "storing an alert's end")  # fmt: skip
                new = outcome == "done"
                message = _message(a, "cleared", c.t, note=c.why)
            if new and c.change == "raised" and RULES[a.rule].clears == "never":
                # about one event (an answer after 3 rings): nothing will end it, so it is
                # over as it is raised; a supervisor sees it, it does not stay open
                await self._db_retry(partial(store.act_on_alert, id=a.id, action="cleared",
                                             who="core", t=c.t, note="a single event"),
                                     "storing an alert's end")  # fmt: skip
            if new:
                self.stats.alerts_published += 1
                self.stats.by_rule[a.rule] = self.stats.by_rule.get(a.rule, 0) + 1
                self._send(self.topics.topic("seat_alert", seat=a.seat), message.dump())

    async def _alert_command(self, payload: Any) -> None:
        raw = _bytes(payload)
        try:
            cmd: AlertCommand = parse_alert_command(raw)
        except CommandError as exc:
            self.stats.bad_commands += 1
            self._result(AlertCommandResult(id=exc.id, alert=None, status="invalid",
                                            reason=str(exc)))  # fmt: skip
            return
        assert self.store is not None
        store = self.store
        action: Literal["acknowledged", "resolved"] = \
            "acknowledged" if cmd.action == "acknowledge" else "resolved"  # fmt: skip
        now = self.clock()
        try:  # once: the reader must not wait on the database (the request may be repeated)
            outcome = await self._db(partial(store.act_on_alert, id=cmd.alert, action=action,
                                             who=cmd.who, t=now, note=cmd.note))  # fmt: skip
        except self._store_errors as exc:
            self.stats.store_errors += 1
            self.stats.last_error = f"alert command: {exc}"
            with suppress(*self._store_errors):
                await self._db(store.reconnect)
            reason = f"the store could not take it: {exc}"
            self._result(AlertCommandResult(id=cmd.id, alert=cmd.alert, status="failed",
                                            reason=reason))  # fmt: skip
            return
        reason = {"done": "", "unknown": f"no alert {cmd.alert}",
                  "again": f"alert {cmd.alert} was {action} already"}[outcome]  # fmt: skip
        if outcome == "done":
            stored = await self._db_retry(partial(store.alert, cmd.alert), "reading an alert")
            if stored is not None:
                base = AlertMessage.model_validate(stored["alert"])
                update = base.model_copy(update={"status": action, "t": round(now, 3),
                                                 "who": cmd.who, "note": cmd.note})  # fmt: skip
                self._send(self.topics.topic("seat_alert", seat=base.seat), update.dump())
        self._result(AlertCommandResult(id=cmd.id, alert=cmd.alert, status=outcome,
                                        reason=reason))  # fmt: skip

    def _result(self, result: AlertCommandResult) -> None:
        self._send(self.topics.topic("alert_cmd_result"), result.dump())

    # --- time -----------------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Calls settle, hold and offline alerts fire on time, KPIs go out."""
        s = self.settings
        next_kpis = next_agents = 0.0
        while True:
            now = self.clock()
            self.live.advance(now)
            self._alert_changes(self.alerts.tick(now))
            if self.leader and self.online.is_set():
                if now >= next_kpis:
                    self._publish_kpis(("site", "queue"), now)
                    await self._publish_open_alerts(now)
                    next_kpis = now + s.kpi_interval_s
                if now >= next_agents:
                    self._publish_kpis(("agent", "seat"), now)
                    next_agents = now + s.agent_kpi_interval_s
            await asyncio.sleep(self.TICK_S)

    def _publish_kpis(self, scopes: tuple[By, ...], now: float) -> None:
        for by in scopes:
            windows: dict[str, dict[str, Kpis]] = {
                "rolling_15min": self.live.rolling(15, by=by)[1],
                "current_15min": self.live.window("15min", now, by=by)[1],
                "today": self.live.window("day", now, by=by)[1],
            }
            keys = sorted({k for figures in windows.values() for k in figures})
            for key in keys:
                body = {name: _figures(figures.get(key)) for name, figures in windows.items()}
                if self._published_kpis.get((by, key)) == body and by in ("agent", "seat"):
                    continue  # 5,000 agents: only those whose figures moved
                self._published_kpis[(by, key)] = body
                message = KpiLive(scope=by, key=key, t=round(now, 3), windows=body)
                self._send(self.topics.topic("kpi_live", scope=by, key=key), message.dump(),
                           qos=0, retain=True)  # fmt: skip

    async def _publish_open_alerts(self, now: float) -> None:
        assert self.store is not None
        store = self.store
        version = await self._db_retry(store.alerts_version, "counting alerts")
        if version == self._open_alerts_version:
            return  # nothing raised, acknowledged or ended since, by any worker
        rows = await self._db_retry(partial(store.alerts, open_only=True),
                                    "reading the open alerts")  # fmt: skip
        self._open_alerts_version = version
        keep = rows[-self.settings.open_alerts_max:]
        alerts = []
        for r in keep:
            m = AlertMessage.model_validate(r["alert"])
            ack = r["actions"].get("acknowledged")
            if ack is not None:
                m = m.model_copy(update={"status": "acknowledged", "t": ack["t"],
                                         "who": ack["who"], "note": ack["note"]})  # fmt: skip
            alerts.append(m)
        message = AlertsOpen(t=round(now, 3), alerts=alerts, more=len(rows) - len(keep))
        self._send(self.topics.topic("alerts_open"), message.dump(), retain=True)

    async def _reporter(self) -> None:
        assert self.store is not None
        store = self.store
        while True:
            try:
                self.leader = await self._db(store.try_lead)
                health = await self.health()
            except self._store_errors as exc:  # no health this round; the next may have it
                self.stats.store_errors += 1
                self.stats.last_error = f"health: {exc}"
                self.leader = False  # a lock held on a lost connection is lost with it
            else:
                if self.online.is_set():
                    self._send(self.topics.topic("core_health", core=self.settings.core),
                               health.dump(), qos=0, retain=True)  # fmt: skip
            await asyncio.sleep(self.settings.health_interval_s)

    async def health(self) -> CoreHealth:
        assert self.store is not None
        counts = await self._db(self.store.counts)
        c = self.alerts.counts
        now = self.clock()
        return CoreHealth(
            core=self.settings.core, t=round(now, 3), leader=self.leader,
            received=self.stats.received, store=counts, live=dict(self.live.counts),
            alerts={"raised": dict(c.raised), "cleared": dict(c.cleared),
                    "open": len(self.alerts.open_alerts()),
                    "published": self.stats.alerts_published, "bad_input": c.bad},
            position=self.position,
            lag_s=None if self.newest_t is None else round(max(0.0, now - self.newest_t), 3),
            backlog=len(self._pending), published=self.stats.published,
            dropped=self.stats.dropped)  # fmt: skip


def _message(a: Alert, status: Literal["raised", "cleared"], t: float,
             note: str = "") -> AlertMessage:  # fmt: skip
    return AlertMessage(id=a.id, rule=a.rule, seed=a.seed, rule_text=a.rule_text, seat=a.seat,
                        call=a.call, since=a.since, raised=a.t, measured=a.measured,
                        threshold=a.threshold, unit=a.unit, severity=str(a.severity),
                        message=a.message, status=status, t=t, note=note,
                        agent=a.agent)  # fmt: skip


LIVE_DECIMALS = 4  # every fractional figure on kpi/{scope}/{key} (docs/core.md)


def _figures(k: Kpis | None) -> dict[str, Any]:
    if k is None:
        return {}
    return {name: _rounded(v) for name, v in asdict(k).items()}


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, LIVE_DECIMALS)
    if isinstance(v, dict):  # not_ready_s: seconds per reason
        return {key: _rounded(x) for key, x in v.items()}
    return v


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()
