"""The demo's desks: virtual seats running the real firmware, with the agent robot at them
(`python -m gateway.demo.desks --seats N --broker-port P --map FILE ...`).

One process of its own, so the seats' loop passes share no interpreter lock with the gateway
or the PBX. Each desk's headset rests on its hanger until its agent is signed in there (the
demo signs every agent in through the API, as the desk's page does); the agent then puts it
on and presses READY. It runs until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.contract.topics import Topics
from gateway.demo.agents import Robot
from gateway.virtual_farm import SeatFarm

FIRST_UID = 0x5EA7D001  # the demo's boards; the inventory binds them to s001, s002, ...


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.demo.desks")
    p.add_argument("--seats", type=int, required=True)
    p.add_argument("--broker-port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--root", default="seatlink")
    p.add_argument("--map", type=Path, required=True, help="where the seats' links go (JSON)")
    p.add_argument("--store", type=Path, required=True, help="the seats' file stores")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    farm = SeatFarm(args.seats, first_uid=FIRST_UID, store_dir=args.store)
    try:
        farm.write_map(args.map)
        farm.start()
        topics = Topics(site=args.site, root=args.root)
        asyncio.run(serve(lambda: Robot(farm, topics=topics, port=args.broker_port,
                                        rng=random.Random(args.seed), breaks=True),
                          "desks"))  # fmt: skip
    finally:
        farm.stop()
    return 0


async def serve(make_robot: Callable[[], Robot], what: str,
                watch: Callable[[], str | None] | None = None) -> int:  # fmt: skip
    """The robot at its seats until SIGTERM or SIGINT (0), or until `watch` (asked every
    second) names a fault (1): it hears the broker, and each agent logs in once signed in
    at its seat."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    robot = make_robot()
    fault: list[str] = []

    async def watching() -> None:
        while watch is not None:
            await asyncio.sleep(1.0)
            if (why := watch()) is not None:
                fault.append(why)
                stop.set()
                return

    tasks = [asyncio.create_task(robot.run(), name="agents"),
             asyncio.create_task(robot.sweep(), name="sweep"),
             asyncio.create_task(watching(), name="watch")]  # fmt: skip
    try:
        await asyncio.wait_for(robot.ready.wait(), 30)
        print(f"{what}: {len(robot.agents)} desks; each agent logs in once signed in at its "
              "seat", file=sys.stderr, flush=True)  # fmt: skip
        tasks.append(asyncio.create_task(logged_in(robot, what), name="logged in"))
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for why in fault:
        print(f"{what}: {why}", file=sys.stderr, flush=True)
    return 1 if fault else 0


async def logged_in(robot: Robot, what: str) -> None:
    """Says once when every desk's agent is logged in."""
    while robot.logged_in() < len(robot.agents):
        await asyncio.sleep(1.0)
    print(f"{what}: {len(robot.agents)} agents logged in", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
