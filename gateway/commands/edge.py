"""Run the edge gateway: every seat link of this gateway bridged to the site's MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from gateway.edge.inventory import InventoryError
from gateway.edge.outbox import OutboxError
from gateway.edge.service import EdgeService
from gateway.edge.settings import ENV_PREFIX, load_settings

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, metavar="FILE",
        help=f"TOML settings file (docs/edge.md); {ENV_PREFIX}* environment variables "
             "override it",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log every link event")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        settings = load_settings(args.config)
        service = EdgeService(settings)
    except (ValidationError, InventoryError, OutboxError, ValueError, OSError) as exc:
        print(f"seatlink edge: {exc}", file=sys.stderr)
        return 2
    try:
        _run(_serve(service))
    except (OutboxError, OSError) as exc:
        print(f"seatlink edge: {exc}", file=sys.stderr)
        return 1
    # a part that died of a bug stopped it (logged): 1, so that a supervisor restarts it
    return 1 if service.failed else 0


def _run(main: Coroutine[Any, Any, T]) -> T:
    # uvloop's event loop costs a fraction of asyncio's own per callback, and the gateway
    # is one loop serving every link and the broker
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def serve_until_signal(service: AbstractAsyncContextManager[Any]) -> int:
    """Run `service` (an async context manager) until SIGINT or SIGTERM: exit status 0.
    A service with `stopped()` that ends on its own (a bug it logged) ends the process
    with 1, so that a supervisor restarts it instead of keeping a silent one. What start-up
    built (settings, the replayed state) is frozen out of the garbage collector's way, so a
    full collection does not land on a routing decision or an event."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service:
        gc.freeze()
        waits = {asyncio.ensure_future(stop.wait())}
        stopped = getattr(service, "stopped", None)
        if stopped is not None:
            waits.add(asyncio.ensure_future(stopped()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        return 0 if stop.is_set() else 1


async def _serve(service: EdgeService) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.stop)
    async with service:
        await service.stopped()
