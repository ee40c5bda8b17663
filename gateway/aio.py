"""Waiting with a time limit, without losing a cancellation.

On Python 3.11, `asyncio.wait_for(x, timeout)` returns x's result when x completes in the
same loop iteration as a `cancel()` of the waiting task, and the cancellation is lost
(CPython gh-86296, fixed in 3.12). A service loop that waits that way every 250 ms then
goes on after its stop was asked for, and the stop waits for ever: seen once in about
five runs of a core worker's stop. `asyncio.timeout()` does not lose it.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def get_within(queue: asyncio.Queue[T], timeout: float) -> T | None:
    """The next item of `queue`, or None if none came within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            return await queue.get()
    except TimeoutError:
        return None


def raise_if_cancelled() -> None:
    """Raise CancelledError when the current task was asked to stop but what it awaited took
    the cancellation (aiomqtt's publish waits for its acknowledgement with asyncio.wait_for:
    gh-86296 above). A service loop calls this once a turn, so such a stop ends it on its
    next turn instead of never."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
