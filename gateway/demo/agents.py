"""Agents at their desks, for the demo and the benches: a robot that acts on seats' inputs
from what it hears on the broker, as people would: virtual seats' board bits
(gateway.virtual_farm) or an emulated micro:bit's input pins (gateway.demo.microbits).

Per seat: offered a call (the PBX's `offer` on seat/{seat}/cmd), it lifts the headset after
LIFT_S with probability ANSWER_P (once the seat's state says ringing), else lets it ring out
(RONA: the seat pauses itself Not Ready, reason no_answer, and the robot presses READY again
after READY_AGAIN_S); when the call is released (the PBX's `released` command or the call's
`release` event for the seat: HANG_UP_S later, so the seat takes the PBX's release first, as
at a desk; the seat leaving talking: at once) it hangs the headset up. A press the seat
missed is made again, a headset left lifted outside a call is hung up (`counts` counts every
action and retry). Seats are named s001, s002, ... in the farm's order, or as given.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.contract.topics import Topics

__all__ = ["IN_CALL", "IN_HOOK", "IN_READY", "Agent", "Robot", "seat_names"]

IN_HOOK, IN_READY = 1, 2  # firmware/agent.py's input bits
IN_CALL = ("ringing", "talking", "hold")


def seat_names(count: int) -> list[str]:
    return [f"s{i + 1:03d}" for i in range(count)]


@dataclass
class Agent:
    """One desk: the seat's inputs and what the robot knows of its seat."""

    seat: str
    board: Any  # .bits are the seat's inputs: a FarmBoard's, or an emulated board's GPIO
    offer: int | None = None  # the call offered and not yet answered, withdrawn or rung out
    offered_at: float = 0.0
    lift: asyncio.TimerHandle | None = None
    lifted: int | None = None  # the call the headset is off its hook for
    lifted_at: float = 0.0
    hang_up: asyncio.TimerHandle | None = None
    state: str | None = None  # the seat's retained state, as last heard
    reason: str | None = None
    call: int | None = None
    since: float = 0.0  # the state's since (Unix seconds)
    press: asyncio.TimerHandle | None = None
    pressed_at: float = -1e9


