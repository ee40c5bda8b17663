"""docs/mqtt.md "Delivery for subscribers", against a real mosquitto: a subscriber with a
persistent session and QoS 1 subscriptions gets every seat event published while it was
away, across a broker restart (persistence true), in each seat's order; with
max_queued_messages below what was published meanwhile, the broker drops the rest for it
and counts them in $SYS."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.contract.topics import Topics

pytestmark = pytest.mark.timeout(120)

SEATS = ("s1", "s2", "s3", "s4")


def subscriber(broker: Any, ident: str, *, v5: bool) -> aiomqtt.Client:
    """A subscriber whose session the broker keeps while it is away: a fixed client id and
    clean_session false (MQTT 3.1.1), or clean_start false with a session expiry (MQTT 5)."""
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        return aiomqtt.Client(broker.host, broker.port, identifier=ident,
                              protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                              properties=props)  # fmt: skip
    return aiomqtt.Client(broker.host, broker.port, identifier=ident, clean_session=False)


async def publish_events(broker: Any, topics: Topics, count: int, *, first: int = 1) -> list[str]:
    """`count` seat events as the edge publishes them (QoS 1, each acked by the broker),
    spread over SEATS; their ids in publishing order."""
    ids = []
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for n in range(first, first + count):
            seat = SEATS[n % len(SEATS)]
            eid = f"B{seat}-1-{n}"
            body = {"v": 1, "id": eid, "seat": seat, "board": f"B{seat}", "boot": 1, "seq": n}
            await client.publish(topics.seat_event(seat), json.dumps(body).encode(), qos=1)
            ids.append(eid)
    return ids


async def receive_until(client: aiomqtt.Client, marker: str, timeout: float
                        ) -> list[dict[str, Any]]:  # fmt: skip
    """Every seat event the client receives up to the event with id `marker`."""
    got: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                body: dict[str, Any] = json.loads(message.payload)
                got.append(body)
                if body["id"] == marker:
                    return got
    except TimeoutError:
        pass
    raise AssertionError(f"no event {marker} within {timeout} s ({len(got)} others came): "
                         "the broker lost the session?")  # fmt: skip


def first_arrivals(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """De-duplicated by event id, as docs/mqtt.md tells a subscriber to."""
    seen: set[str] = set()
    out = []
    for body in got:
        if body["id"] not in seen:
            seen.add(body["id"])
            out.append(body)
    return out


def in_seat_order(events: list[dict[str, Any]]) -> bool:
    last: dict[str, int] = {}
    for e in events:
        if e["seq"] <= last.get(e["seat"], 0):
            return False
        last[e["seat"]] = e["seq"]
    return True


async def away_and_back(broker: Any, count: int, *, v5: bool,
                        while_away: Callable[[], Awaitable[None]] | None = None,
                        ) -> tuple[list[str], list[dict[str, Any]]]:  # fmt: skip
    """Subscribe, go away; `count` events published (each acked to the publisher, as the
    edge's outbox needs before it removes one); `while_away` runs; the broker restarts; the
    subscriber comes back with the same client id, without subscribing again, and one more
    event is published: what arrives before it is what the broker kept.
    Returns (ids published while away, events received before the last one)."""
    topics = Topics(site="t" + uuid.uuid4().hex[:12])  # a topic tree of this test's own
    ident = "sub-" + uuid.uuid4().hex[:8]
    async with subscriber(broker, ident, v5=v5) as client:
        await client.subscribe(topics.subscription("seat_event"), qos=1)
    published = await publish_events(broker, topics, count)
    if while_away is not None:
        await while_away()
    await asyncio.to_thread(broker.restart)  # SIGTERM: mosquitto saves its database
    async with subscriber(broker, ident, v5=v5) as client:
        (last,) = await publish_events(broker, topics, 1, first=count + 1)
        got = await receive_until(client, last, 30)
    return published, got[:-1]


async def sys_counter(broker: Any, topic: str, expected: int, timeout: float) -> None:
    """Wait for mosquitto's $SYS `topic` to read `expected` (it is sent every sys_interval);
    a higher value fails at once."""
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic)
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                value = int(message.payload)
                assert value <= expected, f"{topic}: {value}, expected {expected}"
                if value == expected:
                    return


@pytest.mark.parametrize("own_broker", [{"max_queued_messages": 5000}], indirect=True)
@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_a_persistent_subscriber_gets_every_event_published_while_it_was_away(
    own_broker: Any, v5: bool
) -> None:
    # 3,000 events: three times what mosquitto keeps for one client by default
    published, got = asyncio.run(away_and_back(own_broker, 3000, v5=v5))
    events = first_arrivals(got)
    assert sorted(e["id"] for e in events) == sorted(published)  # none lost
    assert in_seat_order(events)


@pytest.mark.parametrize("own_broker", [{"sys_interval": 1}], indirect=True)
def test_past_max_queued_messages_the_broker_drops_events_for_an_absent_subscriber(
    own_broker: Any,
) -> None:
    # max_queued_messages left at mosquitto's default, 1,000
    async def dropped() -> None:
        await sys_counter(own_broker, "$SYS/broker/publish/messages/dropped", 500, 20)

    published, got = asyncio.run(away_and_back(own_broker, 1500, v5=False,
                                               while_away=dropped))  # fmt: skip
    events = first_arrivals(got)
    # the oldest 1,000 were kept; the 500 after them were acked to the publisher (the edge
    # would have removed them from its outbox) and never reach this subscriber
    assert [e["id"] for e in events] == published[:1000]
