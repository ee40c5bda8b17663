"""Who is signed in at each seat, on the broker: the retained `seat/{seat}/agent` (issue 19,
docs/api.md "Agents at seats").

The account store is the truth (`AccountStore.sign_in`, `sign_out`): a change is stored
first, then published, and the store keeps whether the broker took each seat's latest
change (`published`). Nothing is lost silently when the broker is away:

- after every change, every seat whose latest change the broker has not taken yet is
  published (retained, QoS 1), and marked once the broker acknowledged it;
- on every (re)connect of the API's MQTT client, every seat's latest change is published
  again, as retained, with its own `id` (a subscriber that gets it again sees the same id).

Publishing reads each seat's record from the store under one lock, so a slow republish can
never overwrite a newer change with an older one."""

from __future__ import annotations

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool

from gateway.api.accounts import AccountStore, SeatAgentRecord
from gateway.api.floor import Floor
from gateway.contract.payloads import SeatAgent

log = logging.getLogger(__name__)


def payload(record: SeatAgentRecord) -> SeatAgent:
    """The contract's seat/{seat}/agent of a seat's latest change."""
    return SeatAgent(id=record.change, seat=record.seat, agent=record.agent,
                     name=record.name, t=record.t, by=record.by, cause=record.cause,
                     previous=record.previous)  # fmt: skip


class SeatAgentPublisher:
    def __init__(self, accounts: AccountStore, floor: Floor) -> None:
        self.accounts = accounts
        self.floor = floor
        self._lock = asyncio.Lock()
        self.failures = 0  # publishes the broker did not take (published again later)
        # seats whose latest change the broker has not taken yet (a metric)
        self.pending = len(accounts.seat_agents(unpublished_only=True))
        floor.on_connect(self.publish_all)

    async def publish_pending(self) -> set[str]:
        """Publish every seat whose latest change the broker has not taken; the seats it
        took now."""
        return await self._publish(unpublished_only=True)

    async def publish_all(self) -> None:
        """Every seat's latest change again (after a connect: the broker may have lost its
        retained messages, or missed a change made while it was away)."""
        taken = await self._publish(unpublished_only=False)
        log.info("api: seat/+/agent published again for %d seats", len(taken))

    async def _publish(self, *, unpublished_only: bool) -> set[str]:
        taken: set[str] = set()
        async with self._lock:
            records = await run_in_threadpool(
                lambda: self.accounts.seat_agents(unpublished_only=unpublished_only))
            for record in records:
                try:
                    await self.floor.publish("seat_agent", {"seat": record.seat},
                                             payload(record))  # fmt: skip
                except ConnectionError as exc:
                    # kept unpublished: the next connect publishes it
                    self.failures += 1
                    log.info("api: seat/%s/agent not published now (%s); it will be at "
                             "the next connect", record.seat, exc)  # fmt: skip
                    break
                if not record.published:
                    await run_in_threadpool(self.accounts.mark_published, record.seat,
                                            record.change)  # fmt: skip
                taken.add(record.seat)
            self.pending = len(await run_in_threadpool(
                lambda: self.accounts.seat_agents(unpublished_only=True)))
        return taken
