"""gateway.edge.drain: outbox to a real mosquitto, in order, through a broker outage."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.contract.topics import Topics
from gateway.edge.drain import Drainer, bridge
from gateway.edge.outbox import Outbox, Record, event_id
from gateway.edge.store import AsyncOutbox

SEATS = ("s1", "s2", "s3")


async def put(box: AsyncOutbox, seat: str, seq: int) -> None:
    eid = event_id(f"B-{seat}", 1, seq)
    await box.put_many([Record(f"B-{seat}", 1, seq, seat,
                               json.dumps({"v": 1, "id": eid, "seq": seq}).encode())])


class Subscriber:
    """Every seat event of a site, with a persistent session: what the broker queues for
    it while it is away reaches it when it is back."""

    def __init__(self, broker: Any, topics: Topics) -> None:
        self.broker = broker
        self.topics = topics
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.ident = "sub-" + uuid.uuid4().hex[:8]

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.broker.host, self.broker.port,
                                          identifier=self.ident, clean_session=False) as c:
                    await c.subscribe(self.topics.subscription("seat_event"), qos=1)
                    async for message in c.messages:
                        seat = self.topics.parse(str(message.topic)).ids["seat"]
                        assert isinstance(message.payload, bytes)
                        self.received.append((seat, json.loads(message.payload)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def check(self, expected: dict[str, list[int]]) -> int:
        """Every event arrived, in each seat's order after dropping repeats by id; the
        number of repeats."""
        seen: set[str] = set()
        order: dict[str, list[int]] = {}
        for seat, payload in self.received:
            if payload["id"] in seen:
                continue
            seen.add(payload["id"])
            order.setdefault(seat, []).append(payload["seq"])
        assert order == expected
        return len(self.received) - len(seen)


async def until(condition: Any, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_events_reach_a_subscriber_in_each_seats_order(tmp_path: Path, own_broker: Any) -> None:
    topics = Topics(site="t" + uuid.uuid4().hex[:8])

    async def scenario() -> None:
        sub = Subscriber(own_broker, topics)
        sub_task = asyncio.create_task(sub.run())
        await asyncio.sleep(0.3)
        with Outbox(tmp_path / "o.db") as db:
            box = AsyncOutbox(db)
            for seq in range(1, 41):
                for seat in SEATS:
                    await put(box, seat, seq)
            drainer = Drainer(outbox=box, topics=topics)
            task = asyncio.create_task(bridge(
                connect=lambda: aiomqtt.Client(own_broker.host, own_broker.port),
                drainer=drainer))  # fmt: skip
            await until(lambda: len(sub.received) >= 120, 20)
            await until(lambda: drainer.stats.published >= 120, 5)  # every PUBACK in
            task.cancel()
            sub_task.cancel()
            await until(lambda: db.stats().depth == 0, 5)  # removed with the next commit
            box.close()
        assert sub.check({seat: list(range(1, 41)) for seat in SEATS}) == 0

    asyncio.run(scenario())


def test_nothing_is_lost_while_the_broker_is_down(tmp_path: Path, own_broker: Any) -> None:
    topics = Topics(site="t" + uuid.uuid4().hex[:8])
    outage_s = 5.0

    async def scenario() -> None:
        sub = Subscriber(own_broker, topics)
        sub_task = asyncio.create_task(sub.run())
        await asyncio.sleep(0.3)
        with Outbox(tmp_path / "o.db") as db:
            box = AsyncOutbox(db)
            drainer = Drainer(outbox=box, topics=topics)
            task = asyncio.create_task(bridge(
                connect=lambda: aiomqtt.Client(own_broker.host, own_broker.port),
                drainer=drainer, backoff_s=(0.1, 1.0)))  # fmt: skip
            seq = 0
            for phase in ("before", "outage", "after"):
                if phase == "outage":
                    own_broker.stop()
                for _ in range(50):  # the seats keep talking at 100 events/s
                    seq += 1
                    for seat in SEATS:
                        await put(box, seat, seq)
                    drainer.wake()
                    await asyncio.sleep(0.01)
                if phase == "outage":
                    assert (await box.stats()).depth > 0  # held on disk, not lost
                    await asyncio.sleep(outage_s)
                    own_broker.restart()
            await until(lambda: db.stats().depth == 0, 30)
            await until(lambda: len({p["id"] for _, p in sub.received}) >= 3 * seq, 30)
            task.cancel()
            sub_task.cancel()
            assert drainer.stats.reconnects >= 1
            box.close()
        repeats = sub.check({seat: list(range(1, seq + 1)) for seat in SEATS})
        assert repeats <= 3 * 64  # at most what was in flight when the broker went

    asyncio.run(scenario())


def test_a_stop_that_comes_with_a_broker_outage_still_stops(own_broker: Any) -> None:
    """A service stopped while its broker goes down (a host shutting down) must stop, not
    take the stop for the outage and reconnect forever. The connection's task fails as the
    stop unwinds it, the way aiomqtt's does when the broker is gone at that moment."""

    async def scenario() -> None:
        connected = asyncio.Event()

        async def listen(client: aiomqtt.Client) -> None:
            await client.subscribe("seatlink/stop-test/#")
            connected.set()
            try:
                async for _ in client.messages:
                    pass
            except asyncio.CancelledError:
                raise aiomqtt.MqttError("Disconnected during message iteration") from None

        stopping = False
        task = asyncio.create_task(bridge(
            connect=lambda: aiomqtt.Client(own_broker.host, own_broker.port, timeout=2),
            tasks=(listen,), backoff_s=(0.05, 0.2), stopping=lambda: stopping))  # fmt: skip
        await asyncio.wait_for(connected.wait(), 5)
        stopping = True
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, "bridge() did not stop: it took the stop for a broker outage"
        assert task.cancelled()

    asyncio.run(scenario())
