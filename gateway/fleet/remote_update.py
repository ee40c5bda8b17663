"""Asking the gateways for a remote firmware update and following it to the end
(`seatlink update`; the gateways' side is gateway/edge/firmware_update.py).

Requirements: the seats' gateways are found from their retained availability; a seat no
gateway reports is refused before anything is sent. One job goes to each gateway concerned
(its seats in the order given). The update is followed on the seats' retained progress and
the jobs' retained status, by job id, until every job is over: done, halted or invalid.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from gateway.contract.topics import TopicError, Topics
from gateway.fleet.inventory_tool import ToolError

__all__ = ["FINAL_STAGES", "UpdateRun", "request_update"]

FINAL_STAGES = frozenset({"done", "rolled_back", "failed", "skipped"})
_FINAL_JOBS = frozenset({"done", "halted", "invalid"})
DISCOVER_S = 3.0  # how long to wait for the seats' retained availability


@dataclass
class UpdateRun:
    """What became of an update: each seat's last progress message, each job's status."""

    gateways: dict[str, list[str]] = field(default_factory=dict)  # gateway -> its seats
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # gateway -> last job message
    seats: dict[str, dict[str, Any]] = field(default_factory=dict)  # seat -> last progress

    @property
    def ok(self) -> bool:
        return all(self.seats.get(s, {}).get("stage") == "done" for g in self.gateways.values()
                   for s in g)  # fmt: skip


async def request_update(
    *,
    broker: tuple[str, int],
    topics: Topics,
    seats: Sequence[str],
    bundle: Mapping[str, Any],
    by: str,
    hello_deadline_s: float = 60.0,
    idle_wait_s: float = 300.0,
    username: str | None = None,
    password: str | None = None,
    on_progress: Callable[[dict[str, Any]], None] = lambda body: None,
    timeout: float | None = None,
) -> UpdateRun:
    """Send the jobs and follow them; ToolError when nothing could be sent (broker away, a
    seat no gateway reports). `timeout`: give up following after this long (the jobs go on
    at the gateways)."""
    for seat in seats:
        try:
            topics.topic("seat_firmware", seat=seat)
        except TopicError as exc:
            raise ToolError(str(exc)) from None
    run = UpdateRun()
    identifier = f"seatlink-update-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        async with aiomqtt.Client(broker[0], broker[1], identifier=identifier,
                                  username=username, password=password,
                                  timeout=10) as client:  # fmt: skip
            run.gateways = await _gateways(client, topics, seats)
            job_ids: dict[str, str] = {}
            for gateway in run.gateways:
                await client.subscribe(topics.topic("firmware_job", gateway=gateway), qos=1)
            for seat in seats:
                await client.subscribe(topics.topic("seat_firmware", seat=seat), qos=1)
            for gateway, its_seats in run.gateways.items():
                job = f"{by}-{secrets.token_hex(4)}"[:64]
                job_ids[gateway] = job
                body = {"v": 1, "id": job, "seats": its_seats, "bundle": dict(bundle),
                        "hello_deadline_s": hello_deadline_s, "idle_wait_s": idle_wait_s,
                        "by": by}  # fmt: skip
                await client.publish(topics.topic("firmware_cmd", gateway=gateway),
                                     json.dumps(body), qos=1)  # fmt: skip
            limit = timeout if timeout is not None else _default_timeout(
                len(seats), hello_deadline_s, idle_wait_s)
            try:
                async with asyncio.timeout(limit):
                    await _follow(client, topics, run, job_ids, on_progress)
            except TimeoutError:
                raise ToolError(f"no end after {limit:g} s; the gateways go on with the "
                                "update: follow it on their firmware topics") from None
    except aiomqtt.MqttError as exc:
        raise ToolError(f"cannot reach the broker at {broker[0]}:{broker[1]}: {exc}") from None
    return run


def _default_timeout(seats: int, hello_s: float, idle_s: float) -> float:
    # per seat: reading back and writing (~10 s on a UART), two hello waits (a roll-back),
    # a wait for a call to end
    return seats * (30 + 2 * hello_s + idle_s) + 30


async def _gateways(client: aiomqtt.Client, topics: Topics,
                    seats: Sequence[str]) -> dict[str, list[str]]:  # fmt: skip
    wanted = {topics.topic("seat_availability", seat=s): s for s in seats}
    for topic in wanted:
        await client.subscribe(topic, qos=1)
    found: dict[str, str] = {}
    try:
        async with asyncio.timeout(DISCOVER_S):
            async for message in client.messages:
                seat = wanted.get(message.topic.value)
                if seat is None or not isinstance(message.payload, bytes | bytearray):
                    continue
                try:
                    gateway = json.loads(message.payload)["gateway"]
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(gateway, str):
                    found[seat] = gateway
                if len(found) == len(seats):
                    break
    except TimeoutError:
        pass
    for topic in wanted:
        await client.unsubscribe(topic)
    missing = [s for s in seats if s not in found]
    if missing:
        raise ToolError(f"no gateway reports seat {', '.join(missing)} on this broker and "
                        "site: nothing was sent")  # fmt: skip
    by_gateway: dict[str, list[str]] = {}
    for seat in seats:
        by_gateway.setdefault(found[seat], []).append(seat)
    return by_gateway


async def _follow(client: aiomqtt.Client, topics: Topics, run: UpdateRun,
                  job_ids: Mapping[str, str],
                  on_progress: Callable[[dict[str, Any]], None]) -> None:  # fmt: skip
    ours = set(job_ids.values())
    async for message in client.messages:
        if not isinstance(message.payload, bytes | bytearray) or not message.payload:
            continue
        try:
            parsed = topics.parse(message.topic.value)
            body = json.loads(message.payload)
        except (TopicError, ValueError):
            continue
        if not isinstance(body, dict):
            continue
        name = parsed.spec.name
        if name == "seat_firmware" and body.get("job") in ours:
            run.seats[parsed.ids["seat"]] = body
            on_progress(body)
        elif name == "firmware_job" and body.get("job") in ours:
            run.jobs[parsed.ids["gateway"]] = body
            if all(run.jobs.get(g, {}).get("status") in _FINAL_JOBS for g in job_ids):
                return
