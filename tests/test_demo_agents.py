"""The demo's robot agents (gateway.demo.agents.Robot), from what they hear to what they do
at the desk, on fake boards: they log in once signed in at their seat (the headset on, READY),
answer with the call button, and press READY after a while at a supervisor's Not Ready
(issue 19: the product owner's decision for the demo), unless the supervisor releases it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from gateway.contract.topics import Topics
from gateway.demo.agents import Robot, people
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_READY

TOPICS = Topics(site="t1")


class Desk:
    """A seat's inputs: `bits`, each button's presses counted on their rising edge."""

    def __init__(self) -> None:
        self._bits = IN_HANGER  # an empty desk: the headset on its hanger
        self.presses = {IN_READY: 0, IN_ANSWER: 0}

    @property
    def bits(self) -> int:
        return self._bits

    @bits.setter
    def bits(self, value: int) -> None:
        for bit in self.presses:
            if value & bit and not self._bits & bit:
                self.presses[bit] += 1
        self._bits = value


class QuickRobot(Robot):
    LOGIN_S = (0.05, 0.05)
    LOGIN_AGAIN_S = 0.3
    ANSWER_S = (0.05, 0.05)
    ANSWER_P = 1.0
    SUPERVISOR_S = (0.4, 0.4)


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


def state(robot: Robot, seat: str, st: str, reason: str | None = None,
          call: int | None = None) -> None:  # fmt: skip
    robot.take(TOPICS.topic("seat_state", seat=seat),
               {"state": st, "reason": reason, "call": call, "since": time.time()})


def signed_in(robot: Robot, seat: str, agent: str | None, name: str | None = None) -> None:
    robot.take(TOPICS.topic("seat_agent", seat=seat),
               {"v": 1, "id": "c1", "seat": seat, "agent": agent, "name": name,
                "t": time.time(), "by": "x", "cause": "self"})  # fmt: skip


def test_people_are_personal_and_different() -> None:
    everyone = people(576)
    assert len({p.username for p in everyone}) == len({p.agent for p in everyone}) == 576
    assert everyone[0].username == "li.wang" and everyone[0].agent == "a1001"


def test_an_agent_logs_in_only_once_signed_in_and_answers_with_the_call_button() -> None:
    async def scenario() -> None:
        desk = Desk()
        said: list[str] = []
        robot = QuickRobot(topics=TOPICS, port=1, rng=random.Random(1), boards={"s001": desk},
                           say=said.append)
        state(robot, "s001", "logged_out")
        await asyncio.sleep(0.2)
        assert desk.presses[IN_READY] == 0 and desk.bits & IN_HANGER  # nobody there yet
        signed_in(robot, "s001", "a1001", "Li Wang")
        await until(lambda: desk.presses[IN_READY] == 1)
        assert not desk.bits & IN_HANGER  # the headset on first
        # the seat refused that login (it had not heard of the sign-in): pressed again
        await until(lambda: desk.presses[IN_READY] == 2)
        state(robot, "s001", "ready")
        robot.take(TOPICS.seat_cmd("s001"), {"command": "offer", "call": 7})
        state(robot, "s001", "ringing", call=7)
        await until(lambda: desk.presses[IN_ANSWER] == 1)
        state(robot, "s001", "talking", call=7)
        await asyncio.sleep(QuickRobot.ANSWER_AGAIN_S + 0.2)
        assert desk.presses[IN_ANSWER] == 1  # answered: not pressed again
        assert desk.presses[IN_READY] == 2

    asyncio.run(scenario())


def test_a_supervisors_not_ready_stands_until_the_agent_presses_ready_after_a_while() -> None:
    async def scenario() -> None:
        desk = Desk()
        said: list[str] = []
        robot = QuickRobot(topics=TOPICS, port=1, rng=random.Random(1), boards={"s001": desk},
                           say=said.append)
        signed_in(robot, "s001", "a1001", "Li Wang")
        state(robot, "s001", "ready")
        await asyncio.sleep(0.1)
        ready = desk.presses[IN_READY]
        state(robot, "s001", "not_ready", "supervisor")
        assert said and "Li Wang presses READY in" in said[0]
        await asyncio.sleep(0.2)
        assert desk.presses[IN_READY] == ready  # it stands a while ...
        await until(lambda: desk.presses[IN_READY] == ready + 1)  # ... then READY
        state(robot, "s001", "ready")

        # released by the supervisor first: the agent has nothing to press
        state(robot, "s001", "not_ready", "supervisor")
        await asyncio.sleep(0.1)
        state(robot, "s001", "ready")
        await asyncio.sleep(QuickRobot.SUPERVISOR_S[1] + 0.2)
        assert desk.presses[IN_READY] == ready + 1
        assert robot.counts["supervisor_pauses"] == 2

    asyncio.run(scenario())
