"""Running an async test flow so that a hang can be read from the log."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run(flow: Callable[[], Awaitable[T]], *, timeout: float = 150) -> T:
    """asyncio.run(flow()), but a flow stuck past `timeout` prints where every task waits
    (pytest-timeout shows only threads) before it fails."""

    async def guarded() -> T:
        task = asyncio.ensure_future(flow())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            for t in asyncio.all_tasks():
                t.print_stack(file=sys.stderr)
            task.cancel()
            raise AssertionError(f"flow stuck for {timeout:g} s (task stacks on stderr)")
        return task.result()

    return asyncio.run(guarded())
