"""`seatlink pbx --backend sim`: the call distributor on the site's broker.

It hears every seat (state, events, availability, command results), routes calls with
`Acd`, and publishes seat commands and call events. One asyncio task runs the engine and
its timers, whether or not the broker is there: calls keep ringing out and abandoning
during an outage, and what they publish waits in `outgoing` (bounded; what it has to drop
is counted) and goes out in order after the reconnect. A seat command that waited past its
expiry is not sent late (the engine times the offer out itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from gateway import __version__
from gateway.contract.payloads import (
    CallControlCommand,
    CallEvent,
    CampaignHealth,
    CommandError,
    ComplianceDecisionMessage,
    DialCommand,
    PbxCommand,
    PbxCommandResult,
    PbxHealth,
    PbxStatus,
    QueueHealth,
    TransferCommand,
    parse_pbx_command,
)
from gateway.contract.topics import TopicError, Topics
from gateway.edge.drain import bridge, broker_client
from gateway.pbx.acd import Acd, AcdError, SeatCommand
from gateway.pbx.outbound import Denied, Outbound
from gateway.pbx.scenario import ScriptedCall, load_scenario
from gateway.pbx.settings import PbxSettings

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


class PbxService:
    OUTGOING_MAX = 100_000
    LATENCY_KEEP = 200_000

    def __init__(self, settings: PbxSettings, *, clock: Callable[[], float] = time.time,
                 wall: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.topics = Topics(site=settings.site, root=settings.root)
        self.pbx = settings.pbx
        self.clock = clock
        self.rng = random.Random(settings.seed)
        self.acd = Acd(
            pbx=self.pbx,
            queues={name: q.seats for name, q in settings.queues.items()},
            first_call=self._first_call_id(),
            ring_limit=settings.ring_limit, ring_ms=settings.ring_ms,
            transfer_rings=settings.transfer_rings, outbound_rings=settings.outbound_rings,
            offer_grace_s=settings.offer_grace_s,
        )  # fmt: skip
        self.scenario: list[ScriptedCall] = (
            [] if settings.scenario is None
            else load_scenario(settings.scenario, queues=settings.queues)
        )  # fmt: skip
        self.outbound = Outbound(
            pbx=self.pbx, acd=self.acd, compliance=settings.compliance,
            callees=settings.dialer.callees, campaigns=settings.dialer.campaigns,
            store=settings.store, rng=self.rng, publish=self._decision,
            target_drop_rate=settings.dialer.target_drop_rate,
            wall=wall or (lambda: datetime.fromtimestamp(self.clock(), UTC)),
        )  # fmt: skip
        self.stats = PbxStats()
        self.outgoing: deque[_Out] = deque()
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self._wake_out = asyncio.Event()
        self._wake_engine = asyncio.Event()
        self._started = time.monotonic()
        self._client: aiomqtt.Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._online = asyncio.Event()

    def _first_call_id(self) -> int:
        # a restarted PBX must not reuse the ids of calls it published a moment ago: start
        # from the clock (a tenth of a second a step, wrapping within the 8-digit call id)
        return int(self.clock() * 10) % 99_000_000 + 1

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> PbxService:
        self._tasks = [
            asyncio.create_task(self._engine(), name="pbx-engine"),
            asyncio.create_task(bridge(connect=self._connect, on_connect=self._on_connect,
                                       tasks=(self._reader, self._writer),
                                       stats=self.stats),  # type: ignore[arg-type]
                                name="pbx-broker"),
        ]  # fmt: skip
        if self.settings.arrivals.rate_per_min > 0:
            self._tasks.append(asyncio.create_task(self._poisson(), name="pbx-arrivals"))
        if self.scenario:
            self._tasks.append(asyncio.create_task(self._script(), name="pbx-scenario"))
        if self.outbound.runs:
            self._tasks.append(asyncio.create_task(self._dialer(), name="pbx-dialer"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self.outbound.close()
        await self._goodbye()

    async def wait_online(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._online.wait(), timeout)

    async def _goodbye(self) -> None:
        b = self.settings.broker
        with suppress(aiomqtt.MqttError, OSError, TimeoutError):
            async with aiomqtt.Client(b.host, b.port, identifier=f"seatlink-pbx-{self.pbx}-bye",
                                      username=b.username, password=_secret(b),
                                      timeout=3) as c:  # fmt: skip
                await c.publish(self.topics.topic("pbx_status", pbx=self.pbx),
                                self._status("offline").dump(), qos=1, retain=True)

    # --- broker -------------------------------------------------------------------------

    def _status(self, status: str) -> PbxStatus:
        return PbxStatus(pbx=self.pbx, status=status, backend="sim",  # type: ignore[arg-type]
                         version=__version__,
                         t=None if status == "offline" else round(self.clock(), 3))

    def _connect(self) -> aiomqtt.Client:
        b = self.settings.broker
        will = aiomqtt.Will(self.topics.topic("pbx_status", pbx=self.pbx),
                            PbxStatus(pbx=self.pbx, status="offline", backend="sim",
                                      version=__version__).dump(), qos=1, retain=True)
        return broker_client(host=b.host, port=b.port, identifier=f"seatlink-pbx-{self.pbx}",
                             username=b.username, password=_secret(b),
                             keepalive_s=b.keepalive_s, will=will)  # fmt: skip

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        for name in ("seat_state", "seat_event", "seat_availability", "seat_cmd_result"):
            await client.subscribe(self.topics.subscription(name), qos=1)
        await client.subscribe(self.topics.topic("pbx_cmd", pbx=self.pbx), qos=1)
        await client.publish(self.topics.topic("pbx_status", pbx=self.pbx),
                             self._status("online").dump(), qos=1, retain=True)
        self._client = client
        self._online.set()

    async def _reader(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self._inbox.put_nowait((str(message.topic), payload, time.perf_counter()))

    async def _writer(self, client: aiomqtt.Client) -> None:
        try:
            while True:
                while self.outgoing:
                    out = self.outgoing[0]
                    if out.expires is not None and time.monotonic() > out.expires:
                        self.stats.stale_commands += 1
                    else:
                        await client.publish(out.topic, out.payload, qos=1, timeout=float("inf"))
                        self.stats.published += 1
                    self.outgoing.popleft()
                self._wake_out.clear()
                await self._wake_out.wait()
        finally:
            self._client = None
            self._online.clear()

    def _send(self, topic: str, payload: bytes, expires: float | None = None) -> None:
        if len(self.outgoing) >= self.OUTGOING_MAX:
            self.outgoing.popleft()
            self.stats.dropped += 1
        self.outgoing.append(_Out(topic, payload, expires))
        self._wake_out.set()

    # --- the engine ---------------------------------------------------------------------

    async def _engine(self) -> None:
        next_health = time.monotonic()
        while True:
            due = self.acd.next_due()
            now = self.clock()
            timeout = 0.5 if due is None else min(0.5, max(0.0, due - now))
            try:
                topic, payload, arrived = await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                pass
            else:
                self._take(topic, payload, arrived)
                while not self._inbox.empty():
                    self._take(*self._inbox.get_nowait())
            self.acd.tick(self.clock())
            self._flush_effects(None)
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + self.settings.health_interval_s
                self._send(self.topics.topic("pbx_health", pbx=self.pbx), self.health().dump())

    def _take(self, topic: str, payload: bytes, arrived: float) -> None:
        self.stats.received += 1
        try:
            parsed = self.topics.parse(topic)
            body = json.loads(payload)
            if not isinstance(body, dict) or body.get("v") != 1:
                raise ValueError("not a v1 object")
        except (TopicError, ValueError):
            if topic == self.topics.topic("pbx_cmd", pbx=self.pbx):
                self._command(payload)  # answers with `invalid`
            else:
                self.stats.ignored += 1
            return
        name = parsed.spec.name
        seat = parsed.ids.get("seat", "")
        now = self.clock()
        try:
            if name == "seat_state":
                self.acd.seat_state(seat, state=str(body["state"]), as_of=float(body["t"]),
                                    since=float(body["since"]))  # fmt: skip
            elif name == "seat_event":
                self._seat_event(seat, body, now)
            elif name == "seat_availability":
                self.acd.seat_online(seat, body["status"] == "online", at=now)
            elif name == "seat_cmd_result":
                cid = body.get("id")
                if isinstance(cid, str) and cid.startswith(self.pbx + "-"):
                    self.acd.command_result(seat, command=cid, status=str(body["status"]),
                                            error=body.get("error"), at=now)  # fmt: skip
            elif name == "pbx_cmd":
                self._command(payload)
            else:
                self.stats.ignored += 1
        except (KeyError, TypeError, ValueError) as exc:
            self.stats.ignored += 1
            log.warning("ignored %s: %s", topic, exc)
        self._flush_effects(arrived)

    def _seat_event(self, seat: str, body: dict[str, Any], now: float) -> None:
        data = body["data"]
        as_of = float(body["t"])
        if body["type"] == "snapshot":
            self.acd.seat_state(seat, state=str(data["state"]), as_of=as_of)
        elif body["type"] == "event":
            event = str(data["event"])
            if event == "state":
                self.acd.seat_state(seat, state=str(data["state"]), as_of=as_of)
            else:
                self.acd.seat_event(seat, event=event, call=data.get("call"), at=now,
                                    a=int(data.get("a", 0)), b=int(data.get("b", 0)),
                                    as_of=as_of)  # fmt: skip

    def _flush_effects(self, arrived: float | None) -> None:
        for problem in self.acd.problems:
            log.warning("%s", problem)
        self.acd.problems.clear()
        for effect in self.acd.take():
            if isinstance(effect, SeatCommand):
                expires = time.monotonic() + float(effect.body.get("expires_in_s", 10))
                self._send(self.topics.seat_cmd(effect.seat), json.dumps(effect.body).encode(),
                           expires)  # fmt: skip
                if arrived is not None and effect.body["command"] == "offer":
                    self._latency(arrived)
            else:
                self._send(self.topics.topic("call_event", call=str(effect.call)), effect.dump())
                self.on_call_event(effect)

    def _latency(self, arrived: float) -> None:
        samples = self.stats.offer_latency_ms
        if len(samples) < self.LATENCY_KEEP:
            samples.append((time.perf_counter() - arrived) * 1000)

    def on_call_event(self, event: CallEvent) -> None:
        """Every call event as it is published: the dialer's ledger counts outcomes."""
        self.outbound.on_call_event(event)

    def _decision(self, message: ComplianceDecisionMessage) -> None:
        self._send(self.topics.topic("compliance_decision", pbx=self.pbx), message.dump())

    # --- call control -------------------------------------------------------------------

    def _command(self, payload: bytes) -> None:
        now = self.clock()
        try:
            cmd = parse_pbx_command(payload)
        except CommandError as exc:
            self._result(exc.id, "invalid", str(exc), now)
            return
        try:
            call = self.control(cmd, now)
        except Denied as exc:
            self._result(cmd.id, "denied", str(exc), now)
        except AcdError as exc:
            self._result(cmd.id, "invalid", str(exc), now)
        else:
            self._result(cmd.id, "done", "", now, call=call)

    def control(self, cmd: PbxCommand, now: float) -> int | None:
        """Carry out a call control request; AcdError (nothing changed) if it cannot be,
        Denied if the compliance gate refused a dial."""
        if isinstance(cmd, TransferCommand):
            self.acd.transfer(cmd.call, kind=cmd.kind, seat=cmd.seat, queue=cmd.queue,
                              note=cmd.note, at=now)  # fmt: skip
            return cmd.call
        if isinstance(cmd, CallControlCommand):
            if cmd.command == "hold":
                self.acd.hold(cmd.call, at=now)
            elif cmd.command == "unhold":
                self.acd.unhold(cmd.call, at=now)
            elif cmd.command == "complete":
                self.acd.complete(cmd.call, at=now)
            else:
                self.acd.hangup(cmd.call, at=now, by="agent")
            return cmd.call
        if isinstance(cmd, DialCommand):
            return self.outbound.manual(cmd, at=now)
        try:
            self.outbound.add_dnc(cmd.number)
        except ValueError as exc:
            raise AcdError(str(exc)) from None
        return None

    def _result(self, cid: str | None, status: str, detail: str, now: float,
                call: int | None = None) -> None:  # fmt: skip
        result = PbxCommandResult(id=cid, pbx=self.pbx, status=status,  # type: ignore[arg-type]
                                  detail=detail, call=call, t=round(now, 3))
        self._send(self.topics.topic("pbx_cmd_result", pbx=self.pbx), result.dump())

    # --- traffic ------------------------------------------------------------------------

    def arrive(self, queue: str, *, number: str | None = None, patience_s: float | None = None,
               talk_s: float | None = None, actions: tuple[Any, ...] = ()) -> int:
        t0 = time.perf_counter()
        call = self.acd.arrive(queue=queue, at=self.clock(), number=number,
                               patience_s=patience_s, talk_s=talk_s, actions=actions)
        self._flush_effects(t0)
        return call

    async def _poisson(self) -> None:
        a = self.settings.arrivals
        weights = a.queues or dict.fromkeys(self.settings.queues, 1.0)
        names, shares = list(weights), list(weights.values())
        rate_s = a.rate_per_min / 60
        while True:
            await asyncio.sleep(self.rng.expovariate(rate_s))
            queue = self.rng.choices(names, shares)[0]
            self.arrive(queue, number=f"+8621{self.rng.randrange(10**8):08d}",
                        patience_s=None if a.patience is None else a.patience.draw(self.rng),
                        talk_s=a.talk.draw(self.rng))  # fmt: skip

    async def _dialer(self) -> None:
        while True:
            await asyncio.sleep(self.settings.dialer.tick_s)
            self.outbound.tick(at=self.clock())
            self._flush_effects(None)

    async def _script(self) -> None:
        start = time.monotonic()
        for c in self.scenario:
            await asyncio.sleep(max(0.0, start + c.at_s - time.monotonic()))
            self.arrive(c.queue, number=c.number, patience_s=c.patience_s, talk_s=c.talk_s,
                        actions=c.actions)  # fmt: skip

    # --- health -------------------------------------------------------------------------

    def health(self) -> PbxHealth:
        now = self.clock()
        queues = {}
        for name in self.acd.queues:
            waiting = self.acd.waiting(name)
            queues[name] = QueueHealth(
                waiting=len(waiting),
                oldest_wait_s=round(now - waiting[0].queued_at, 3) if waiting else None,
                ready_seats=len(self.acd.ready_seats(name)))
        return PbxHealth(pbx=self.pbx, backend="sim",
                         uptime_s=round(time.monotonic() - self._started, 3),
                         calls_active=len(self.acd.calls), queues=queues,
                         campaigns=self.campaign_health(), counts=dict(self.acd.counts),
                         lost=self.acd.lost + self.stats.dropped,
                         seats_known=self.acd.seats_known, t=round(now, 3))  # fmt: skip

    def campaign_health(self) -> dict[str, CampaignHealth]:
        return self.outbound.health()


def _secret(b: Any) -> str | None:
    return None if b.password is None else str(b.password.get_secret_value())
