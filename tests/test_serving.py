"""A service run by `seatlink pbx` or `seatlink core` ends the process: status 0 on SIGTERM,
1 when the service stopped on its own (a supervisor then restarts it)."""

from __future__ import annotations

import asyncio
import os
import signal
from types import TracebackType

from gateway.commands.edge import serve_until_signal
from gateway.pbx.broker_side import first_failure


class Service:
    def __init__(self, *, dies_after: float | None) -> None:
        self.dies_after = dies_after
        self.exited = False

    async def __aenter__(self) -> Service:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:  # fmt: skip
        self.exited = True

    async def stopped(self) -> None:
        if self.dies_after is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(self.dies_after)


def test_a_service_that_stops_on_its_own_ends_the_process_with_1() -> None:
    service = Service(dies_after=0.05)
    assert asyncio.run(serve_until_signal(service)) == 1
    assert service.exited


def test_sigterm_ends_it_with_0() -> None:
    service = Service(dies_after=None)

    async def main() -> int:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        return await serve_until_signal(service)

    assert asyncio.run(main()) == 0
    assert service.exited


def test_the_pbx_notices_a_task_that_died_not_one_that_finished() -> None:
    async def main() -> str:
        async def finishes() -> None:
            await asyncio.sleep(0.01)

        async def dies() -> None:
            await asyncio.sleep(0.05)
            raise RuntimeError("engine bug")

        async def runs() -> None:
            await asyncio.sleep(10)

        tasks = [asyncio.create_task(finishes(), name="scenario"),
                 asyncio.create_task(dies(), name="pbx-engine"),
                 asyncio.create_task(runs(), name="pbx-broker")]  # fmt: skip
        await asyncio.wait_for(first_failure(tasks), 2)
        done = [t.get_name() for t in tasks if t.done()]
        tasks[2].cancel()
        return ",".join(done)

    assert asyncio.run(main()) == "scenario,pbx-engine"
