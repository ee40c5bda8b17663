"""`seatlink pbx --backend ami` on a real mosquitto: a scripted Asterisk (the AMI wire
protocol on a socket) on one side, seat states and a subscriber on the other."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
from ami_peer import AmiPeer
from edge_support import Collector, retained, site, until
from test_ami import FULL_CALL, SEATS

from gateway.pbx.runner import build
from gateway.pbx.settings import PbxSettings


def test_asterisk_queue_events_become_call_events_and_seat_states_pauses(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()

    async def scenario() -> None:
        async with AmiPeer(interfaces=set(SEATS.values())) as peer:
            cfg = PbxSettings(
                pbx="pbx1", site=topics.site, root=topics.root, backend="ami",
                broker={"host": mqtt_broker.host, "port": mqtt_broker.port},  # type: ignore[arg-type]
                store=tmp_path / "pbx.db", health_interval_s=0.5,
                ami={"host": "127.0.0.1", "port": peer.port, "username": "seatlink",  # type: ignore[arg-type]
                     "secret": "s3cret", "seats": SEATS, "extensions": {"1003": "s103"},
                     "reconnect_s": (0.05, 0.2)})  # fmt: skip
            sub = Collector(mqtt_broker, topics)
            task = asyncio.create_task(sub.run())
            await asyncio.wait_for(sub.connected.wait(), 5)
            async with build(cfg) as service:
                await service.wait_online()
                await until(lambda: peer.actions_named("Login"), 5, "the login")
                # a seat paused at its desk: Asterisk must not offer it calls
                async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as c:
                    await c.publish(topics.seat_state("s101"), json.dumps(
                        {"v": 1, "seat": "s101", "state": "not_ready", "reason": "meal"}),
                        qos=1, retain=True)  # fmt: skip
                await until(lambda: peer.actions_named("QueuePause"), 5, "the QueuePause")
                pause = peer.actions_named("QueuePause")[0]
                assert (pause["Interface"], pause["Paused"], pause["Reason"]) == (
                    "PJSIP/1001", "true", "meal")
                for name, headers in FULL_CALL:
                    await peer.send_event(name, **headers)
                calls = lambda: [b for t, b, _ in sub.messages if "/call/" in t]  # noqa: E731
                await until(lambda: len(calls()) == 9, 5, "nine call events")
                assert [e["type"] for e in calls()] == [
                    "enter_queue", "offer", "ring_no_answer", "offer", "answer", "hold",
                    "unhold", "transfer", "release"]  # fmt: skip
                def commands() -> list[tuple[str, str]]:
                    return [(b["command"], t.split("/")[-2])
                            for t, b, _ in sub.messages if t.endswith("/cmd")]  # fmt: skip

                # the seat command may reach the subscriber after the call event it follows
                await until(lambda: ("released", "s102") in commands(), 5, "released to s102")
                assert ("offer", "s101") in commands() and ("connected", "s102") in commands()

                # Asterisk goes away and comes back: the pause is sent again
                await peer.drop()
                await until(lambda: len(peer.actions_named("QueuePause")) >= 2, 5,
                            "the pause again after the reconnect")  # fmt: skip
                await until(lambda: (sub.last("pbx_health", pbx="pbx1") or {}).get(
                    "ami_connected"), 5)  # fmt: skip
                status = retained(mqtt_broker, topics.topic("pbx_status", pbx="pbx1"))
                assert (status["status"], status["backend"]) == ("online", "ami")
            assert retained(mqtt_broker, topics.topic("pbx_status", pbx="pbx1"))["status"] == \
                "offline"  # fmt: skip
            task.cancel()

    asyncio.run(scenario())
