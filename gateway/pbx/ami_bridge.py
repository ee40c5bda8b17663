"""`seatlink pbx --backend ami`: Asterisk app_queue events to call events and seat commands,
seat states to QueuePause (docs/mqtt.md, gateway/contract/payloads.py).

`AmiBridge` is the translation and nothing else (no I/O, a clock it is given): feed it AMI
messages, it returns `CallEvent`s and `SeatCommand`s in the order to publish them; tell it a
seat's state, it returns the QueuePause actions to send. `AmiBackend` runs it over an
`AmiClient`, reconnecting for ever with backoff.

Event and header names are those of the AMI event reference of Asterisk 18 and 20
(docs.asterisk.org, API_Documentation/AMI_Events; app_queue.c's manager event XML), the same
since Asterisk 12, when app_queue's events took these names and Hold/Unhold became events of
their own. Units, as app_queue fills them: AgentRingNoAnswer `RingTime` is milliseconds;
AgentConnect `RingTime` and `HoldTime`, AgentComplete `HoldTime` and `TalkTime`,
QueueCallerAbandon `HoldTime` are whole seconds (the reference calls them "seconds since
1970"; app_queue sends durations). A call is its `Linkedid` (the oldest channel's Uniqueid,
shared by the caller's channel and every member channel the queue dials), else `Uniqueid`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gateway.contract.payloads import (
    CallCommand,
    CallEvent,
    CallEventType,
    HoldCommand,
    OfferCommand,
    PartyName,
    ReasonName,
    StateName,
    TransferTarget,
)
from gateway.contract.topics import check_id
from gateway.pbx.ami_client import AmiClient, AmiConnectionLost, AmiError
from gateway.pbx.ami_protocol import AmiMessage
from gateway.pbx.outputs import PbxOutputs
from gateway.seatlink.codec import NUMBER_MAX

log = logging.getLogger(__name__)


class AmiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 5038
    username: str
    secret: SecretStr
    seats: dict[str, str] = {}  # seat id -> queue member interface ("PJSIP/1001")
    extensions: dict[str, str] = {}  # dialled extension -> seat (transfer targets)
    queues: list[str] = []  # queues to pause the member in; empty: all its queues
    ring_limit: Annotated[int, Field(ge=1, le=10)] = 3  # sent with every offer
    ring_ms: Annotated[int, Field(ge=1000, le=10000)] = 5000
    reconnect_s: tuple[float, float] = (0.5, 10.0)  # first and longest wait between tries
    call_linger_s: Annotated[float, Field(ge=0)] = 300.0  # a call id outlives its end
    call_stale_s: Annotated[float, Field(gt=0)] = 12 * 3600.0  # no event this long: forgotten
    max_calls: Annotated[int, Field(ge=1)] = 10_000

    @model_validator(mode="after")
    def _check(self) -> AmiSettings:
        for seat in [*self.seats, *self.extensions.values()]:
            check_id("seat", seat)
        seen: dict[str, str] = {}
        for seat, interface in self.seats.items():
            other = seen.setdefault(interface.lower(), seat)
            if other != seat:
                raise ValueError(f"seats {other} and {seat} have the same interface "
                                 f"{interface}")  # fmt: skip
        first, longest = self.reconnect_s
        if not 0 < first <= longest:
            raise ValueError("reconnect_s: give (first, longest) with 0 < first <= longest")
        return self


@dataclass(frozen=True)
class AmiAction:
    name: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeatCommand:
    seat: str
    body: dict[str, Any]  # as published on seat/{seat}/cmd


Output = CallEvent | SeatCommand


@dataclass(frozen=True)
class Pause:
    paused: bool
    reason: str | None = None


@dataclass
class BridgeCounts:
    events_in: int = 0
    events_unknown: int = 0  # events not translated (FullyBooted, QueueCallerLeave, ...)
    events_unrelated: int = 0  # hold/transfer of a call no queue event introduced
    malformed: int = 0  # an event without what it needs (no Linkedid nor Uniqueid, ...)
    unknown_interfaces: int = 0  # queue members no seat is mapped to
    unknown_seats: int = 0  # seat states of seats the settings do not map
    calls_evicted: int = 0  # calls dropped unfinished (stale, or over max_calls)


@dataclass(eq=False)
class _Call:
    call: int
    key: str
    arrived: float
    number: str | None
    seen: float
    queue: str | None = None
    step: int = 0
    entered: float | None = None  # the latest enter_queue
    offers: dict[str, float] = field(default_factory=dict)  # interface (lower) -> offered at
    answered: float | None = None
    seat: str | None = None  # the seat that answered
    hold_since: float | None = None
    hold_total: float = 0.0  # holds since the answer
    ended: float | None = None


def mask_number(raw: str | None) -> str | None:
    """`***` and the last four digits (`***` alone for fewer, as the simulator masks);
    None when there are no digits at all (absent, `<unknown>`, `anonymous`)."""
    digits = "".join(c for c in raw or "" if c in "0123456789")
    if not digits:
        return None
    return "***" + digits[-4:] if len(digits) >= 4 else "***"


def _pause_for(state: StateName, reason: ReasonName | None) -> Pause | None:
    if state == "ready":
        return Pause(False)
    if state == "not_ready":
        return Pause(True, reason)
    if state == "acw":
        return Pause(True, "acw")  # app_queue must not offer a call during wrap-up
    if state == "logged_out":
        return Pause(True, "logged_out")
    return None  # ringing, talking, hold: app_queue knows the member is busy


def _number(raw: str | None, *, limit: float = 1e7) -> float | None:
    """A duration or time header; None when absent or not a sane number (no negative, NaN
    or huge value from a misconfigured or buggy PBX reaches a KPI)."""
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < limit else None


class AmiBridge:
    def __init__(self, settings: AmiSettings, *, pbx: str,
                 clock: Callable[[], float] = time.time,
                 first_call: int | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.pbx = check_id("pbx", pbx)
        self.clock = clock
        self.counts = BridgeCounts()
        self._seat_of = {iface.lower(): seat for seat, iface in settings.seats.items()}
        self._calls: collections.OrderedDict[str, _Call] = collections.OrderedDict()  # LRU
        self._ended: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._in_use: set[int] = set()
        # Call ids restart with the process: started from the clock (tenths of a second,
        # ~116 days a cycle) a restarted bridge does not hand out the ids of the calls just
        # before it, which subscribers would drop as repeats (`<pbx>-<call>-<step>`)
        self._next_call = first_call or 1 + int(clock() * 10) % NUMBER_MAX
        self._commands = 0
        self._pause: dict[str, Pause] = {}
        self._handlers: dict[str, Callable[[AmiMessage, float, list[Output]], None]] = {
            "queuecallerjoin": self._join,
            "agentcalled": self._called,
            "agentringnoanswer": self._ring_no_answer,
            "agentconnect": self._connect,
            "hold": self._hold,
            "unhold": self._unhold,
            "blindtransfer": self._transfer,
            "attendedtransfer": self._transfer,
            "queuecallerabandon": self._abandon,
            "agentcomplete": self._complete,
        }

    @property
    def calls_active(self) -> int:
        return len(self._calls) - len(self._ended)

    # --- AMI events -> call events and seat commands ------------------------------------

    def handle(self, message: AmiMessage) -> list[Output]:
        """What one AMI message means; [] for a response, an event we do not translate or
        one about a call we do not know. Never raises on what the PBX sends."""
        if message.kind != "event":
            return []
        self.counts.events_in += 1
        handler = self._handlers.get(message.name.lower())
        if handler is None:
            self.counts.events_unknown += 1
            return []
        now = _number(message.get("Timestamp"), limit=1e11) or self.clock()  # timestampevents
        self._expire(now)
        out: list[Output] = []
        handler(message, now, out)
        return out

    def _join(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._queued_call(m, now)
        if call is None:
            return
        call.entered = now
        call.offers.clear()
        # again in a queue (a transfer to a queue): no seat has it now
        call.answered, call.seat, call.hold_since = None, None, None
        self._emit(out, call, "enter_queue", now, seat=None)

    def _called(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._queued_call(m, now)
        if call is None:
            return
        interface, seat = self._member(m)
        call.offers[interface] = now
        wait_s = None if call.entered is None else now - call.entered
        self._emit(out, call, "offer", now, seat=seat, wait_s=_round(wait_s))
        self._command(out, seat, "offer", call, ring_limit=self.settings.ring_limit,
                      ring_ms=self.settings.ring_ms)  # fmt: skip

    def _ring_no_answer(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._queued_call(m, now)
        if call is None:
            return
        interface, seat = self._member(m)
        offered = call.offers.pop(interface, None)
        ring_ms = _number(m.get("RingTime"))
        ring_s = ring_ms / 1000 if ring_ms is not None else None
        if ring_s is None and offered is not None:
            ring_s = now - offered
        self._emit(out, call, "ring_no_answer", now, seat=seat, ring_s=_round(ring_s),
                   rings=self._rna_rings(ring_s), detail="rang out")  # fmt: skip
        self._command(out, seat, "cancel", call)

    def _connect(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._queued_call(m, now)
        if call is None:
            return
        interface, seat = self._member(m)
        call.offers.pop(interface, None)
        others, call.offers = call.offers, {}
        call.answered, call.seat = now, seat
        call.hold_since, call.hold_total = None, 0.0
        ring_s = _number(m.get("RingTime"))
        self._emit(out, call, "answer", now, seat=seat, wait_s=_number(m.get("HoldTime")),
                   ring_s=ring_s, rings=self._answer_rings(ring_s))  # fmt: skip
        self._command(out, seat, "connected", call)
        # ringall: the members that rang too are hung up by app_queue without an event
        self._cancel_offers(out, call, others)

    def _hold(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._answered_call(m.get("Linkedid") or m.get("Uniqueid"), now)
        if call is None or call.hold_since is not None:  # both legs may say so
            return
        call.hold_since = now
        self._emit(out, call, "hold", now, seat=call.seat)
        self._command(out, call.seat, "hold", call, on=True)

    def _unhold(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._answered_call(m.get("Linkedid") or m.get("Uniqueid"), now)
        if call is None or call.hold_since is None:
            return
        held = max(now - call.hold_since, 0.0)
        call.hold_since = None
        call.hold_total += held
        self._emit(out, call, "unhold", now, seat=call.seat, hold_s=_round(held))
        self._command(out, call.seat, "hold", call, on=False)

    def _transfer(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        blind = m.name.lower() == "blindtransfer"
        call = self._answered_call(m.get("TransfereeLinkedid") or m.get("TransfererLinkedid")
                                   or m.get("OrigTransfererLinkedid")
                                   or m.get("TransfereeUniqueid"), now)  # fmt: skip
        if call is None:
            return
        result = m.get("Result")
        if result is not None and result.lower() != "success":
            return  # a failed transfer leaves the call where it was
        if blind:
            extension = m.get("Extension")
        else:  # the party the agent consulted, then joined the caller to
            extension = m.get("TransferTargetCallerIDNum") or m.get(
                "SecondTransfererConnectedLineNum"
            )
        extension = extension or None
        target = TransferTarget(kind="blind" if blind else "consultative",
                                seat=self.settings.extensions.get(extension or ""))  # fmt: skip
        self._emit(out, call, "transfer", now, seat=call.seat, target=target,
                   detail=f"extension {extension}" if extension else "")  # fmt: skip

    def _abandon(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._queued_call(m, now)
        if call is None:
            return
        others, call.offers = call.offers, {}
        # the seat that was ringing, when exactly one was (ringall rings several)
        ringing = [self._seat_of.get(i) for i in others]
        seat = ringing[0] if len(ringing) == 1 else None
        self._emit(out, call, "abandon", now, seat=seat, wait_s=_number(m.get("HoldTime")),
                   by="caller")  # fmt: skip
        self._cancel_offers(out, call, others)
        self._end(call, now)

    def _complete(self, m: AmiMessage, now: float, out: list[Output]) -> None:
        call = self._queued_call(m, now)
        if call is None:
            return
        _, seat = self._member(m)
        seat = seat or call.seat
        if call.hold_since is not None:
            call.hold_total += max(now - call.hold_since, 0.0)
            call.hold_since = None
        reason = (m.get("Reason") or "").lower()
        by = _ENDED_BY.get(reason)
        self._emit(out, call, "release", now, seat=seat, talk_s=_number(m.get("TalkTime")),
                   hold_s=_round(call.hold_total), by=by,
                   detail="transferred" if reason == "transfer" else "")  # fmt: skip
        self._command(out, seat, "released", call)
        self._end(call, now)

    # --- calls ------------------------------------------------------------------------------

    def _queued_call(self, m: AmiMessage, now: float) -> _Call | None:
        """The call of a queue event, new if need be (also when we connected mid-call)."""
        key = m.get("Linkedid") or m.get("Uniqueid")
        if not key:
            self.counts.malformed += 1
            return None
        call = self._calls.get(key)
        if call is None:
            call = _Call(call=self._allocate(), key=key, arrived=now,
                         number=mask_number(m.get("CallerIDNum")), seen=now)  # fmt: skip
            self._calls[key] = call
            self._in_use.add(call.call)
            self._evict()
        else:
            self._calls.move_to_end(key)
            call.seen = now
            call.number = call.number or mask_number(m.get("CallerIDNum"))
        if call.ended is not None:  # back in a queue within the linger: the same call
            call.ended = None
            self._ended.pop(key, None)
        queue = m.get("Queue")
        if queue:
            call.queue = queue
        return call

    def _answered_call(self, key: str | None, now: float) -> _Call | None:
        call = self._calls.get(key) if key else None
        if call is None or call.ended is not None or call.answered is None:
            self.counts.events_unrelated += 1  # not a queue call, or not answered yet
            return None
        self._calls.move_to_end(call.key)
        call.seen = now
        return call

    def _allocate(self) -> int:
        while True:
            n = self._next_call
            self._next_call = n % NUMBER_MAX + 1
            if n not in self._in_use:
                return n

    def _end(self, call: _Call, now: float) -> None:
        call.ended = now
        self._ended[call.key] = now
        self._ended.move_to_end(call.key)

    def _drop(self, key: str) -> None:
        call = self._calls.pop(key, None)
        self._ended.pop(key, None)
        if call is not None:
            self._in_use.discard(call.call)
            if call.ended is None:
                self.counts.calls_evicted += 1
                log.warning("AMI: forgot unfinished call %s (%s)", call.call, key)

    def _expire(self, now: float) -> None:
        linger, stale = self.settings.call_linger_s, self.settings.call_stale_s
        while self._ended:
            key, ended = next(iter(self._ended.items()))
            if now - ended <= linger:
                break
            self._drop(key)
        while self._calls:
            call = next(iter(self._calls.values()))
            if now - call.seen <= stale:
                break
            self._drop(call.key)

    def _evict(self) -> None:
        while len(self._calls) > self.settings.max_calls:
            self._drop(next(iter(self._ended or self._calls)))

    # --- output -----------------------------------------------------------------------------

    def _member(self, m: AmiMessage) -> tuple[str, str | None]:
        interface = m.get("Interface") or ""
        if not interface:
            self.counts.malformed += 1
            return "", None
        seat = self._seat_of.get(interface.lower())
        if seat is None:
            self.counts.unknown_interfaces += 1
            log.debug("AMI: queue member %s is no seat's", interface)
        return interface.lower(), seat

    # rings counted as the simulator counts them (gateway/pbx/acd.py): the ring an answer
    # fell in (1 during the first cadence), and the cadences a ring-no-answer lasted
    def _answer_rings(self, ring_s: float | None) -> int | None:
        if ring_s is None:
            return None
        return max(1, math.floor(ring_s * 1000 / self.settings.ring_ms) + 1)

    def _rna_rings(self, ring_s: float | None) -> int | None:
        return None if ring_s is None else round(ring_s * 1000 / self.settings.ring_ms) or 1

    def _emit(self, out: list[Output], call: _Call, type: CallEventType, now: float,
              **fields: Any) -> None:  # fmt: skip
        call.step += 1
        out.append(CallEvent(id=f"{self.pbx}-{call.call}-{call.step}", pbx=self.pbx,
                             call=call.call, step=call.step, type=type, t=round(now, 3),
                             direction="inbound", queue=call.queue, number=call.number,
                             arrived=round(call.arrived, 3), **fields))  # fmt: skip

    def _command_id(self) -> str:
        self._commands += 1
        return f"{self.pbx}-{self._commands}"

    def _command(self, out: list[Output], seat: str | None, command: str, call: _Call,
                 **fields: Any) -> None:  # fmt: skip
        """A seat command (none for no seat), built by the contract's own model: a body
        the edge would refuse never leaves here."""
        if seat is None:
            return
        model = _COMMANDS.get(command, CallCommand)
        body = model.model_validate({"v": 1, "id": self._command_id(), "command": command,
                                     "call": call.call, **fields})  # fmt: skip
        out.append(SeatCommand(seat, body.model_dump(mode="json", exclude_none=True)))

    def _cancel_offers(self, out: list[Output], call: _Call, offers: dict[str, float]) -> None:
        for interface in offers:
            self._command(out, self._seat_of.get(interface), "cancel", call)

    # --- seat states -> QueuePause --------------------------------------------------------

    def seat_state(self, seat: str, state: StateName,
                   reason: ReasonName | None = None) -> list[AmiAction]:  # fmt: skip
        """The actions that make app_queue agree with the seat: [] when nothing changes
        (ringing, talking, hold; the same pause as before) and for a seat not mapped."""
        if seat not in self.settings.seats:
            self.counts.unknown_seats += 1
            return []
        want = _pause_for(state, reason)
        if want is None or self._pause.get(seat) == want:
            return []
        self._pause[seat] = want
        return self.pause_actions(seat)

    def pause_actions(self, seat: str) -> list[AmiAction]:
        """The QueuePause actions of the seat's current pause state (again after a
        reconnect: Asterisk may have restarted and forgotten them)."""
        want = self._pause.get(seat)
        interface = self.settings.seats.get(seat)
        if want is None or interface is None:
            return []
        fields = {"Interface": interface, "Paused": "true" if want.paused else "false"}
        if want.paused and want.reason:
            fields["Reason"] = want.reason
        if not self.settings.queues:
            return [AmiAction("QueuePause", fields)]
        return [AmiAction("QueuePause", {**fields, "Queue": q}) for q in self.settings.queues]

    def paused_seats(self) -> list[str]:
        """Seats whose pause state is known (every seat told a state but ringing etc.)."""
        return list(self._pause)


_COMMANDS: dict[str, type[OfferCommand | CallCommand | HoldCommand]] = {
    "offer": OfferCommand,
    "hold": HoldCommand,
}
# AgentComplete Reason: who hung up; "transfer": the agent handed the call on
_ENDED_BY: dict[str, PartyName] = {"caller": "caller", "agent": "agent", "transfer": "agent"}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class BackendCounts:
    connects: int = 0
    actions_sent: int = 0
    actions_failed: int = 0
    output_errors: int = 0  # outputs that raised (logged; the event is lost)
    bridge_errors: int = 0
    malformed_closed: int = 0  # parser counts of connections that are over


class AmiBackend:
    """`await backend.run()` until cancelled: connect, log in, translate, and after any
    drop connect again (backoff `reconnect_s`, doubled each failed try up to its cap)."""

    def __init__(self, settings: AmiSettings, *, pbx: str, outputs: PbxOutputs,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.settings = settings
        self.outputs = outputs
        self.bridge = AmiBridge(settings, pbx=pbx, clock=clock)
        self.counts = BackendCounts()
        self.connected = False
        self.last_error: str | None = None  # the latest, kept once connected again
        self._client: AmiClient | None = None
        self._dirty: dict[str, None] = {}  # seats whose pause state is still to send (ordered)
        self._kick = asyncio.Event()

    async def seat_state(self, seat: str, state: StateName,
                         reason: ReasonName | None = None) -> None:  # fmt: skip
        """Every seat state change; the QueuePause goes at once, or after the reconnect
        (the latest per seat) while AMI is away."""
        if self.bridge.seat_state(seat, state, reason):
            self._dirty.pop(seat, None)
            self._dirty[seat] = None
            self._kick.set()

    def stats(self) -> dict[str, int]:
        b, c = self.bridge.counts, self.counts
        client = self._client
        malformed = c.malformed_closed + b.malformed
        if client is not None:
            malformed += _parser_malformed(client)
        return {
            "connected": self.connected,
            "reconnects": max(c.connects - 1, 0),
            "events_in": b.events_in,
            "events_unknown": b.events_unknown,
            "events_unrelated": b.events_unrelated,
            "malformed": malformed,
            "unknown_interfaces": b.unknown_interfaces,
            "unknown_seats": b.unknown_seats,
            "actions_sent": c.actions_sent,
            "actions_failed": c.actions_failed,
            "output_errors": c.output_errors + c.bridge_errors,
            "calls_active": self.bridge.calls_active,
            "calls_evicted": b.calls_evicted,
        }

    async def run(self) -> None:
        s = self.settings
        first, longest = s.reconnect_s
        delay = first
        while True:
            client = AmiClient(host=s.host, port=s.port, username=s.username,
                               secret=s.secret.get_secret_value())  # fmt: skip
            self._client = client
            try:
                async with client:
                    self.counts.connects += 1
                    self.connected = True
                    delay = first
                    await self._session(client)
            except* (AmiError, OSError) as errors:
                self.last_error = str(errors.exceptions[0])
                log.warning("AMI %s:%s: %s; connecting again in %.2f s", s.host, s.port,
                            self.last_error, delay)  # fmt: skip
            finally:
                self.connected = False
                self.counts.malformed_closed += _parser_malformed(client)
                self._client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    async def _session(self, client: AmiClient) -> None:
        # everything again: Asterisk may have restarted (pauses are in its memory only)
        for seat in self.bridge.paused_seats():
            self._dirty.setdefault(seat, None)
        self._kick.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._events(client))
            group.create_task(self._pauses(client))

    async def _events(self, client: AmiClient) -> None:
        async for message in client.events():
            try:
                outputs = self.bridge.handle(message)
            except Exception:
                self.counts.bridge_errors += 1
                log.exception("AMI: cannot translate %s", message.as_dict())
                continue
            for out in outputs:
                try:
                    if isinstance(out, CallEvent):
                        await self.outputs.call_event(out)
                    else:
                        await self.outputs.seat_command(out.seat, out.body)
                except Exception:
                    self.counts.output_errors += 1
                    log.exception("AMI: cannot publish %r", out)

    async def _pauses(self, client: AmiClient) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._dirty:
                seat = next(iter(self._dirty))
                del self._dirty[seat]  # a change while this one is on its way sends again
                for action in self.bridge.pause_actions(seat):
                    await self._send(client, seat, action)

    async def _send(self, client: AmiClient, seat: str, action: AmiAction) -> None:
        self.counts.actions_sent += 1
        try:
            reply = await client.request(action.name, action.fields)
        except AmiConnectionLost:
            raise  # the reconnect sends every seat's pause state again
        except AmiError as exc:
            self.counts.actions_failed += 1
            log.warning("AMI %s for seat %s: %s", action.name, seat, exc)
            return
        if reply.name.lower() != "success":
            self.counts.actions_failed += 1
            log.warning("AMI %s %s for seat %s refused: %s", action.name, action.fields,
                        seat, reply.get("Message") or reply.name)  # fmt: skip


def _parser_malformed(client: AmiClient) -> int:
    st = client.parser.stats
    return st.malformed_lines + st.junk + st.oversized
