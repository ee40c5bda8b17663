"""`seatlink pbx --backend sim`: the call distributor on the site's broker.

It hears every seat (state, events, availability, command results), routes calls with
`Acd`, and publishes seat commands and call events. One asyncio task runs the engine and
its timers, whether or not the broker is there: calls keep ringing out and abandoning
during an outage, and what they publish waits in order for the reconnect (BrokerSide,
gateway/pbx/broker_side.py). A seat command that waited past its expiry is not sent late:
the engine times the offer out itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from gateway.aio import get_within
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
    QueueHealth,
    TransferCommand,
    parse_pbx_command,
)
from gateway.contract.topics import TopicError, Topics
from gateway.pbx.acd import Acd, AcdError, SeatCommand
from gateway.pbx.broker_side import BrokerSide, first_failure
from gateway.pbx.outbound import Denied, Outbound
from gateway.pbx.scenario import ScriptedCall, load_scenario
from gateway.pbx.settings import PbxSettings

log = logging.getLogger("seatlink.pbx")

# what the PBX hears of the seats
SEAT_INPUTS = ("seat_state", "seat_event", "seat_availability", "seat_cmd_result")

class PbxService:
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
        self.broker = BrokerSide(
            pbx=self.pbx, topics=self.topics, broker=settings.broker, backend="sim",
            subscriptions=[*(self.topics.subscription(name) for name in SEAT_INPUTS),
                           self.topics.topic("pbx_cmd", pbx=self.pbx)],
            clock=clock)  # fmt: skip
        self.stats = self.broker.stats
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    def _first_call_id(self) -> int:
        # a restarted PBX must not reuse the ids of calls it published a moment ago: start
        # from the clock (a tenth of a second a step, wrapping within the 8-digit call id)
        return int(self.clock() * 10) % 99_000_000 + 1

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> PbxService:
        self._tasks = [
            asyncio.create_task(self._engine(), name="pbx-engine"),
            asyncio.create_task(self.broker.run(), name="pbx-broker"),
        ]  # fmt: skip
        if self.settings.arrivals.rate_per_min > 0:
            self._tasks.append(asyncio.create_task(self._poisson(), name="pbx-arrivals"))
        if self.scenario:
            self._tasks.append(asyncio.create_task(self._script(), name="pbx-scenario"))
        if self.outbound.runs:
            self._tasks.append(asyncio.create_task(self._dialer(), name="pbx-dialer"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.broker.closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self.outbound.close()
        await self.broker.goodbye()

    async def stopped(self) -> None:
        """Returns when one of the service's tasks ended with an error (logged): a PBX
        whose engine died must not go on looking alive."""
        await first_failure(self._tasks)

    async def wait_online(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.broker.online.wait(), timeout)

    def _send(self, topic: str, payload: bytes, expires: float | None = None) -> None:
        self.broker.send(topic, payload, expires_in_s=expires)

    # --- the engine ---------------------------------------------------------------------

    async def _engine(self) -> None:
        next_health = time.monotonic()
        while True:
            due = self.acd.next_due()
            now = self.clock()
            timeout = 0.5 if due is None else min(0.5, max(0.0, due - now))
            item = await get_within(self.broker.inbox, timeout)
            if item is not None:
                topic, payload, arrived = item
                self._take(topic, payload, arrived)
                while not self.broker.inbox.empty():
                    self._take(*self.broker.inbox.get_nowait())
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
                self._command(payload, arrived)  # answers with `invalid`
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
                self._command(payload, arrived)
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
                self._send(self.topics.seat_cmd(effect.seat), json.dumps(effect.body).encode(),
                           float(effect.body.get("expires_in_s", 10)))  # fmt: skip
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

    def _command(self, payload: bytes, arrived: float) -> None:
        now = self.clock()
        try:
            cmd = parse_pbx_command(payload)
        except CommandError as exc:
            self._result(exc.id, "invalid", str(exc), now)
            return
        try:
            call = self.control(cmd, now)
        except Denied as exc:
            status, detail, call = "denied", str(exc), None
        except AcdError as exc:
            status, detail, call = "invalid", str(exc), None
        else:
            status, detail = "done", ""
        # the call events go first: whoever reads the result finds what it changed
        self._flush_effects(arrived)
        self._result(cmd.id, status, detail, now, call=call)

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
                         lost=self.stats.dropped,
                         seats_known=self.acd.seats_known, t=round(now, 3))  # fmt: skip

    def campaign_health(self) -> dict[str, CampaignHealth]:
        return self.outbound.health()
