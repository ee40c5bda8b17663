"""Agents at their desks, for the demo and the benches: a robot that acts on seats' inputs
from what it hears on the broker, as people would: virtual seats' board bits
(gateway.virtual_farm) or an emulated micro:bit's input pins (gateway.demo.microbits).

Per seat (named s001, s002, ... in the farm's order, or as given):
- Signed in. The robot waits for an agent to be signed in at the seat (the retained
  seat/{seat}/agent: the API's desk page, or sign_in_all() where there is no API). Then,
  LOGIN_S later, the agent puts the headset on (lifts it off its hanger) and presses READY;
  a login the seat refused (it had not heard of the sign-in yet: a red flash) is pressed
  again after LOGIN_AGAIN_S. Signed out, the agent hangs the headset up and leaves.
- Calls. Offered a call (the PBX's `offer` on seat/{seat}/cmd), the agent presses the
  headset's call button (ANSWER) after ANSWER_S with probability ANSWER_P (once the seat's
  state says ringing), else lets it ring out (RONA: the seat pauses itself Not Ready, reason
  no_answer, and the robot presses READY again after READY_AGAIN_S). With probability
  `ends_p` the agent ends the call itself with ANSWER after END_S of talk; otherwise the
  caller hangs up (the PBX's release) and the seat goes into after-call work by itself.
- Breaks (`breaks` on, the demo): after a call, with probability BREAK_P, the agent hangs
  the headset on its hanger and steps away for BREAK_S: the seat, Ready with the headset
  there, turns Not Ready (away) after its away_s. Back, the agent lifts it and presses
  READY.
- A supervisor's Not Ready (reason supervisor) stands until the supervisor releases it or
  the agent presses READY, which the robot does after SUPERVISOR_S, as an agent would
  (the product owner's decision for the demo, issue 19).
A press the seat missed is made again by the sweep (`counts` counts every action and
retry).
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

from gateway.contract.payloads import SeatAgent
from gateway.contract.topics import Topics
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_READY

__all__ = ["IN_ANSWER", "IN_CALL", "IN_HANGER", "IN_READY", "Agent", "Person", "Robot",
           "people", "seat_names"]

IN_CALL = ("ringing", "talking", "hold")


def seat_names(count: int) -> list[str]:
    return [f"s{i + 1:03d}" for i in range(count)]


# The robots' people: personal names, as the API's accounts ask for (docs/api.md).
_FIRST = ("Li", "Omar", "Grace", "Mateo", "Aiko", "Priya", "Tomas", "Amara", "Jonas", "Mei",
          "Kwame", "Sofia", "Ravi", "Elena", "Yusuf", "Hana", "Diego", "Ingrid", "Chen",
          "Fatima", "Lukas", "Nadia", "Kofi", "Lucia")  # fmt: skip
_LAST = ("Wang", "Haddad", "Mwangi", "Garcia", "Tanaka", "Sharma", "Novak", "Okeke",
         "Berg", "Zhou", "Mensah", "Rossi", "Iyer", "Petrova", "Demir", "Kim", "Morales",
         "Larsen", "Liu", "Rahman", "Weber", "Karimi", "Boateng", "Silva")  # fmt: skip


@dataclass(frozen=True)
class Person:
    """A robot agent's account: its username, full name and agent id."""

    username: str
    name: str
    agent: str


