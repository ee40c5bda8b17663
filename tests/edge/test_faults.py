"""Fault tests of the edge gateway under load: every reliable frame the seats wrote reaches a
subscriber (none lost), once per event after de-duplication by id (none twice under another
id), in each seat's order, and the retained state ends equal to the seat's own snapshot.

Seats: virtual seats running the real firmware bundle, pressing HELP (one event a press).
The count of what the seats generated is the farm's trace of first writes; the seats' own
drop counters must stay 0 (a test whose fault overflows a seat's 10-frame queue would test
the seat, not the gateway)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from edge_support import (
    Collector,
    check_delivery,
    command,
    config_file,
    settings,
    site,
    until,
    write_inventory,
)

from gateway.contract.topics import Topics
from gateway.edge.service import EdgeService
from gateway.rig.link_faults import FaultyLink
from gateway.virtual_farm import SeatFarm
from tests.stuck import run

pytestmark = pytest.mark.timeout(240)


async def settle(farm: SeatFarm, sub: Collector, seats: dict[str, str], broker: Any,
                 topics: Topics, *, timeout: float = 60) -> dict[str, int]:  # fmt: skip
    """Stop the load, wait for delivery, then check it and the converged state."""
    farm.load_hz = 0
    await asyncio.sleep(0.5)
    written = farm.first_writes()

    def delivered() -> bool:
        try:
            check_delivery(sub, seats, written)
        except AssertionError:
            return False
        return True

    try:
        await until(delivered, timeout, "every event the seats wrote")
    finally:
        # a seat whose queue filled up dropped its frames itself (and says so): the events
        # lost then name the gateway's recovery as too slow, not a loss in the gateway
        overflowed = {seat: s.dropped for seat, s in zip(seats, farm.seats, strict=True)
                      if s.dropped}  # fmt: skip
        assert not overflowed, f"frames dropped by the seats' full queues: {overflowed}"
        counts = check_delivery(sub, seats, written)  # names what is missing if it failed
    for seat in seats:
        # the heartbeat may not have come through a damaged line yet: one comes every 5 s
        await until(lambda seat=seat: sub.last("seat_health", seat=seat), 15, f"{seat}'s health")
        health = sub.last("seat_health", seat=seat)
        assert health is not None and health["seat_dropped_frames"] == 0, health
    # converged: ask each seat for a snapshot; the retained state must say the same
    marks = {seat: len(sub.events(seat)) for seat in seats}
    for seat in seats:
        await command(broker, topics, seat, {"v": 1, "id": f"sync-{seat}", "command": "sync"})
    for seat in seats:
        def fresh_snapshot(seat: str = seat) -> dict[str, Any] | None:
            return next((e for e in sub.events(seat)[marks[seat]:]
                         if e["type"] == "snapshot"), None)  # fmt: skip

        await until(fresh_snapshot, 10, f"{seat}'s snapshot")
        snap = fresh_snapshot()
        assert snap is not None
        await asyncio.sleep(0.3)
        state = sub.last("seat_state", seat=seat)
        assert state is not None
        for key in ("state", "reason", "call", "help", "off_hook"):
            assert state[key] == snap["data"][key], (seat, key, state, snap)
        assert state["boot"] == snap["boot"]
    counts["pressed"] = sum(farm.pressed)
    return counts


async def running(sub: Collector) -> asyncio.Task[None]:
    task = asyncio.create_task(sub.run())
    await asyncio.wait_for(sub.connected.wait(), 5)
    return task


def scenario(tmp_path: Path, broker: Any, n: int, hz: float,
             body: Callable[[SeatFarm, Collector, dict[str, str], Topics], Awaitable[None]],
             *, links: Callable[[SeatFarm], list[str]] | None = None,
             in_process: bool = True) -> dict[str, int]:  # fmt: skip
    topics = site()
    with SeatFarm(n, load_hz=hz, trace=True) as farm:
        seats = {f"s{i}": s.uid for i, s in enumerate(farm.seats)}
        write_inventory(tmp_path / "inventory.toml", seats)
        urls = links(farm) if links else [s.url for s in farm.seats]
        cfg = settings(tmp_path, broker, topics, urls)

        async def main() -> dict[str, int]:
            sub = Collector(broker, topics)
            task = await running(sub)
            try:
                if in_process:
                    async with EdgeService(cfg):
                        await body(farm, sub, seats, topics)
                        return await settle(farm, sub, seats, broker, topics)
                await body(farm, sub, seats, topics)
                return await settle(farm, sub, seats, broker, topics)
            finally:
                task.cancel()

        return run(main, timeout=200)  # under pytest-timeout's 240 s: task stacks shown


def test_broker_stopped_30_s_under_load(tmp_path: Path, own_broker: Any) -> None:
    async def body(farm: SeatFarm, sub: Collector, seats: dict[str, str], topics: Topics) -> None:
        await until(lambda: all(sub.last("seat_state", seat=s) for s in seats), 15)
        await asyncio.sleep(2)
        own_broker.stop()
        await asyncio.sleep(30)  # the seats keep pressing; the outbox keeps it all
        own_broker.restart()
        await asyncio.sleep(3)

    counts = scenario(tmp_path, own_broker, 6, 4, body)
    assert counts["events"] > 6 * 4 * 30  # the outage's events are among those checked


def test_gateway_sigkilled_under_load_and_restarted(tmp_path: Path, own_broker: Any) -> None:
    procs: list[subprocess.Popen[bytes]] = []

    def start(cfg: Path) -> None:
        procs.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "edge", "-c",
                                       str(cfg)], stderr=subprocess.DEVNULL))  # fmt: skip

    async def body(farm: SeatFarm, sub: Collector, seats: dict[str, str], topics: Topics) -> None:
        cfg = config_file(tmp_path / "edge.toml", settings(
            tmp_path, own_broker, topics, [s.url for s in farm.seats]))  # fmt: skip
        start(cfg)
        await until(lambda: all(sub.last("seat_state", seat=s) for s in seats), 20)
        for _ in range(2):
            await asyncio.sleep(2)
            os.kill(procs[-1].pid, signal.SIGKILL)
            procs[-1].wait(timeout=5)
            start(cfg)
        await asyncio.sleep(3)

    try:
        counts = scenario(tmp_path, own_broker, 6, 2, body, in_process=False)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
    assert counts["events"] > 0


def test_corrupted_bytes_and_unplugged_links(tmp_path: Path, mqtt_broker: Any) -> None:
    proxies: list[FaultyLink] = []

    def links(farm: SeatFarm) -> list[str]:
        for i, seat in enumerate(farm.seats):
            port = int(seat.url.rsplit(":", 1)[1])
            proxies.append(FaultyLink(("127.0.0.1", port), corrupt=0.01, seed=i).start())
        return [p.url for p in proxies]

    async def body(farm: SeatFarm, sub: Collector, seats: dict[str, str], topics: Topics) -> None:
        # corrupted from the first byte: the boards are identified all the same
        await until(lambda: all(sub.last("seat_state", seat=s) for s in seats), 20)
        for _ in range(2):
            await asyncio.sleep(3)
            for p in proxies:
                p.unplug()
            await asyncio.sleep(1)
            for p in proxies:
                p.replug()
        await asyncio.sleep(3)
        for p in proxies:
            p.corrupt = 0.0  # the end state is checked over a clean line

    try:
        # 2 presses/s: a seat's 10-frame queue holds 5 s unacked. At 1% a byte about one frame
        # in four is damaged, so after the 1 s outage the resends take a few rounds (seen:
        # 7 frames queued at the peak on a loaded machine; at 3/s the queue overflowed)
        counts = scenario(tmp_path, mqtt_broker, 4, 2, body, links=links)
    finally:
        for p in proxies:
            p.stop()
    assert sum(sum(p.corrupted.values()) for p in proxies) > 50
    assert counts["events"] > 0


def test_board_reset_mid_stream(tmp_path: Path, mqtt_broker: Any) -> None:
    async def body(farm: SeatFarm, sub: Collector, seats: dict[str, str], topics: Topics) -> None:
        await until(lambda: all(sub.last("seat_state", seat=s) for s in seats), 15)
        await asyncio.sleep(2)
        boots = [farm.reset(0), farm.reset(1)]
        await asyncio.sleep(3)
        for seat, boot in zip(("s0", "s1"), boots, strict=True):
            hellos = [e for e in sub.events(seat) if e["type"] == "hello"]
            assert hellos[-1]["boot"] == boot  # the new boot, bridged under its own ids

    counts = scenario(tmp_path, mqtt_broker, 4, 3, body)
    assert counts["events"] > 0
