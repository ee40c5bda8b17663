"""The gateway tells each seat who is signed in there (seat/{seat}/agent -> seat frame N),
and ends the host's commands as the product owner decided (issue 19): a real mosquitto, the
real firmware on virtual seats."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
from edge_support import (
    Collector,
    command,
    edge_and_collector,
    settings,
    site,
    until,
    write_inventory,
)

from gateway.contract.payloads import SeatAgent
from gateway.contract.topics import Topics
from gateway.edge.link import SignIn
from gateway.edge.service import EdgeService
from gateway.virtual_farm import FarmSeat, SeatFarm

IN_READY, IN_ANSWER = 2, 16
WAIT_S = 0.5  # sign_in_wait_s: short, so "nobody" comes soon in these tests


async def sign_in(broker: Any, topics: Topics, seat: str, agent: str | None, *,
                  payload: bytes | None = None) -> None:  # fmt: skip
    """What the API publishes when an agent signs in at the seat (None: signs out)."""
    body = payload if payload is not None else SeatAgent(
        id=uuid.uuid4().hex, seat=seat, agent=agent, name=None if agent is None else agent.title(),
        t=time.time(), by=agent or "sam.supervisor", cause="self" if agent else "supervisor",
    ).dump()  # fmt: skip
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish(topics.topic("seat_agent", seat=seat), body, qos=1, retain=True)


async def press(seat: FarmSeat, bit: int) -> None:
    seat.board.bits |= bit
    await asyncio.sleep(0.1)
    seat.board.bits &= ~bit
    await asyncio.sleep(0.1)


async def log_in(sub: Any, seat: FarmSeat) -> None:
    """READY at the desk, again only when the seat refused it (it had not heard the sign-in
    yet): a second press on a seat that took the first would step it to Not Ready."""
    for _ in range(20):
        refused = len(seat_events(sub, "s0", "login_refused"))
        await press(seat, IN_READY)
        await until(lambda r=refused: state(sub, "s0") == "ready"  # type: ignore[misc]
                    or len(seat_events(sub, "s0", "login_refused")) > r, 10,
                    "ready, or the login refused")  # fmt: skip
        if state(sub, "s0") == "ready":
            return
    raise AssertionError("the seat refused 20 logins with an agent signed in")


def state(sub: Any, seat: str) -> str | None:
    last = sub.last("seat_state", seat=seat)
    return None if last is None else str(last["state"])


def seat_events(sub: Any, seat: str, name: str) -> list[dict[str, Any]]:
    return [e for e in sub.events(seat) if e["type"] == "event" and e["data"]["event"] == name]


def test_a_seat_takes_a_login_only_with_an_agent_signed_in(tmp_path: Path,
                                                           mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    with SeatFarm(1) as farm:
        s0 = farm.seats[0]
        write_inventory(tmp_path / "inventory.toml", {"s0": s0.uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [s0.url], sign_in_wait_s=WAIT_S)

        async def scenario() -> None:
            sub = Collector(mqtt_broker, topics)
            task = asyncio.create_task(sub.run())
            await asyncio.wait_for(sub.connected.wait(), 5)
            async with EdgeService(cfg) as edge:
                await until(lambda: state(sub, "s0") == "logged_out", 10, "s0 up")
                # nobody ever signed in there: once the wait is over the seat is told so
                await until(lambda: edge.links[0].told == SignIn(agent=None), 10, "told nobody")
                await press(s0, IN_READY)
                await until(lambda: seat_events(sub, "s0", "login_refused"), 5, "refused")
                refused = seat_events(sub, "s0", "login_refused")
                assert len(refused) == 1 and refused[0]["data"]["a"] == 1
                assert state(sub, "s0") == "logged_out"
                assert not [e for e in seat_events(sub, "s0", "state")
                            if e["data"]["state"] == "ready"]  # fmt: skip

                await sign_in(mqtt_broker, topics, "s0", "a1042")
                await log_in(sub, s0)

                await sign_in(mqtt_broker, topics, "s0", None)  # signed out by a supervisor
                await until(lambda: state(sub, "s0") == "logged_out", 5, "s0 logged out")
                out = [e for e in seat_events(sub, "s0", "state")
                       if e["data"]["state"] == "logged_out"][-1]  # fmt: skip
                assert out["data"]["a"] == 4  # why: the host
            task.cancel()

        asyncio.run(scenario())


def test_a_restarted_gateway_leaves_a_signed_in_agent_logged_in(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    topics = site()
    with SeatFarm(1) as farm:
        s0 = farm.seats[0]
        write_inventory(tmp_path / "inventory.toml", {"s0": s0.uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [s0.url], sign_in_wait_s=WAIT_S)

        async def scenario() -> None:
            await sign_in(mqtt_broker, topics, "s0", "a1042")
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: state(sub, "s0") == "logged_out", 10, "s0 up")
                await log_in(sub, s0)
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: (sub.last("seat_availability", seat="s0") or {}).get(
                    "status") == "online", 10, "s0 online again")  # fmt: skip
                await asyncio.sleep(3 * WAIT_S)  # past the wait: "nobody" would have gone
                await until(lambda: state(sub, "s0") is not None, 5)
                assert state(sub, "s0") == "ready"
                assert not [e for e in seat_events(sub, "s0", "state")
                            if e["data"]["state"] == "logged_out"]  # fmt: skip

        asyncio.run(scenario())


def test_a_bad_sign_in_message_is_counted_and_changes_nothing(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    topics = site()
    with SeatFarm(1) as farm:
        s0 = farm.seats[0]
        write_inventory(tmp_path / "inventory.toml", {"s0": s0.uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [s0.url], sign_in_wait_s=WAIT_S)

        async def scenario() -> None:
            await sign_in(mqtt_broker, topics, "s0", "a1042")
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                async with EdgeService(cfg.model_copy(update={"gateway": "gw-probe",
                                                              "links": []})) as probe:
                    await until(lambda: probe.sign_in_counts["taken"] >= 1, 5, "taken")
                    await sign_in(mqtt_broker, topics, "s0", None, payload=b"{not json")
                    other = json.dumps({"v": 1, "id": "x1", "seat": "s9", "agent": None,
                                        "name": None, "t": 1.0, "by": "x", "cause": "self"})
                    await sign_in(mqtt_broker, topics, "s0", None, payload=other.encode())
                    await until(lambda: probe.sign_in_counts["invalid"] == 2, 5, "refused")
                    assert probe.sign_in("s0") is not None
                    assert probe.sign_in("s0").agent == "a1042"  # type: ignore[union-attr]
                    health = await probe.health()
                    assert health.sign_ins == {"taken": 1, "invalid": 2}
                await until(lambda: state(sub, "s0") == "logged_out", 10, "s0 up")

        asyncio.run(scenario())


def test_released_after_the_agent_hung_up_is_done_and_connected_to_a_logged_out_seat_is_not(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    topics = site()
    with SeatFarm(1) as farm:
        s0 = farm.seats[0]
        write_inventory(tmp_path / "inventory.toml", {"s0": s0.uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [s0.url], sign_in=False,
                       reject_window_s=0.5)  # fmt: skip

        async def result(sub: Any, cid: str, body: dict[str, Any]) -> dict[str, Any]:
            await command(mqtt_broker, topics, "s0", {"v": 1, "id": cid, **body})
            await until(lambda: sub.result("s0", cid), 5, f"result of {cid}")
            found: dict[str, Any] = sub.result("s0", cid)
            return found

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: state(sub, "s0") == "logged_out", 10, "s0 up")
                r = await result(sub, "k1", {"command": "connected", "call": 31})
                assert (r["status"], r["error"]) == ("rejected", "wrong_state")
                r = await result(sub, "t1", {"command": "set_state", "state": "ready"})
                assert r["status"] == "done"
                r = await result(sub, "o1", {"command": "offer", "call": 32})
                assert r["status"] == "done"
                await until(lambda: state(sub, "s0") == "ringing", 5, "ringing")
                await press(s0, IN_ANSWER)
                await until(lambda: state(sub, "s0") == "talking", 5, "talking")
                await press(s0, IN_ANSWER)  # the agent ends the call...
                await until(lambda: state(sub, "s0") == "acw", 5, "acw")
                r = await result(sub, "l1", {"command": "released", "call": 32})  # ...the PBX too
                assert (r["status"], r["error"]) == ("done", None)
                assert r["detail"].startswith("already released")
                r = await result(sub, "l2", {"command": "released", "call": 99})
                assert (r["status"], r["error"]) == ("rejected", "other_call")
                assert len(seat_events(sub, "s0", "released")) == 1

        asyncio.run(scenario())
