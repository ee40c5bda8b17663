"""gateway.contract.topics: the typed topic map, docs/mqtt.md, and the semantics a real
mosquitto gives its retained topics and the gateway's last will."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.contract.topics import TOPICS, Role, TopicError, Topics

DOC = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"


def site() -> str:
    return "t" + uuid.uuid4().hex[:12]  # a topic tree of its own for every test


def test_every_topic_builds_and_parses_back() -> None:
    t = Topics(site="hq")
    for name, spec in TOPICS.items():
        ids = {p: f"{p}-7" for p in spec.params}
        topic = t.topic(name, **ids)
        assert topic.startswith("seatlink/v1/hq/")
        parsed = t.parse(topic)
        assert parsed.spec is spec and parsed.ids == ids


def test_subscriptions_match_every_id_and_nothing_else() -> None:
    t = Topics(site="hq", root="acme")
    assert t.subscription("seat_event") == "acme/v1/hq/seat/+/event"
    assert t.subscription("seat_cmd_result") == "acme/v1/hq/seat/+/cmd/result"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "x" * 65, "sp ace", "é"])
def test_ids_that_would_break_the_tree_are_refused(bad: str) -> None:
    with pytest.raises(TopicError, match="is not 1-64 characters"):
        Topics(site="hq").seat_state(bad)


@pytest.mark.parametrize("topic", [
    "seatlink/v1/hq/seat/s1/nope", "seatlink/v1/other/seat/s1/state",
    "seatlink/v2/hq/seat/s1/state", "seatlink/v1/hq/seat/s+/state", "seatlink/v1/hq/seat",
])  # fmt: skip
def test_foreign_topics_do_not_parse(topic: str) -> None:
    with pytest.raises(TopicError):
        Topics(site="hq").parse(topic)


def test_wrong_ids_for_a_topic_are_a_clear_error() -> None:
    with pytest.raises(TopicError, match="takes seat, not gateway"):
        Topics(site="hq").topic("seat_state", gateway="g1")
    with pytest.raises(TopicError, match="no topic 'seat'"):
        Topics(site="hq").topic("seat")


def test_docs_list_every_topic_as_the_code_has_it() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \| (yes|no) \| (\d) \|", DOC.read_text(),
                      re.MULTILINE)  # fmt: skip
    documented = {pattern: (Role(pub), retained == "yes", int(qos))
                  for pattern, pub, retained, qos in rows}
    assert documented == {
        s.pattern: (s.publisher, s.retained, s.qos) for s in TOPICS.values()
    }


def mosquitto_sub(broker_port: int, topic: str, *, count: int = 1, wait_s: int = 5) -> list[str]:
    """An independent client: mosquitto_sub, verbose (topic and payload per line)."""
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker_port), "-t", topic, "-v",
         "-C", str(count), "-W", str(wait_s)],
        capture_output=True, text=True, timeout=wait_s + 5, check=False,
    )  # fmt: skip
    return out.stdout.splitlines()


def test_retained_state_reaches_a_late_subscriber(mqtt_broker: Any) -> None:
    t = Topics(site=site())

    async def publish() -> None:
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
            await client.publish(t.seat_state("s1"), b'{"v":1,"state":"ready"}', qos=1,
                                 retain=True)  # fmt: skip
            await client.publish(t.seat_event("s1"), b'{"v":1}', qos=1)  # not retained

    asyncio.run(publish())
    assert mosquitto_sub(mqtt_broker.port, t.seat_state("s1")) == [
        f'{t.seat_state("s1")} {{"v":1,"state":"ready"}}']
    assert mosquitto_sub(mqtt_broker.port, t.seat_event("s1"), wait_s=1) == []


GATEWAY = """
import asyncio, sys
import aiomqtt
async def main():
    host, port, status = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    will = aiomqtt.Will(status, b"offline", qos=1, retain=True)
    async with aiomqtt.Client(host, port, will=will, keepalive=5) as client:
        await client.publish(status, b"online", qos=1, retain=True)
        print("up", flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
"""


def test_gateway_last_will_marks_it_offline(mqtt_broker: Any) -> None:
    t = Topics(site=site())
    status = t.gateway_status("gw1")
    gateway = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, mqtt_broker.host, str(mqtt_broker.port), status],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert gateway.stdout is not None and gateway.stdout.readline() == "up\n"
        assert mosquitto_sub(mqtt_broker.port, status) == [f"{status} online"]
        gateway.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
        gateway.wait(timeout=10)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(timeout=10)
        if gateway.stdout is not None:
            gateway.stdout.close()
    assert mosquitto_sub(mqtt_broker.port, status) == [f"{status} offline"]
