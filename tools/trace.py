"""A call centre's day as seat and call event payloads (docs/mqtt.md), from a seed.

For the core's tests and bench: the same seed always gives the same events. Seats log in,
take calls from their queue (longest idle first), let some ring out (RONA: Not Ready
`no_answer`), hold, transfer blind to another queue, do ACW, take Not Ready breaks and log
out; callers abandon when their patience runs out. Not the PBX (gateway/pbx has the real
ACD): a compact model whose events have the contract's shape and the states' order.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

REASONS = ("meal", "meeting", "restroom", "coaching", "support", "training")


@dataclass
class _Agent:
    seat: str
    board: str
    queue: str
    seq: int = 0
    state: str = "logged_out"
    idle_since: float = 0.0
    call: int | None = None


@dataclass
class _Call:
    call: int
    queue: str
    arrived: float
    patience: float
    steps: int = 0
    seat: str | None = None
    tried: set[str] = field(default_factory=set)


@dataclass
class Trace:
    """A generated day: `events` is every payload in time order, as (kind, payload); with
    `encode`, `encoded` is instead, as (kind, seat or call id, JSON bytes): a large site's
    day as dicts would not fit in memory."""

    events: list[tuple[str, dict[str, Any]]]
    seats: list[str]
    queues: list[str]
    start: float
    end: float
    encoded: list[tuple[str, str, bytes]] = field(default_factory=list)

    def seat_events(self) -> list[dict[str, Any]]:
        return [p for k, p in self.events if k == "seat"]

    def call_events(self) -> list[dict[str, Any]]:
        return [p for k, p in self.events if k == "call"]


def generate(*, seats: int = 20, queues: int = 3, start: float, hours: float = 2.0,
             calls_per_hour_per_seat: float = 8.0, seed: int = 1,
             encode: bool = False) -> Trace:  # fmt: skip
    """`seats` agents over `hours` from `start` (Unix seconds), logged in for most of it."""
    return _Sim(seats, queues, start, hours, calls_per_hour_per_seat, seed, encode).run()


class _Sim:
    def __init__(self, seats: int, queues: int, start: float, hours: float, rate: float,
                 seed: int, encode: bool) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.encode = encode
        self.start, self.end = start, start + hours * 3600
        self.queues = [f"q{i + 1}" for i in range(queues)]
        self.agents = {
            f"s{i + 1:04d}": _Agent(f"s{i + 1:04d}", f"B{i + 1:06X}", self.queues[i % queues])
            for i in range(seats)
        }
        self.members = {q: [a for a in self.agents.values() if a.queue == q]
                        for q in self.queues}  # fmt: skip
        self.rate = rate * seats / 3600.0
        self.out: list[tuple[float, int, str, Any]] = []
        self.heap: list[tuple[float, int, str, Any]] = []
        self.n = 0
        self.calls: dict[int, _Call] = {}
        self.waiting: dict[str, list[int]] = {q: [] for q in self.queues}
        self.next_call = 1

    def at(self, t: float, what: str, arg: Any = None) -> None:
        self.n += 1
        heapq.heappush(self.heap, (t, self.n, what, arg))

    def run(self) -> Trace:
        for a in self.agents.values():
            # the board is up and logged out an hour before (the edge reports it): the
            # seat's timeline, and attendance's data, begin there
            self.seat_state(self.start - 3600, a, "logged_out")
            self.at(self.start + self.rng.uniform(0, 600), "login", a.seat)
            self.at(self.end - self.rng.uniform(0, 600), "logout", a.seat)
        t = self.start
        while True:
            t += self.rng.expovariate(self.rate)
            if t >= self.end - 900:
                break
            self.at(t, "arrive")
        while self.heap:
            t, _, what, arg = heapq.heappop(self.heap)
            getattr(self, "_" + what)(t, arg)
            self._route(t)
        self.out.sort(key=lambda o: (o[0], o[1]))
        if self.encode:
            return Trace([], sorted(self.agents), self.queues, self.start, self.end + 3600,
                         [(k, p[0], p[1]) for _, _, k, p in self.out])  # fmt: skip
        return Trace([(k, p) for _, _, k, p in self.out], sorted(self.agents),
                     self.queues, self.start, self.end + 3600)  # fmt: skip

    def emit(self, t: float, kind: str, payload: dict[str, Any]) -> None:
        self.n += 1
        if self.encode:
            ident = payload["seat"] if kind == "seat" else str(payload["call"])
            body = json.dumps(payload, separators=(",", ":")).encode()
            self.out.append((t, self.n, kind, (ident, body)))
        else:
            self.out.append((t, self.n, kind, payload))

    # --- output ---

    def seat_state(self, t: float, a: _Agent, state: str, reason: str | None = None,
                   call: int | None = None) -> None:  # fmt: skip
        a.seq += 1
        a.state = state
        if state == "ready":
            a.idle_since = t
        self.emit(t, "seat", {
            "v": 1, "id": f"{a.board}-1-{a.seq}", "seat": a.seat, "gateway": "gw1",
            "board": a.board, "boot": 1, "seq": a.seq, "t": round(t, 3), "type": "event",
            "data": {"event": "state", "state": state, "reason": reason, "call": call,
                     "a": 1, "b": 0}})  # fmt: skip

    def call_event(self, t: float, c: _Call, kind: str, **fields: Any) -> None:
        c.steps += 1
        event: dict[str, Any] = {
            "v": 1, "id": f"p1-{c.call}-{c.steps}", "pbx": "p1", "call": c.call,
            "step": c.steps, "type": kind, "t": round(t, 3), "direction": "inbound",
            "queue": c.queue, "seat": None, "number": "***1234", "arrived": round(c.arrived, 3),
            "wait_s": None, "ring_s": None, "rings": None, "hold_s": None, "talk_s": None,
            "by": None, "target": None, "campaign": None, "detail": ""}  # fmt: skip
        event.update(fields)
        self.emit(t, "call", event)

    # --- agents ---

    def _login(self, t: float, seat: str) -> None:
        self.seat_state(t, self.agents[seat], "ready")
        self.at(t + self.rng.uniform(900, 3600), "pause", seat)

    def _logout(self, t: float, seat: str) -> None:
        a = self.agents[seat]
        if a.state in ("ready", "not_ready"):
            self.seat_state(t, a, "logged_out")
        else:
            self.at(t + 30, "logout", seat)

    def _pause(self, t: float, seat: str) -> None:
        a = self.agents[seat]
        if t > self.end - 900:
            return
        if a.state != "ready":
            self.at(t + 60, "pause", seat)
            return
        self.seat_state(t, a, "not_ready", self.rng.choice(REASONS))
        self.at(t + self.rng.uniform(60, 900), "unpause", seat)
        self.at(t + self.rng.uniform(1800, 5400), "pause", seat)

    def _unpause(self, t: float, seat: str) -> None:
        a = self.agents[seat]
        if a.state == "not_ready":
            self.seat_state(t, a, "ready")

    # --- calls ---

    def _arrive(self, t: float, _: None) -> None:
        c = _Call(self.next_call, self.rng.choice(self.queues), t, self.rng.uniform(10, 120))
        self.next_call += 1
        self.calls[c.call] = c
        self.call_event(t, c, "enter_queue")
        self.waiting[c.queue].append(c.call)
        self.at(t + c.patience, "patience", c.call)

    def _route(self, t: float) -> None:
        for q, waiting in self.waiting.items():
            while waiting:
                c = self.calls[waiting[0]]
                ready = [a for a in self.members[q] if a.state == "ready" and a.seat not in c.tried]
                if not ready:
                    ready = [a for a in self.members[q] if a.state == "ready"]
                if not ready:
                    break
                a = min(ready, key=lambda a: (a.idle_since, a.seat))
                waiting.pop(0)
                c.seat, a.call = a.seat, c.call
                c.tried.add(a.seat)
                self.call_event(t, c, "offer", seat=a.seat, wait_s=round(t - c.arrived, 3))
                self.seat_state(t, a, "ringing", call=c.call)
                if self.rng.random() < 0.05:
                    self.at(t + 15, "rona", c.call)
                else:
                    self.at(t + self.rng.uniform(1, 19), "answer", c.call)

    def _patience(self, t: float, call: int) -> None:
        c = self.calls[call]
        if call in self.waiting[c.queue]:
            self.waiting[c.queue].remove(call)
            self.call_event(t, c, "abandon", wait_s=round(t - c.arrived, 3), by="caller")

    def _rona(self, t: float, call: int) -> None:
        c = self.calls[call]
        a = self.agents[c.seat or ""]
        self.call_event(t, c, "ring_no_answer", seat=a.seat, ring_s=15.0, rings=3,
                        detail="rang out")  # fmt: skip
        self.seat_state(t, a, "not_ready", "no_answer")
        self.at(t + self.rng.uniform(20, 120), "unpause", a.seat)
        self.waiting[c.queue].insert(0, call)

    def _answer(self, t: float, call: int) -> None:
        c = self.calls[call]
        a = self.agents[c.seat or ""]
        ring_s = self.rng.uniform(0.5, 19)
        self.call_event(t, c, "answer", seat=a.seat, wait_s=round(t - c.arrived, 3),
                        ring_s=round(ring_s, 3), rings=int(ring_s // 5) + 1)  # fmt: skip
        self.seat_state(t, a, "talking", call=call)
        talk = self.rng.uniform(20, 300)
        if self.rng.random() < 0.25:
            hold_at = t + self.rng.uniform(5, talk / 2)
            self.at(hold_at, "hold", (call, self.rng.uniform(5, 45)))
        self.at(t + talk, "release", (call, t))

    def _hold(self, t: float, arg: tuple[int, float]) -> None:
        call, length = arg
        c = self.calls[call]
        a = self.agents[c.seat or ""]
        if a.call != call or a.state != "talking":
            return
        self.call_event(t, c, "hold", seat=a.seat)
        self.seat_state(t, a, "hold", call=call)
        self.at(t + length, "unhold", (call, t))

    def _unhold(self, t: float, arg: tuple[int, float]) -> None:
        call, since = arg
        c = self.calls[call]
        a = self.agents[c.seat or ""]
        if a.call != call or a.state != "hold":
            return
        self.call_event(t, c, "unhold", seat=a.seat, hold_s=round(t - since, 3))
        self.seat_state(t, a, "talking", call=call)

    def _release(self, t: float, arg: tuple[int, float]) -> None:
        call, answered = arg
        c = self.calls[call]
        a = self.agents[c.seat or ""]
        self.call_event(t, c, "release", seat=a.seat, talk_s=round(t - answered, 3),
                        by=self.rng.choice(("caller", "agent")))  # fmt: skip
        self.seat_state(t, a, "acw", call=call)
        a.call = None
        self.at(t + self.rng.uniform(3, 90), "wrapped", a.seat)

    def _wrapped(self, t: float, seat: str) -> None:
        a = self.agents[seat]
        if a.state == "acw":
            self.seat_state(t, a, "ready")


def shuffled(events: list[tuple[str, dict[str, Any]]], *, within: int, seed: int = 2
             ) -> Iterator[tuple[str, dict[str, Any]]]:  # fmt: skip
    """The events with each moved at most `within` places: out of order, as MQTT with
    several subscribers or redeliveries gives them."""
    rng = random.Random(seed)
    keyed = sorted(range(len(events)), key=lambda i: i + rng.uniform(0, within))
    for i in keyed:
        yield events[i]
