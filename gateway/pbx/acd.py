"""The simulated PBX's automatic call distributor, sans I/O.

Design requirements:
- Each call goes to the longest-idle Ready seat of its queue (seed 000 ⑸): idle since the
  seat last became Ready, as the seat itself reported it.
- The seat, not the PBX, enforces the ring limit: it rings `ring_limit` cadences of
  `ring_ms`, then reports ring-no-answer (and may pause itself). The PBX re-queues the call
  at the front and offers it to the next agent, never straight back to a seat that rang out
  while another one is Ready. A seat that never answers either way (unplugged) is timed out
  by the PBX after the ring time plus `offer_grace_s`.
- A transfer to a seat rings `transfer_rings` (5, seed 004) and comes back to the sender
  if unanswered: the sender keeps the caller on hold until the receiver answers.
- Outbound calls ring the callee at most `outbound_rings` (6, seed 003).
- Nothing ends silently: every call ends with an event (release, abandon, no_answer or
  drop), and the bench checks that against every call that arrived.

Inputs are method calls with the time they happen at; outputs collect in `effects` (seat
commands and call events, in order) for the caller to publish. The engine reads no clock,
so tests and the bench drive it with any time they like.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.contract.payloads import CallEvent, PartyName, TransferTarget
from gateway.pbx.calls import Action, Call, Phase, Transfer, rings_in

ALL_SEATS = "*"


class AcdError(ValueError):
    """A request the ACD cannot take (unknown queue, seat or call; wrong moment): nothing
    changed."""


@dataclass(frozen=True, slots=True)
class SeatCommand:
    seat: str
    body: dict[str, Any]


Effect = SeatCommand | CallEvent


@dataclass(slots=True)
class _Seat:
    id: str
    queues: set[str] = field(default_factory=set)
    state: str | None = None  # as the seat last said; None: about to change, wait for it
    ready_since: float = 0.0
    as_of: float = float("-inf")  # gateway time of the newest state taken
    call: int | None = None  # the call the PBX has put on this seat
    online: bool = True

    def routable(self) -> bool:
        return self.state == "ready" and self.call is None and self.online


@dataclass(slots=True)
class _Queue:
    name: str
    members: set[str] | None  # None: every seat
    waiting: deque[int] = field(default_factory=deque)


class Acd:
    ring_limit = 3
    ring_ms = 5000
    transfer_rings = 5  # seed 004
    outbound_rings = 6  # seed 003
    offer_grace_s = 5.0  # beyond the ring time, for a seat that never reports
    command_expiry_s = 10.0

    def __init__(self, *, pbx: str, queues: Mapping[str, Iterable[str] | str],
                 first_call: int = 1, **tunables: Any) -> None:  # fmt: skip
        if not queues:
            raise AcdError("no queues configured")
        for name, value in tunables.items():
            if not hasattr(type(self), name) or name.startswith("_"):
                raise AcdError(f"no ACD setting {name!r}")
            setattr(self, name, value)
        self.pbx = pbx
        self.effects: list[Effect] = []
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []  # what the caller should log (scripts that misfit)
        self._queues = {
            name: _Queue(name, None if members == ALL_SEATS else set(members))
            for name, members in queues.items()
        }
        self._seats: dict[str, _Seat] = {}
        for q in self._queues.values():
            for seat in q.members or ():
                self._seat(seat).queues.add(q.name)
        self._calls: dict[int, Call] = {}
        self._next_call = first_call
        self._cmd = itertools.count(1)
        self._timers: list[tuple[float, int, int, str]] = []  # due, token, call, kind
        self._token = itertools.count(1)
        self._live: dict[int, dict[str, int]] = {}  # call -> kind -> the live timer's token

    # --- what there is -----------------------------------------------------------------

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def call(self, call: int) -> Call:
        found = self._calls.get(call)
        if found is None:
            raise AcdError(f"no call {call} in progress")
        return found

    @property
    def calls(self) -> Mapping[int, Call]:
        return self._calls

    def waiting(self, queue: str) -> list[Call]:
        return [self._calls[c] for c in self._queue(queue).waiting]

    def ready_seats(self, queue: str) -> list[str]:
        return [s.id for s in self._members(self._queue(queue)) if s.routable()]

    def queue_members(self, queue: str) -> list[str]:
        return [s.id for s in self._members(self._queue(queue))]

    def ready_seats_any(self) -> list[str]:
        return [s.id for s in self._seats.values() if s.routable()]

    def seat_call(self, seat: str) -> int | None:
        s = self._seats.get(seat)
        return None if s is None else s.call

    def seat_known(self, seat: str) -> bool:
        return seat in self._seats

    @property
    def seats_known(self) -> int:
        return len(self._seats)

    def take(self) -> list[Effect]:
        out, self.effects = self.effects, []
        return out

    def next_due(self) -> float | None:
        while self._timers:
            due, token, call, kind = self._timers[0]
            if self._live.get(call, {}).get(kind) == token:
                return due
            heapq.heappop(self._timers)
        return None

    # --- inbound ------------------------------------------------------------------------

    def arrive(self, *, queue: str, at: float, number: str | None = None,
               patience_s: float | None = None, talk_s: float | None = None,
               actions: Iterable[Action] = ()) -> int:  # fmt: skip
        """A caller rings the site's number for `queue`; the call's id."""
        q = self._queue(queue)
        if patience_s is not None and patience_s < 0:
            raise AcdError(f"patience_s {patience_s} is negative")
        if talk_s is not None and talk_s < 0:
            raise AcdError(f"talk_s {talk_s} is negative")
        call = Call(id=self._new_call_id(), direction="inbound", queue=q.name, arrived=at,
                    number=number, patience_s=patience_s, talk_s=talk_s,
                    actions=sorted(actions, key=lambda a: a.after_s),
                    ring_limit=self.ring_limit)  # fmt: skip
        self._calls[call.id] = call
        if patience_s is not None:
            self._timer(call, "patience", at + patience_s)
        self._enqueue(call, q, at, front=False)
        self._route(q, at)
        return call.id

    # --- seats --------------------------------------------------------------------------

    def seat_state(self, seat: str, *, state: str, as_of: float, since: float | None = None,
                   call: int | None = None) -> None:  # fmt: skip
        """The seat's state as its gateway published it (retained state or a state-change
        event), `as_of` on the gateway's clock: an older report than one already taken is
        stale and ignored."""
        s = self._seat(seat)
        if as_of < s.as_of:
            return
        s.as_of = as_of
        became_ready = state == "ready" and s.state != "ready"
        s.state = state
        if became_ready:
            s.ready_since = as_of if since is None else since
        if s.routable():
            self._route_seat(s, as_of)

    def seat_online(self, seat: str, online: bool, *, at: float) -> None:
        s = self._seat(seat)
        s.online = online
        if s.routable():
            self._route_seat(s, at)

    def seat_event(self, seat: str, *, event: str, call: int | None, at: float,
                   a: int = 0, b: int = 0, as_of: float | None = None) -> None:  # fmt: skip
        """A seat's event (docs/mqtt.md seat events): answered, ring_no_answer, released.
        `as_of`: when its gateway took it, on the gateway's clock (default `at`)."""
        if as_of is None:
            as_of = at
        s = self._seats.get(seat)
        c = self._calls.get(call) if call else None
        if s is not None and c is None and call and event == "answered":
            # the agent lifted as the caller gave up: the seat talks to nobody, end its call
            self.counts["answered_after_end"] += 1
            self._send(seat, "released", call=call)
            return
        if s is None or c is None:
            return
        if event == "answered":
            self._answered(c, s, at, rung_ms=a)
        elif event == "ring_no_answer":
            if self._ringing_at(c, s):
                if s.as_of <= as_of:  # the seat goes Ready or pauses itself: wait to hear which
                    s.state = None
                self._rang_out(c, s, at, ring_s=a / 1000, rings=round(a / self.ring_ms) or 1,
                               detail="rang out")  # fmt: skip
        elif event == "released" and a != 4:  # 4: our own release command, already told
            self._released_by_seat(c, s, at)

    def command_result(self, seat: str, *, command: str, status: str, at: float,
                       error: str | None = None) -> None:  # fmt: skip
        """An offer the seat refused, or that never reached it, counts as not answered."""
        if status == "done":
            return
        s = self._seats.get(seat)
        if s is None or s.call is None:
            return
        c = self._calls.get(s.call)
        if c is None or c.command != command or not self._ringing_at(c, s):
            return
        s.state = None
        self._send(s.id, "cancel", call=c.id)  # in case it rings after all
        self._rang_out(c, s, at, ring_s=at - c.offered_at, rings=0,
                       detail=f"offer {status}" + (f": {error}" if error else ""))

    # --- call control (agents' clients, the API, scenario scripts) ----------------------

    def hold(self, call: int, *, at: float) -> None:
        c = self.call(call)
        if c.phase is not Phase.TALKING or c.seat is None:
            raise AcdError(f"call {call} is {c.phase.value}: only a call in talk can be held")
        self._hold(c, at)

    def unhold(self, call: int, *, at: float) -> None:
        c = self.call(call)
        if c.phase is not Phase.HOLD or c.seat is None:
            raise AcdError(f"call {call} is {c.phase.value}, not on hold")
        t = c.transfer
        if t is not None and t.receiver is not None:
            # the sender takes the caller back: the consultation or the transfer is off
            r = self._seats[t.receiver]
            if t.answered:
                self._release_leg(c, r, at, by="agent", detail="consultation ended")
            else:
                self._cancel_offer(c, r)
            c.transfer = None
        self._unhold(c, at, detail="")

    def transfer(self, call: int, *, kind: Literal["blind", "consultative"], at: float,
                 seat: str | None = None, queue: str | None = None, note: str = "") -> None:
        c = self.call(call)
        if (seat is None) == (queue is None):
            raise AcdError("transfer: give exactly one of seat and queue")
        if c.phase not in (Phase.TALKING, Phase.HOLD) or c.seat is None:
            raise AcdError(f"call {call} is {c.phase.value}: only an answered call can be "
                           "transferred")  # fmt: skip
        if c.transfer is not None:
            raise AcdError(f"call {call} is already being transferred")
        target = TransferTarget(kind=kind, seat=seat, queue=queue, note=note)
        receiver: _Seat | None = None
        if seat is not None:
            receiver = self._seats.get(seat)
            if receiver is None:
                raise AcdError(f"no seat {seat!r}")
            if receiver.id == c.seat:
                raise AcdError(f"call {call} is already at seat {seat}")
            if not receiver.routable():
                raise AcdError(f"seat {seat} is not Ready ({receiver.state or 'unknown'})")
        elif queue is not None:
            q = self._queue(queue)
            if kind == "consultative":
                receiver = self._longest_idle(q, exclude=(c.seat,))
                if receiver is None:
                    raise AcdError(f"no Ready seat in queue {queue} to consult; transfer "
                                   "blind to queue it instead")  # fmt: skip
        origin = self._seats[c.seat]
        self._emit(c.event(self.pbx, "transfer", at, seat=origin.id, target=target))
        if receiver is None:  # blind to a queue: the sender is done, the caller queues
            assert queue is not None
            if c.phase is Phase.HOLD:
                self._unhold(c, at, detail="transferred", quiet=True)
            self._release_leg(c, origin, at, by="agent", detail="transferred")
            c.queue = queue
            c.tried.clear()
            self._enqueue(c, self._queue(queue), at, front=False)
            self._route(self._queue(queue), at)
            return
        if c.phase is Phase.TALKING:
            self._hold(c, at)
        c.transfer = Transfer(target=target, origin=origin.id, receiver=receiver.id)
        self._offer(c, receiver, at, ring_limit=self.transfer_rings)

    def complete(self, call: int, *, at: float) -> None:
        """The consultation is over: the receiver keeps the caller, the sender is released."""
        c = self.call(call)
        t = c.transfer
        if t is None or t.target.kind != "consultative" or not t.answered:
            raise AcdError(f"call {call} has no answered consultation to complete")
        self._hand_over(c, at, detail="transfer completed")

    def hangup(self, call: int, *, at: float, by: PartyName = "agent") -> None:
        c = self.call(call)
        if c.phase in (Phase.QUEUED, Phase.RINGING, Phase.DIALLING):
            if c.direction == "inbound" and by == "caller":
                self._abandon(c, at)
                return
            raise AcdError(f"call {call} is {c.phase.value}: not answered yet")
        self._end(c, at, by=by)

    # --- outbound -----------------------------------------------------------------------

    def dial(self, *, queue: str, number: str, at: float, seat: str | None = None,
             campaign: str | None = None, ring_limit: int | None = None,
             answer_after_rings: int | None = None, talk_s: float | None = None) -> int:
        """An outbound call the compliance gate allowed. `seat`: a manual dial by that
        agent (or a line the dialer reserved an agent for); otherwise the callee who answers
        is connected to the longest-idle Ready seat of `queue`, or dropped when there is
        none. `answer_after_rings`: when the simulated callee picks up (None: never)."""
        q = self._queue(queue)
        s = None
        if seat is not None:
            s = self._seats.get(seat)
            if s is None:
                raise AcdError(f"no seat {seat!r}")
            if s.call is not None or s.state not in ("ready", "not_ready"):
                raise AcdError(f"seat {seat} cannot dial now ({s.state or 'unknown'}"
                               f"{', on a call' if s.call is not None else ''})")
        limit = self.outbound_rings if ring_limit is None else ring_limit
        if not 1 <= limit <= self.outbound_rings:
            raise AcdError(f"ring_limit {limit}: 1 to {self.outbound_rings} (seed 003)")
        c = Call(id=self._new_call_id(), direction="outbound", queue=q.name, arrived=at,
                 number=number, talk_s=talk_s, campaign=campaign, ring_limit=limit,
                 answer_after_rings=answer_after_rings)  # fmt: skip
        self._calls[c.id] = c
        if s is not None:
            s.call = c.id
            c.seat = s.id
        c.phase = Phase.DIALLING
        c.offered_at = at
        self._emit(c.event(self.pbx, "dial", at, seat=c.seat))
        ring_s = self.ring_ms / 1000
        if answer_after_rings is not None and answer_after_rings <= limit:
            self._timer(c, "callee_answers", at + (answer_after_rings - 0.5) * ring_s)
        else:
            self._timer(c, "no_answer", at + limit * ring_s)
        return c.id

    # --- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Everything due by `now`, in time order."""
        while self._timers and self._timers[0][0] <= now:
            due, token, call, kind = heapq.heappop(self._timers)
            live = self._live.get(call)
            if live is None or live.get(kind) != token:
                continue
            del live[kind]
            c = self._calls.get(call)
            if c is not None:
                self._fire(c, kind, due)

    def _fire(self, c: Call, kind: str, at: float) -> None:
        if kind == "patience":
            if c.phase in (Phase.QUEUED, Phase.RINGING):
                self._abandon(c, at)
        elif kind == "offer":
            s = self._seats.get(c.seat or "")
            if s is not None and self._ringing_at(c, s):
                s.state = None
                self._send(s.id, "cancel", call=c.id)
                self._rang_out(c, s, at, ring_s=at - c.offered_at, rings=0,
                               detail="no report from the seat")  # fmt: skip
        elif kind == "talk":
            if c.phase in (Phase.TALKING, Phase.HOLD):
                self._end(c, at, by="caller")
        elif kind == "callee_answers":
            self._callee_answers(c, at)
        elif kind == "no_answer":
            if c.phase is Phase.DIALLING:
                rung = at - c.offered_at
                self._emit(c.event(self.pbx, "no_answer", at, seat=c.seat, ring_s=rung,
                                   rings=c.ring_limit, detail="hung up after the ring limit"))
                self._finish(c)
        elif kind.startswith("action:"):
            self._scripted(c, c.actions[int(kind[7:])], at)

    def _scripted(self, c: Call, action: Action, at: float) -> None:
        try:
            if action.do == "hold":
                self.hold(c.id, at=at)
            elif action.do == "unhold":
                self.unhold(c.id, at=at)
            elif action.do == "transfer":
                assert action.kind is not None
                self.transfer(c.id, kind=action.kind, seat=action.seat, queue=action.queue,
                              note=action.note, at=at)  # fmt: skip
            elif action.do == "complete":
                self.complete(c.id, at=at)
            else:
                self.hangup(c.id, at=at, by="agent")
        except AcdError as exc:  # a script step that does not fit what happened
            self.counts["script_skipped"] += 1
            self.problems.append(f"call {c.id}: scripted {action.do} skipped: {exc}")

    # --- internals ----------------------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise AcdError(f"no queue {name!r} (known: {', '.join(sorted(self._queues))})")
        return q

    def _seat(self, seat: str) -> _Seat:
        s = self._seats.get(seat)
        if s is None:
            s = self._seats[seat] = _Seat(seat)
            s.queues = {q.name for q in self._queues.values() if q.members is None}
            s.queues |= {q.name for q in self._queues.values() if q.members and seat in q.members}
        return s

    def _members(self, q: _Queue) -> Iterable[_Seat]:
        if q.members is None:
            return self._seats.values()
        return (self._seats[m] for m in q.members)

    def _new_call_id(self) -> int:
        while True:
            cid = self._next_call
            self._next_call = cid + 1 if cid < 99_999_999 else 1
            if cid not in self._calls:
                return cid

    def _timer(self, c: Call, kind: str, due: float) -> None:
        token = next(self._token)
        self._live.setdefault(c.id, {})[kind] = token
        heapq.heappush(self._timers, (due, token, c.id, kind))

    def _cancel_timer(self, c: Call, kind: str) -> None:
        live = self._live.get(c.id)
        if live is not None:
            live.pop(kind, None)

    def _emit(self, event: CallEvent) -> None:
        self.counts[event.type] += 1
        self.effects.append(event)

    def _send(self, seat: str, command: str, **fields: Any) -> str:
        cid = f"{self.pbx}-{next(self._cmd)}"
        self.effects.append(SeatCommand(seat, {"v": 1, "id": cid, "command": command,
                                               "expires_in_s": self.command_expiry_s,
                                               **fields}))  # fmt: skip
        return cid

    def _enqueue(self, c: Call, q: _Queue, at: float, *, front: bool) -> None:
        c.phase = Phase.QUEUED
        c.seat = None
        if front:
            q.waiting.appendleft(c.id)
            return
        c.queued_at = at
        q.waiting.append(c.id)
        self._emit(c.event(self.pbx, "enter_queue", at, queue=q.name))

    def _longest_idle(self, q: _Queue, *, exclude: Iterable[str | None] = (),
                      tried: set[str] | None = None) -> _Seat | None:  # fmt: skip
        best: _Seat | None = None
        fallback: _Seat | None = None
        skip = set(exclude)
        for s in self._members(q):
            if not s.routable() or s.id in skip:
                continue
            if tried and s.id in tried:
                if fallback is None or s.ready_since < fallback.ready_since:
                    fallback = s
            elif best is None or s.ready_since < best.ready_since:
                best = s
        return best or fallback

    def _route(self, q: _Queue, at: float) -> None:
        while q.waiting:
            c = self._calls[q.waiting[0]]
            s = self._longest_idle(q, tried=c.tried)
            if s is None:
                return
            q.waiting.popleft()
            self._offer(c, s, at, ring_limit=self.ring_limit)

    def _route_seat(self, s: _Seat, at: float) -> None:
        # the seat may serve several queues: the call that has waited longest goes first
        while s.routable():
            best: tuple[float, _Queue] | None = None
            for name in s.queues:
                q = self._queues[name]
                if q.waiting:
                    head = self._calls[q.waiting[0]]
                    if best is None or head.queued_at < best[0]:
                        best = (head.queued_at, q)
            if best is None:
                return
            q = best[1]
            c = self._calls[q.waiting[0]]
            other = self._longest_idle(q, tried=c.tried)
            if other is None:
                return
            q.waiting.popleft()
            self._offer(c, other, at, ring_limit=self.ring_limit)

    def _offer(self, c: Call, s: _Seat, at: float, *, ring_limit: int) -> None:
        s.call = c.id
        c.offered_at = at
        if c.transfer is None:
            c.phase = Phase.RINGING
            c.seat = s.id
        c.command = self._send(s.id, "offer", call=c.id, ring_limit=ring_limit,
                               ring_ms=self.ring_ms)  # fmt: skip
        self._emit(c.event(self.pbx, "offer", at, seat=s.id,
                           wait_s=None if c.transfer else at - c.queued_at,
                           target=c.transfer.target if c.transfer else None))
        self._timer(c, "offer", at + ring_limit * self.ring_ms / 1000 + self.offer_grace_s)

    def _ringing_at(self, c: Call, s: _Seat) -> bool:
        if s.call != c.id:
            return False
        t = c.transfer
        if t is not None:
            return t.receiver == s.id and not t.answered
        return c.phase is Phase.RINGING and c.seat == s.id

    def _rang_out(self, c: Call, s: _Seat, at: float, *, ring_s: float, rings: int,
                  detail: str) -> None:  # fmt: skip
        s.call = None
        self._cancel_timer(c, "offer")
        t = c.transfer
        self._emit(c.event(self.pbx, "ring_no_answer", at, seat=s.id, ring_s=ring_s,
                           rings=rings, detail=detail, target=t.target if t else None))
        if t is not None:  # back to the sender, who still holds the caller (seed 004)
            c.transfer = None
            self._emit(c.event(self.pbx, "transfer_return", at, seat=t.origin, target=t.target,
                               detail=f"{s.id} did not answer: {detail}"))
            self._unhold(c, at, detail="transfer returned")
            return
        c.tried.add(s.id)  # offered elsewhere first, to this seat only when no other is Ready
        q = self._queue(c.queue)
        self._enqueue(c, q, at, front=True)
        self._route(q, at)

    def _answered(self, c: Call, s: _Seat, at: float, *, rung_ms: int) -> None:
        if not self._ringing_at(c, s):
            return
        self._cancel_timer(c, "offer")
        # the seat timed its own ringing: no network delay in it
        ring_s = rung_ms / 1000 if rung_ms > 0 else at - c.offered_at
        t = c.transfer
        self._emit(c.event(self.pbx, "answer", at, seat=s.id,
                           wait_s=None if t else at - c.queued_at,
                           ring_s=ring_s, rings=rings_in(ring_s, self.ring_ms),
                           target=t.target if t else None))  # fmt: skip
        s.state = "talking"
        if t is not None:
            t.answered, t.answered_at = True, at
            if t.target.kind == "blind":
                self._hand_over(c, at, detail="transfer answered")
            return
        self._cancel_timer(c, "patience")
        c.phase = Phase.TALKING
        c.seat = s.id
        c.leg_since = at
        if c.answered_at is None:  # the caller's clock runs from the first answer
            c.answered_at = at
            if c.talk_s is not None:
                self._timer(c, "talk", at + c.talk_s)
            for i, action in enumerate(c.actions):
                self._timer(c, f"action:{i}", at + action.after_s)

    def _hand_over(self, c: Call, at: float, *, detail: str) -> None:
        t = c.transfer
        assert t is not None and t.receiver is not None
        origin = self._seats[t.origin]
        self._unhold(c, at, detail=detail, quiet=True)
        self._release_leg(c, origin, at, by="agent", detail="transferred")
        c.transfer = None
        c.seat = t.receiver
        # the receiver's leg began at its answer: a consultation is its handling time too
        c.leg_since = at if t.answered_at is None else t.answered_at
        c.phase = Phase.TALKING

    def _callee_answers(self, c: Call, at: float) -> None:
        if c.phase is not Phase.DIALLING:
            return
        self._cancel_timer(c, "no_answer")
        s = self._seats.get(c.seat) if c.seat else None
        if s is None:
            s = self._longest_idle(self._queue(c.queue))
            if s is None:
                self._emit(c.event(self.pbx, "drop", at, ring_s=at - c.offered_at,
                                   rings=c.answer_after_rings,
                                   detail="the callee answered and no agent was free"))
                self._finish(c)
                return
            s.call = c.id
            c.seat = s.id
        self._send(s.id, "connected", call=c.id)
        s.state = "talking"
        ring_s = at - c.offered_at
        self._emit(c.event(self.pbx, "answer", at, seat=s.id, ring_s=ring_s,
                           rings=rings_in(ring_s, self.ring_ms)))
        c.phase = Phase.TALKING
        c.answered_at = c.leg_since = at
        if c.talk_s is not None:
            self._timer(c, "talk", at + c.talk_s)

    def _hold(self, c: Call, at: float) -> None:
        assert c.seat is not None
        self._send(c.seat, "hold", call=c.id, on=True)
        c.phase = Phase.HOLD
        c.hold_since = at
        self._emit(c.event(self.pbx, "hold", at, seat=c.seat))

    def _unhold(self, c: Call, at: float, *, detail: str, quiet: bool = False) -> None:
        if c.phase is not Phase.HOLD or c.hold_since is None or c.seat is None:
            return
        held = at - c.hold_since
        c.hold_total += held
        c.hold_since = None
        c.phase = Phase.TALKING
        if not quiet:  # the sender's seat is released at once: no point taking it off hold
            self._send(c.seat, "hold", call=c.id, on=False)
        self._emit(c.event(self.pbx, "unhold", at, seat=c.seat, hold_s=held, detail=detail))

    def _release_leg(self, c: Call, s: _Seat, at: float, *, by: PartyName, detail: str) -> None:
        """One seat's part of the call is over: it goes into ACW."""
        self._send(s.id, "released", call=c.id)
        s.call = None
        s.state = None
        since = c.leg_since if s.id == c.seat else self._consulted_since(c, s, at)
        self._emit(c.event(self.pbx, "release", at, seat=s.id, talk_s=at - since,
                           hold_s=c.hold_total if s.id == c.seat else 0.0, by=by,
                           detail=detail))  # fmt: skip

    @staticmethod
    def _consulted_since(c: Call, s: _Seat, at: float) -> float:
        """When the consulted seat `s` answered: its leg (talk_s) is from there; `at` for a
        seat that is not the call's consulted one."""
        t = c.transfer
        if t is not None and t.receiver == s.id and t.answered_at is not None:
            return t.answered_at
        return at

    def _released_by_seat(self, c: Call, s: _Seat, at: float) -> None:
        t = c.transfer
        if t is not None and t.receiver == s.id and t.answered:
            # the consulted agent hung up: the sender still has the caller on hold
            s.call = None
            s.state = None
            self._emit(c.event(self.pbx, "release", at, seat=s.id,
                               talk_s=at - self._consulted_since(c, s, at), hold_s=0.0,
                               by="agent", detail="consultation ended"))  # fmt: skip
            c.transfer = None
            return
        if c.seat != s.id or c.phase not in (Phase.TALKING, Phase.HOLD):
            return
        s.call = None
        s.state = None
        self._close(c, at, by="agent", seat=s.id)

    def _end(self, c: Call, at: float, *, by: PartyName) -> None:
        """The call is over for everyone on it."""
        t = c.transfer
        if t is not None and t.receiver is not None:
            r = self._seats[t.receiver]
            if t.answered:
                self._release_leg(c, r, at, by=by, detail="the caller hung up")
            else:
                self._cancel_offer(c, r)
            c.transfer = None
        if c.seat is not None:
            s = self._seats[c.seat]
            self._send(s.id, "released", call=c.id)
            s.call = None
            s.state = None
        self._close(c, at, by=by, seat=c.seat)

    def _close(self, c: Call, at: float, *, by: PartyName, seat: str | None) -> None:
        if c.hold_since is not None:
            c.hold_total += at - c.hold_since
            c.hold_since = None
        self._emit(c.event(self.pbx, "release", at, seat=seat, talk_s=at - c.leg_since,
                           hold_s=c.hold_total, by=by))  # fmt: skip
        self._finish(c)

    def _cancel_offer(self, c: Call, s: _Seat) -> None:
        self._cancel_timer(c, "offer")
        self._send(s.id, "cancel", call=c.id)
        s.call = None
        s.state = None

    def _abandon(self, c: Call, at: float) -> None:
        if c.phase is Phase.RINGING and c.seat is not None:
            self._cancel_offer(c, self._seats[c.seat])
        elif c.phase is Phase.QUEUED:
            self._queue(c.queue).waiting.remove(c.id)
        self._emit(c.event(self.pbx, "abandon", at, seat=c.seat, wait_s=at - c.queued_at,
                           by="caller"))  # fmt: skip
        self._finish(c)

    def _finish(self, c: Call) -> None:
        c.phase = Phase.ENDED
        self._live.pop(c.id, None)
        if c.seat is not None:
            s = self._seats.get(c.seat)
            if s is not None and s.call == c.id:
                s.call = None
        del self._calls[c.id]