def people(count: int) -> list[Person]:
    """`count` different people (at most 576), the same ones every run: agent ids a1001,
    a1002, ..., usernames first.last."""
    n = len(_FIRST)
    if not 0 <= count <= n * n:
        raise ValueError(f"{count} people: at most {n * n}")
    out = []
    for i in range(count):
        first, last = _FIRST[i % n], _LAST[(i % n + i // n) % n]  # every pair once
        out.append(Person(f"{first}.{last}".lower(), f"{first} {last}", f"a{1001 + i}"))
    return out


@dataclass
class Agent:
    """One desk: the seat's inputs and what the robot knows of its seat."""

    seat: str
    board: Any  # .bits are the seat's inputs: a FarmBoard's, or an emulated board's GPIO
    agent: str | None = None  # the agent signed in at the seat (seat/{seat}/agent)
    name: str | None = None
    login: asyncio.TimerHandle | None = None  # the agent's way to the desk, then READY
    offer: int | None = None  # the call offered and not yet answered, withdrawn or rung out
    offered_at: float = 0.0
    answer: asyncio.TimerHandle | None = None  # the call button, planned
    talking: int | None = None  # the call answered at this seat, while it lasts
    end: asyncio.TimerHandle | None = None  # the agent's own end of that call
    state: str | None = None  # the seat's retained state, as last heard
    reason: str | None = None
    call: int | None = None
    since: float = 0.0  # the state's since (Unix seconds)
    press: asyncio.TimerHandle | None = None  # a READY press planned
    pressed_at: float = -1e9
    away: asyncio.TimerHandle | None = None  # on a break: the way back
    on_break: bool = False


class Robot:
    """Agents acting on the seats' inputs from what they hear on the broker: sign-ins
    (seat/{seat}/agent), seat commands (offer, cancel), call events (release, abandon,
    ring_no_answer) and the seats' states. Runs on the farm process's event loop; the seats'
    scheduler thread reads the inputs."""

    ANSWER_P = 0.97  # the agent answers; else the call rings out
    ANSWER_S = (1.0, 8.0)  # offer heard -> ANSWER pressed
    ANSWER_AGAIN_S = 2.0  # still ringing after a press: pressed again
    LOGIN_S = (0.5, 3.0)  # signed in -> the headset on and READY pressed
    LOGIN_AGAIN_S = 3.0  # still logged out after a login press: pressed again
    READY_AGAIN_S = (5.0, 15.0)  # paused by a RONA -> READY pressed
    SUPERVISOR_S = (20.0, 40.0)  # Not Ready forced by a supervisor -> READY pressed
    END_S = (15.0, 60.0)  # answered -> the agent ends the call (with probability ends_p)
    ENDS_P = 0.3
    BREAK_P = 0.1  # after a call, with breaks on: the headset on its hanger, a break
    BREAK_S = (30.0, 90.0)
    PRESS_S = 0.1  # a button held this long (longer than the firmware's 30 ms debounce)

    def __init__(self, farm: Any = None, *, topics: Topics, port: int, rng: random.Random,
                 host: str = "127.0.0.1", boards: Mapping[str, Any] | None = None,
                 breaks: bool = False, ends_p: float | None = None,
                 say: Any = None) -> None:  # fmt: skip
        """The agents at `farm`'s seats (s001, s002, ... in its order), or at `boards`: seat
        name -> anything with the seat's input `bits` (an emulated micro:bit's through
        gateway.demo.microbits.GpioInputs). breaks: agents take breaks (the demo; a bench
        keeps every agent at work). ends_p: the share of calls the agent ends itself
        (default ENDS_P). say: where to tell what the agents do that a person watching
        would want to know (a supervisor's Not Ready they end); default stderr."""
        self.topics = topics
        self.host = host
        self.port = port
        self.rng = rng
        self.breaks = breaks
        self.ends_p = self.ENDS_P if ends_p is None else ends_p
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        if boards is None:
            boards = {f"s{i + 1:03d}": s.board for i, s in enumerate(farm.seats)}
        self.agents = {seat: Agent(seat, board) for seat, board in boards.items()}
        self.counts = collections.Counter[str]()
        self.sweeping = True  # retries for lost presses
        self.ready = asyncio.Event()
        self.connections = 0
        self.loop = asyncio.get_running_loop()

    # inputs

    def _press(self, a: Agent, why: str, bit: int = IN_READY) -> None:
        a.board.bits |= bit
        if bit == IN_READY:
            a.pressed_at = time.monotonic()
        self.counts[f"press_{why}"] += 1

        def release() -> None:
            a.board.bits &= ~bit

        self.loop.call_later(self.PRESS_S, release)

    def _headset(self, a: Agent, *, on_hanger: bool, why: str) -> None:
        if bool(a.board.bits & IN_HANGER) == on_hanger:
            return
        if on_hanger:
            a.board.bits |= IN_HANGER
            self.counts[f"hang_up_{why}"] += 1
        else:
            a.board.bits &= ~IN_HANGER
            self.counts[f"lift_{why}"] += 1

    def _plan_ready(self, a: Agent, delay: float, reason: str | None, why: str) -> None:
        """READY pressed after `delay`, if the seat is still Not Ready for `reason` then."""
        if a.press is not None:
            a.press.cancel()
        a.press = self.loop.call_later(delay, self._ready, a, reason, why)

    def _ready(self, a: Agent, reason: str | None, why: str) -> None:
        a.press = None
        if a.agent is not None and a.state == "not_ready" and a.reason == reason:
            self._press(a, why)

    def _cancel(self, handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()

    def _forget_offer(self, a: Agent) -> None:
        a.offer = None
        self._cancel(a.answer)
        a.answer = None

    # what the robot hears

    async def run(self) -> None:
        import aiomqtt

        ident = f"seatlink-agents-{uuid.uuid4().hex[:8]}"
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=ident) as client:
                    self.connections += 1
                    for name in ("seat_cmd", "seat_state", "call_event", "seat_agent"):
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
        elif name == "seat_agent":
            self._signed(a, body)

    def _signed(self, a: Agent, body: dict[str, Any]) -> None:
        agent = body.get("agent")
        if agent == a.agent:
            return  # the retained copy again
        a.agent, a.name = agent, body.get("name")
        self._cancel(a.login)
        a.login = None
        if agent is None:
            # signed out: the agent hangs the headset up and leaves the desk
            self.counts["signed_out"] += 1
            self._forget_offer(a)
            for handle in (a.press, a.end, a.away):
                self._cancel(handle)
            a.press = a.end = a.away = None
            a.on_break = False
            self._headset(a, on_hanger=True, why="signed_out")
            return
        self.counts["signed_in"] += 1
        a.login = self.loop.call_later(self.rng.uniform(*self.LOGIN_S), self._login, a)

    def _login(self, a: Agent) -> None:
        """At the desk: the headset on, READY pressed while the seat is logged out, and again
        after LOGIN_AGAIN_S if it still is (its login refused: the red flash)."""
        a.login = None
        if a.agent is None or a.on_break:
            return
        self._headset(a, on_hanger=False, why="login")
        if a.state in (None, "logged_out"):
            self._press(a, "login" if a.pressed_at < 0 else "login_again")
            a.login = self.loop.call_later(self.LOGIN_AGAIN_S, self._login, a)

    def _command(self, a: Agent, body: dict[str, Any]) -> None:
        command, call = body.get("command"), body.get("call")
        if command == "offer" and isinstance(call, int):
            self._forget_offer(a)
            a.offer, a.offered_at = call, time.monotonic()
            self.counts["offers"] += 1
            if a.on_break or a.agent is None:
                self.counts["offers_nobody_there"] += 1
            elif self.rng.random() < self.ANSWER_P:
                a.answer = self.loop.call_later(self.rng.uniform(*self.ANSWER_S),
                                                self._answer, a, call)  # fmt: skip
            else:
                self.counts["offers_let_ring"] += 1
        elif command == "cancel" and a.offer == call:
            self._forget_offer(a)
            self.counts["offers_cancelled"] += 1

    def _call_event(self, a: Agent, body: dict[str, Any]) -> None:
        kind, call = body.get("type"), body.get("call")
        if kind in ("abandon", "ring_no_answer", "release") and a.offer == call:
            self._forget_offer(a)

    def _state(self, a: Agent, body: dict[str, Any]) -> None:
        was = (a.state, a.reason)
        a.state, a.reason, a.call = body["state"], body.get("reason"), body.get("call")
        a.since = float(body.get("since") or time.time())
        if a.state in ("talking", "hold") and a.call is not None and a.talking != a.call:
            self._talking(a, a.call)
        elif a.state not in ("talking", "hold") and a.talking is not None:
            a.talking = None
            self._cancel(a.end)
            a.end = None
            if self.breaks and not a.on_break and self.rng.random() < self.BREAK_P:
                self._take_break(a)
        if a.state == "logged_out" and a.agent is not None and a.login is None and (
                was[0] not in (None, "logged_out")):  # fmt: skip
            # logged out while signed in (a supervisor, a long press): back in, a person's
            # moment later
            a.login = self.loop.call_later(self.rng.uniform(*self.LOGIN_S), self._login, a)
        if a.state != "not_ready" or (a.state, a.reason) == was or a.on_break:
            return
        if a.reason == "no_answer":
            self.counts["rona_pauses"] += 1
            self._plan_ready(a, self.rng.uniform(*self.READY_AGAIN_S), "no_answer",
                             "ready_after_rona")  # fmt: skip
        elif a.reason == "supervisor":
            self.counts["supervisor_pauses"] += 1
            delay = self.rng.uniform(*self.SUPERVISOR_S)
            self.say(f"agents: {a.seat}: a supervisor set Not Ready; {a.name or 'the agent'} "
                     f"presses READY in {delay:.0f} s unless the supervisor releases it first")
            self._plan_ready(a, delay, "supervisor", "ready_after_supervisor")

    def _talking(self, a: Agent, call: int) -> None:
        a.talking = call
        self._cancel(a.end)
        a.end = None
        if self.rng.random() < self.ends_p:
            a.end = self.loop.call_later(self.rng.uniform(*self.END_S), self._end, a, call)

    def _answer(self, a: Agent, call: int) -> None:
        a.answer = None
        if a.offer != call or a.on_break:
            self.counts["answers_skipped"] += 1  # withdrawn meanwhile
            return
        if a.state == "ringing" and a.call in (call, None):
            self._press(a, "answer", IN_ANSWER)
            self.counts["answers"] += 1
            a.answer = self.loop.call_later(self.ANSWER_AGAIN_S, self._answer_again, a, call)
        elif time.monotonic() - a.offered_at < 20:
            # the seat's state (published at most every 0.5 s) does not say ringing yet
            self.counts["answers_deferred"] += 1
            a.answer = self.loop.call_later(0.25, self._answer, a, call)
        else:
            self.counts["answers_given_up"] += 1
            a.offer = None

    def _answer_again(self, a: Agent, call: int) -> None:
        a.answer = None
        if a.offer == call and a.state == "ringing" and a.call == call:
            self._press(a, "answer_again", IN_ANSWER)  # the seat missed the press
            a.answer = self.loop.call_later(self.ANSWER_AGAIN_S, self._answer_again, a, call)
        else:
            a.offer = None

    def _end(self, a: Agent, call: int) -> None:
        a.end = None
        if a.talking != call:
            return
        if a.state == "talking" and a.call == call:
            self._press(a, "end", IN_ANSWER)
            a.end = self.loop.call_later(self.ANSWER_AGAIN_S, self._end, a, call)  # missed?
        elif a.state == "hold":
            a.end = self.loop.call_later(2.0, self._end, a, call)  # once the caller is back

    def _take_break(self, a: Agent) -> None:
        """The headset on its hanger and away for a while: the seat shows the agent away."""
        a.on_break = True
        self._forget_offer(a)
        self._cancel(a.press)
        a.press = None
        self._headset(a, on_hanger=True, why="break")
        self.counts["breaks"] += 1
        a.away = self.loop.call_later(self.rng.uniform(*self.BREAK_S), self._back, a)

    def _back(self, a: Agent) -> None:
        a.away = None
        a.on_break = False
        if a.agent is None:
            return
        self._headset(a, on_hanger=False, why="back")
        if a.state == "not_ready" and a.reason != "supervisor":
            self._press(a, "back")
        elif a.state == "logged_out":
            self._login(a)

    # sign-ins where there is no API (a bench), and the sweep

    async def sign_in_all(self, agents: Mapping[str, tuple[str, str]], *,
                          by: str = "seatlink-bench") -> None:  # fmt: skip
        """Sign each agent in at its seat (seat -> (agent id, full name)) on the retained
        seat/{seat}/agent, as the API does when an agent signs in at the desk's page: for a
        site without the API (a bench). The robots then log in as they hear it."""
        import aiomqtt

        async with aiomqtt.Client(self.host, self.port) as client:
            for seat, (agent, name) in agents.items():
                change = SeatAgent(id=uuid.uuid4().hex, seat=seat, agent=agent, name=name,
                                   t=time.time(), by=by, cause="supervisor")  # fmt: skip
                await client.publish(self.topics.topic("seat_agent", seat=seat),
                                     change.dump(), qos=1, retain=True)  # fmt: skip

    def logged_in(self) -> int:
        """Seats whose agent is signed in and whose state is not logged out."""
        return sum(a.agent is not None and a.state not in (None, "logged_out")
                   for a in self.agents.values())  # fmt: skip

    async def sweep(self) -> None:
        """Every 2 s: a READY press the seat did not take (a lost edge) is made again."""
        while True:
            await asyncio.sleep(2.0)
            if not self.sweeping:
                continue
            now, wall = time.monotonic(), time.time()
            for a in self.agents.values():
                if (a.agent is None or a.on_break or a.press is not None
                        or a.login is not None or now - a.pressed_at < 20):  # fmt: skip
                    continue
                if a.state == "logged_out":
                    self._login(a)
                elif a.state == "not_ready":
                    wait = self.SUPERVISOR_S[1] if a.reason == "supervisor" else 0.0
                    if wall - a.since > 20 + wait:
                        self._headset(a, on_hanger=False, why="sweep")
                        self._press(a, "ready_again")
