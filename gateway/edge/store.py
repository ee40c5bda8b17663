"""The outbox from asyncio: one database thread, writes grouped into one commit.

SQLite's synchronous=FULL costs a disk sync per commit, far too slow for a commit per seat
event with hundreds of seats. So every link hands its events to `put_many` and waits; the
database thread commits whatever has gathered meanwhile as one transaction (group commit)
and only then answers every waiting link, which acks its seat. The removal of events the
broker has taken (`delivered_later`) rides along in the same transactions: a crash before
it commits publishes those events once more, which subscribers drop by id.

Writes run on that one thread, in the order made, so the event loop never waits for the
disk. The drainer reads what is committed through a connection of its own (`pending`, on
the event loop: an indexed read that WAL never blocks), so publishing never queues behind
commits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from gateway.edge.outbox import Entry, Outbox, OutboxStats, Record, read_pending

_T = TypeVar("_T")


class AsyncOutbox:
    """`AsyncOutbox(outbox)`; `close()` stops its threads (the Outbox stays open)."""

    CHECKPOINT_S = 0.5
    CHECKPOINT_SAFETY_PAGES = 20_000  # ~80 MB of WAL: commits checkpoint past it themselves

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox")
        self._waiting: list[tuple[list[Record], asyncio.Future[list[bool]]]] = []
        self._deletes: list[int] = []  # delivered, removal not yet committed
        self._deleting: set[int] = set()  # the same, for `pending` to skip
        self._writing = False
        self._reader = sqlite3.connect(f"file:{outbox.path}?mode=ro", uri=True,
                                       check_same_thread=False)  # fmt: skip
        # WAL checkpoints on a thread of their own: in a commit they cost up to ~50 ms
        # under load, and every seat waiting for that commit waits for its ack too
        outbox.checkpoint_every(self.CHECKPOINT_SAFETY_PAGES)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint, daemon=True,
                                              name="outbox-checkpoint")  # fmt: skip
        self._checkpointer.start()
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
        self._kick()
        return await future

    def delivered_later(self, ids: list[int]) -> None:
        """The broker has these: remove them with the next commit (no wait)."""
        self._deletes += ids
        self._deleting.update(ids)
        self._kick()

    def _kick(self) -> None:
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._waiting or self._deletes:
                batch, self._waiting = self._waiting, []
                deletes, self._deletes = self._deletes, []
                flat = [r for records, _ in batch for r in records]
                try:
                    fresh = await self._run(self.outbox.put_many, flat, deletes)
                except Exception as exc:  # every waiter hears it; none acks its seat
                    self._deletes[:0] = deletes
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    await asyncio.sleep(0.1)  # a failing disk is not retried in a spin
                    continue
                self._deleting.difference_update(deletes)
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

    def pending(self, limit: int, *, after: int = 0) -> list[Entry]:
        """Committed events past id `after`, oldest first, without those already delivered;
        they count as being published from now (overflow spares them)."""
        while True:
            rows = read_pending(self._reader, after, limit)
            fresh = [e for e in rows if e.id not in self._deleting]
            if fresh or len(rows) < limit:
                break
            after = rows[-1].id
        if fresh:
            self.outbox.lease(fresh[-1].id)
        return fresh

    async def expire(self) -> int:
        return await self._run(self.outbox.expire)

    async def stats(self) -> OutboxStats:
        return await self._run(self.outbox.stats)

    async def remember_link(self, link: str, *, board: str, boot: int) -> None:
        await self._run(lambda: self.outbox.remember_link(link, board=board, boot=boot))

    async def remember_board_name(self, board: str, name: str) -> None:
        await self._run(lambda: self.outbox.remember_board_name(board, name))

    async def board_name(self, board: str) -> str | None:
        return await self._run(self.outbox.board_name, board)

    async def last_seq(self, board: str, boot: int) -> int | None:
        return await self._run(self.outbox.last_seq, board, boot)

    async def last_ordinal(self, board: str, boot: int) -> int | None:
        return await self._run(self.outbox.last_ordinal, board, boot)

    async def linked_board(self, link: str) -> tuple[str, int] | None:
        return await self._run(self.outbox.linked_board, link)

    def _checkpoint(self) -> None:
        db = sqlite3.connect(self.outbox.path, timeout=1.0)
        try:
            while not self._stop.wait(self.CHECKPOINT_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError:
                    pass  # busy: the next round, or the commits' own past the safety size
        finally:
            db.close()

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(timeout=5)
        self._thread.shutdown(wait=True)
        self._reader.close()