class Robot:
    """Agents acting on the seats' inputs from what they hear on the broker: seat commands
    (offer, cancel, released), call events (release, abandon, ring_no_answer) and the seats'
    states. Runs on the farm process's event loop; the seats' scheduler thread reads the
    inputs."""

    ANSWER_P = 0.97  # the agent lifts the headset; else the call rings out
    LIFT_S = (1.0, 8.0)  # offer heard -> headset lifted
    # the caller hung up (the PBX's release heard) -> the agent hangs the headset up: a
    # person's delay, so the seat takes the PBX's `released` first, as at a real desk
    HANG_UP_S = (0.5, 2.0)
    READY_AGAIN_S = (5.0, 15.0)  # paused by a RONA -> READY pressed
    PRESS_S = 0.1  # a button held this long (longer than the firmware's 30 ms debounce)
    LOGIN_SPREAD_S = 5.0  # every seat's READY press within this, one after the other

    def __init__(self, farm: Any = None, *, topics: Topics, port: int, rng: random.Random,
                 host: str = "127.0.0.1",
                 boards: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        """The agents at `farm`'s seats (s001, s002, ... in its order), or at `boards`: seat
        name -> anything with the seat's input `bits` (an emulated micro:bit's through
        gateway.demo.microbits.GpioInputs)."""
        self.topics = topics
        self.host = host
        self.port = port
        self.rng = rng
        if boards is None:
            boards = {f"s{i + 1:03d}": s.board for i, s in enumerate(farm.seats)}
        self.agents = {seat: Agent(seat, board) for seat, board in boards.items()}
        self.counts = collections.Counter[str]()
        self.sweeping = False  # after the login: retries for lost presses
        self.ready = asyncio.Event()
        self.connections = 0
        self.loop = asyncio.get_running_loop()

    # inputs

    def _press(self, a: Agent, why: str) -> None:
        a.board.bits |= IN_READY
        a.pressed_at = time.monotonic()
        self.counts[f"press_{why}"] += 1

        def release() -> None:
            a.board.bits &= ~IN_READY

        self.loop.call_later(self.PRESS_S, release)

    def _hang_up(self, a: Agent, why: str) -> None:
        if a.hang_up is not None:
            a.hang_up.cancel()
            a.hang_up = None
        if a.board.bits & IN_HOOK:
            a.board.bits &= ~IN_HOOK
            self.counts[f"hang_up_{why}"] += 1
        a.lifted = None

    def _released(self, a: Agent, call: Any, why: str) -> None:
        """The PBX ended the call at this seat: hang up after a moment."""
        if a.lifted is None or a.lifted != call or a.hang_up is not None:
            return

        def hang_up() -> None:
            a.hang_up = None
            if a.lifted == call:
                self._hang_up(a, why)

        a.hang_up = self.loop.call_later(self.rng.uniform(*self.HANG_UP_S), hang_up)

    def _forget_offer(self, a: Agent) -> None:
        a.offer = None
        if a.lift is not None:
            a.lift.cancel()
            a.lift = None

    # what the robot hears

    async def run(self) -> None:
        import aiomqtt

        ident = f"seatlink-agents-{uuid.uuid4().hex[:8]}"
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=ident) as client:
                    self.connections += 1
                    for name in ("seat_cmd", "seat_state", "call_event"):
                        await client.subscribe(self.topics.subscription(name), qos=1)
                    self.ready.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        try:
                            self.take(m.topic.value, json.loads(payload))
                        except (ValueError, KeyError, TypeError) as exc:
                            self.counts["bad_messages"] += 1
                            print(f"agents: {m.topic.value}: {exc!r}", file=sys.stderr)
            except aiomqtt.MqttError as exc:
                self.ready.clear()
                print(f"agents: connection lost ({exc}); again", file=sys.stderr, flush=True)
                await asyncio.sleep(0.2)

    def take(self, topic: str, body: dict[str, Any]) -> None:
        parsed = self.topics.parse(topic)
        name = parsed.spec.name
        if name == "call_event":
            a = self.agents.get(body.get("seat") or "")
            if a is not None:
                self._call_event(a, body)
            return
        a = self.agents.get(parsed.ids.get("seat", ""))
        if a is None:
            return
        if name == "seat_cmd":
            self._command(a, body)
        elif name == "seat_state":
            self._state(a, body)

    def _command(self, a: Agent, body: dict[str, Any]) -> None:
        command, call = body.get("command"), body.get("call")
        if command == "offer" and isinstance(call, int):
            self._forget_offer(a)
            a.offer, a.offered_at = call, time.monotonic()
            self.counts["offers"] += 1
            if self.rng.random() < self.ANSWER_P:
                a.lift = self.loop.call_later(self.rng.uniform(*self.LIFT_S), self._lift, a, call)
            else:
                self.counts["offers_let_ring"] += 1
        elif command == "cancel" and a.offer == call:
            self._forget_offer(a)
            self.counts["offers_cancelled"] += 1
        elif command == "released":
            self._released(a, call, "released_command")

    def _call_event(self, a: Agent, body: dict[str, Any]) -> None:
        kind, call = body.get("type"), body.get("call")
        if kind == "release":
            self._released(a, call, "release_event")
        elif kind in ("abandon", "ring_no_answer", "release") and a.offer == call:
            self._forget_offer(a)

    def _state(self, a: Agent, body: dict[str, Any]) -> None:
        a.state, a.reason, a.call = body["state"], body.get("reason"), body.get("call")
        a.since = float(body.get("since") or time.time())
        if a.state == "not_ready" and a.reason == "no_answer" and a.press is None:
            self.counts["rona_pauses"] += 1
            a.press = self.loop.call_later(self.rng.uniform(*self.READY_AGAIN_S), self._ready, a)
        if a.lifted is not None and a.state not in IN_CALL and time.monotonic() - a.lifted_at > 1.0:
            self._hang_up(a, "state")

    def _lift(self, a: Agent, call: int) -> None:
        a.lift = None
        if a.offer != call:
            self.counts["lifts_skipped"] += 1  # withdrawn meanwhile
            return
        if a.state == "ringing" and a.call in (call, None):
            a.offer = None
            a.board.bits |= IN_HOOK
            a.lifted, a.lifted_at = call, time.monotonic()
            self.counts["lifts"] += 1
        elif time.monotonic() - a.offered_at < 20:
            # the seat's state (published at most every 0.5 s) does not say ringing yet
            self.counts["lifts_deferred"] += 1
            a.lift = self.loop.call_later(0.25, self._lift, a, call)
        else:
            self.counts["lifts_given_up"] += 1
            a.offer = None

    def _ready(self, a: Agent) -> None:
        a.press = None
        if a.state == "not_ready" and a.reason == "no_answer":
            self._press(a, "ready_after_rona")

    # the login and the sweep

    async def login(self) -> None:
        step = min(0.05, self.LOGIN_SPREAD_S / max(1, len(self.agents)))
        for a in self.agents.values():
            self._press(a, "login")
            await asyncio.sleep(step)
        self.sweeping = True

    async def sweep(self) -> None:
        """Every 2 s: a press the seat did not take (a lost edge) is made again, a headset
        left lifted outside a call is hung up."""
        while True:
            await asyncio.sleep(2.0)
            if not self.sweeping:
                continue
            now, wall = time.monotonic(), time.time()
            for a in self.agents.values():
                if a.press is None and now - a.pressed_at > 20:
                    if a.state == "logged_out":
                        self._press(a, "login_again")
                    elif a.state == "not_ready" and wall - a.since > 20:
                        self._press(a, "ready_again")
                if a.lifted is not None and a.state not in IN_CALL and now - a.lifted_at > 3:
                    self._hang_up(a, "sweep")
