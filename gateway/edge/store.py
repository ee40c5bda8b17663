"""The outbox from asyncio: one database thread, writes grouped into one commit.

SQLite's synchronous=FULL costs a disk sync per commit, far too slow for a commit per seat
event with hundreds of seats. So every link hands its events to `put_many` and waits; the
database thread commits whatever has gathered meanwhile as one transaction (group commit)
and only then answers every waiting link, which acks its seat. All outbox calls run on that
one thread, in the order made, so the event loop never blocks on the disk and the SQLite
connection is never used from two threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable
from typing import TypeVar

from gateway.edge.outbox import Entry, Outbox, OutboxStats, Record

_T = TypeVar("_T")


class AsyncOutbox:
    """`AsyncOutbox(outbox)`; `close()` stops its thread (the Outbox stays open)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox")
        self._waiting: list[tuple[list[Record], asyncio.Future[list[bool]]]] = []
        self._writing = False
        self.commits = 0
        self.stored = 0  # new events committed
        self.repeats = 0  # events refused as already stored or delivered
        self.on_stored: Callable[[], None] | None = None  # e.g. wake the drainer

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def put_many(self, records: list[Record]) -> list[bool]:
        """Store records (see Outbox.put_many); returns once they are on disk."""
        if not records:
            return []
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                flat = [r for records, _ in batch for r in records]
                try:
                    fresh = await self._run(self.outbox.put_many, flat)
                except Exception as exc:  # every waiter hears it; none acks its seat
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.commits += 1
                new = sum(fresh)
                self.stored += new
                self.repeats += len(fresh) - new
                at = 0
                for records, future in batch:
                    if not future.done():
                        future.set_result(fresh[at : at + len(records)])
                    at += len(records)
                if new and self.on_stored is not None:
                    self.on_stored()
        finally:
            self._writing = False

    async def pending(self, limit: int) -> list[Entry]:
        return await self._run(self.outbox.pending, limit)

    async def delivered(self, ids: Iterable[int]) -> None:
        await self._run(self.outbox.delivered, list(ids))

    async def expire(self) -> int:
        return await self._run(self.outbox.expire)

    async def stats(self) -> OutboxStats:
        return await self._run(self.outbox.stats)

    async def remember_link(self, link: str, *, board: str, boot: int) -> None:
        await self._run(lambda: self.outbox.remember_link(link, board=board, boot=boot))

    async def last_seq(self, board: str, boot: int) -> int | None:
        return await self._run(self.outbox.last_seq, board, boot)

    async def linked_board(self, link: str) -> tuple[str, int] | None:
        return await self._run(self.outbox.linked_board, link)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
