"""The edge gateway end to end: virtual seats (the real firmware bundle) on socket:// links,
the gateway's service, a real mosquitto of the test's own, and subscribers (aiomqtt and
mosquitto_sub)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from edge_support import (
    Collector,
    command,
    config_file,
    retained,
    settings,
    site,
    until,
    write_inventory,
)

from gateway.edge.service import EdgeService
from gateway.rig.link_faults import FaultyLink
from gateway.seatlink.codec import Kind, encode
from gateway.virtual_farm import SeatFarm
from gateway.virtual_seat import IN_HANGER, IN_HELP


async def press(seat: Any, bit: int) -> None:
    seat.board.bits |= bit
    await asyncio.sleep(0.1)
    seat.board.bits &= ~bit
    await asyncio.sleep(0.1)


def test_seat_events_state_and_health_reach_subscribers(tmp_path: Path, mqtt_broker: Any) -> None:
    topics = site()
    with SeatFarm(3) as farm:
        seats = {f"s{i}": s.uid for i, s in enumerate(farm.seats)}
        write_inventory(tmp_path / "inventory.toml", seats)
        cfg = settings(tmp_path, mqtt_broker, topics, [s.url for s in farm.seats])

        async def scenario() -> None:
            sub = Collector(mqtt_broker, topics)
            task = asyncio.create_task(sub.run())
            await asyncio.wait_for(sub.connected.wait(), 5)
            async with EdgeService(cfg):
                await until(lambda: all(sub.last("seat_state", seat=s) for s in seats), 10,
                            "every seat's state")  # fmt: skip
                await press(farm.seats[1], IN_HELP)
                farm.seats[2].board.bits &= ~IN_HANGER  # the headset lifted off its hanger
                await until(lambda: (sub.last("seat_state", seat="s1") or {}).get("help"), 5)
                await until(lambda: (sub.last("seat_state", seat="s2") or {}).get("off_hook"), 5)
                await until(lambda: all(sub.last("seat_health", seat=s) for s in seats), 10)
                # an independent client reads the retained state
                state = retained(mqtt_broker, topics.seat_state("s1"))
                assert state["help"] is True and state["state"] == "logged_out"
                assert state["board"] == seats["s1"] and state["v"] == 1
                online = retained(mqtt_broker, topics.topic("seat_availability", seat="s0"))
                assert online["status"] == "online"
                status = retained(mqtt_broker, topics.gateway_status("gw1"))
                assert status["status"] == "online"
            await asyncio.sleep(0.3)
            task.cancel()
            # every seat: a hello, snapshots, and the pressed events, each carrying its id
            for seat, uid in seats.items():
                events = sub.events(seat)
                assert events[0]["type"] == "hello" and events[0]["board"] == uid
                assert all(e["id"] == f"{uid}-{e['boot']}-{e['seq']}" for e in events)
            kinds = [e["data"]["event"] for e in sub.events("s2") if e["type"] == "event"]
            assert kinds == ["hook"]  # lifted while logged out: no state change
            helps = [e["data"]["a"] for e in sub.events("s1") if e["type"] == "event"]
            assert helps == [1]
            # a clean stop says offline: the seats, then the gateway
            assert retained(mqtt_broker, topics.gateway_status("gw1"))["status"] == "offline"
            gone = retained(mqtt_broker, topics.topic("seat_availability", seat="s0"))
            assert gone["status"] == "offline" and gone["why"] == "gateway stopped"

        asyncio.run(scenario())


def test_commands_get_results_and_bad_ones_change_nothing(tmp_path: Path,
                                                         mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    with SeatFarm(1) as farm:
        seats = {"s0": farm.seats[0].uid}
        write_inventory(tmp_path / "inventory.toml", seats)
        cfg = settings(tmp_path, mqtt_broker, topics, [farm.seats[0].url],
                       reject_window_s=0.3)  # fmt: skip

        async def scenario() -> None:
            sub = Collector(mqtt_broker, topics)
            task = asyncio.create_task(sub.run())
            await asyncio.wait_for(sub.connected.wait(), 5)
            async with EdgeService(cfg) as edge:
                await until(lambda: sub.last("seat_state", seat="s0"), 10)

                async def result(cid: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
                    await command(mqtt_broker, topics, "s0", body)
                    await until(lambda: sub.result("s0", cid), 5, f"result of {cid}")
                    found = sub.result("s0", cid)
                    assert found is not None
                    return found

                # an offer to a logged-out seat: the seat refuses it, nothing changes
                r = await result("o1", {"v": 1, "id": "o1", "command": "offer", "call": 7})
                assert (r["status"], r["error"]) == ("rejected", "wrong_state")
                r = await result("r1", {"v": 1, "id": "r1", "command": "set_state",
                                        "state": "ready"})  # fmt: skip
                assert r["status"] == "done"
                await until(lambda: sub.last("seat_state", seat="s0")["state"] == "ready", 5)
                r = await result("o2", {"v": 1, "id": "o2", "command": "offer", "call": 7})
                assert r["status"] == "done"
                await until(lambda: sub.last("seat_state", seat="s0")["state"] == "ringing", 5)
                events_before = len(sub.events("s0"))
                state_before = sub.last("seat_state", seat="s0")
                # bad commands: a clear error each, nothing sent to the seat
                bad = {
                    "j1": b"{not json",
                    "j2": b'["a list"]',
                    "b1": {"v": 1, "id": "b1", "command": "settings", "settings": {"acw_s": 9999}},
                    "b2": {"v": 1, "id": "b2", "command": "settings", "settings": {"nope": 1}},
                    "b3": {"v": 1, "id": "b3", "command": "offer", "call": 0},
                    "b4": {"v": 1, "id": "b4", "command": "launch"},
                    "b5": {"v": 2, "id": "b5", "command": "sync"},
                    "b6": {"v": 1, "id": "b6", "command": "set_state", "state": "not_ready"},
                }  # fmt: skip
                for body in bad.values():
                    await command(mqtt_broker, topics, "s0", body)
                await until(lambda: len(sub.on("seat_cmd_result", seat="s0")) >= 3 + len(bad),
                            5, "every bad command answered")  # fmt: skip
                invalid = [r for r in sub.on("seat_cmd_result", seat="s0")
                           if r["status"] == "invalid"]  # fmt: skip
                assert len(invalid) == len(bad)
                by_id = {r["id"]: r["detail"] for r in invalid}
                no_id = sorted(r["detail"] for r in invalid if r["id"] is None)
                assert len(no_id) == 2
                assert no_id[0].startswith("a command is a JSON object")
                assert no_id[1].startswith("not JSON")
                assert "acw_s" in by_id["b1"] and "600" in by_id["b1"]
                assert "nope" in by_id["b2"]
                assert "call" in by_id["b3"]
                assert "version" in by_id["b5"]
                assert "reason" in by_id["b6"]
                # unknown seat
                await command(mqtt_broker, topics, "nosuch",
                              {"v": 1, "id": "u1", "command": "sync"})  # fmt: skip
                await until(lambda: sub.result("nosuch", "u1"), 5)
                assert "unknown seat" in sub.result("nosuch", "u1")["detail"]  # type: ignore[index]
                await asyncio.sleep(0.5)
                assert len(sub.events("s0")) == events_before
                after = sub.last("seat_state", seat="s0")
                assert after is not None and state_before is not None
                assert after["state"] == state_before["state"] == "ringing"
                health = await edge.health()
                assert health.commands["invalid"] == len(bad) + 1
                assert health.commands["rejected"] == 1 and health.commands["done"] == 2
            task.cancel()

        asyncio.run(scenario())


def test_unknown_board_is_quarantined_until_provisioned(tmp_path: Path,
                                                        mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    with SeatFarm(2) as farm:
        known, stranger = farm.seats
        inventory = write_inventory(tmp_path / "inventory.toml", {"s0": known.uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [s.url for s in farm.seats])

        async def scenario() -> None:
            sub = Collector(mqtt_broker, topics)
            task = asyncio.create_task(sub.run())
            await asyncio.wait_for(sub.connected.wait(), 5)
            async with EdgeService(cfg):
                def listed() -> list[Any]:
                    q = sub.last("gateway_quarantine", gateway="gw1")
                    return [] if q is None else [b["board"] for b in q["boards"]]

                await until(lambda: listed() == [stranger.uid], 10, "the stranger quarantined")
                await press(stranger, IN_HELP)  # not bridged, not acked: kept by the seat
                await asyncio.sleep(0.5)
                assert not [t for t, _, _ in sub.messages if "/seat/s1/" in t]
                write_inventory(inventory, {"s0": known.uid, "s1": stranger.uid})
                await until(lambda: sub.last("seat_state", seat="s1"), 10, "s1 bridged")
                await until(lambda: listed() == [], 5, "quarantine emptied")
                def helps() -> list[int]:
                    return [e["data"]["a"] for e in sub.events("s1")
                            if e["type"] == "event" and e["data"]["event"] == "help"]

                # what the seat kept while quarantined arrives, from its hello on
                await until(lambda: helps() == [1], 10, "the help pressed in quarantine")
                assert sub.events("s1")[0]["type"] == "hello"
            task.cancel()

        asyncio.run(scenario())


def test_missed_heartbeats_make_a_seat_offline_and_back(tmp_path: Path,
                                                        mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    with SeatFarm(1) as farm:
        seat = farm.seats[0]
        port = int(seat.url.rsplit(":", 1)[1])
        with FaultyLink(("127.0.0.1", port)) as proxy:
            write_inventory(tmp_path / "inventory.toml", {"s0": seat.uid},
                            defaults={"heartbeat_s": 1})  # fmt: skip
            cfg = settings(tmp_path, mqtt_broker, topics, [proxy.url])

            async def scenario() -> None:
                sub = Collector(mqtt_broker, topics)
                task = asyncio.create_task(sub.run())
                await asyncio.wait_for(sub.connected.wait(), 5)

                def status() -> tuple[str, str] | None:
                    a = sub.last("seat_availability", seat="s0")
                    return None if a is None else (a["status"], a["why"])

                async with EdgeService(cfg):
                    await until(lambda: status() == ("online", "heard"), 10)
                    proxy.corrupt = 1.0  # every byte damaged: the port is open, nothing heard
                    await until(lambda: status() == ("offline", "3 heartbeats missed"), 8)
                    proxy.corrupt = 0.0
                    await until(lambda: status() == ("online", "heard"), 8)
                    proxy.unplug()
                    await until(lambda: (status() or ("",))[0] == "offline", 5)
                    proxy.replug()
                    await until(lambda: status() == ("online", "heard"), 10)
                # QoS 0: the stream may miss one under load; the broker keeps the latest
                health = retained(mqtt_broker, topics.topic("seat_health", seat="s0"))
                assert health["crc_errors"] + health["garbage"] > 0, health
                assert health["reopens"] >= 1
                task.cancel()

            asyncio.run(scenario())


def read_until_sync(conn: socket.socket) -> int:
    """The seq of the first Q the gateway writes (what a board reads from its host)."""
    conn.settimeout(10)
    buf = b""
    while True:
        data = conn.recv(4096)
        assert data, "the gateway closed the link"
        buf += data
        for line in buf.split(b"\n"):
            frame = line.split(b"*")[0].split()
            if len(frame) == 2 and frame[1] == b"Q":
                return int(frame[0])


def test_garbage_and_oversized_lines_from_a_board_are_counted(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    """A board that sends noise, overlong lines and frames with bad fields: the gateway
    stores only the good frames, counts the rest, and stays up. The board here is the
    test itself (socket server), to send exactly the bytes a broken board might."""
    topics = site()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    write_inventory(tmp_path / "inventory.toml", {"s0": "BAD0B0A2"})
    cfg = settings(tmp_path, mqtt_broker, topics, [f"socket://127.0.0.1:{port}"])

    async def scenario() -> None:
        sub = Collector(mqtt_broker, topics)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(sub.connected.wait(), 5)
        async with EdgeService(cfg) as edge:
            loop = asyncio.get_running_loop()
            conn, _ = await loop.run_in_executor(None, server.accept)
            # pyserial empties its input buffer as it opens the port: what a board sends in
            # that instant is gone (a real seat resends it; this one sends once), so wait
            await until(lambda: edge.links[0].is_open, 5, "the link open")
            await asyncio.sleep(0.2)
            hello = encode(1, Kind.HELLO, [1, 3, "0.1.0", "BAD0B0A2", "virtual"])
            conn.sendall(b"\x00\xff garbage \x01\n" + b"9" * 5000 + b"\n" + hello)
            # the gateway takes nothing before its Q is acked: answer it as a seat does
            q = await loop.run_in_executor(None, read_until_sync, conn)
            conn.sendall(encode(0, Kind.ACK, [q]))
            lines = [
                hello,  # resent, as the seat does after a Q
                b"2 S 1 0 0 0 0 -1 0 0 0*0000\n",  # bad CRC
                encode(2, Kind.EVENT, [99, 1, 0, 0, 0, 0]),  # no such event code
                encode(3, Kind.SNAPSHOT, [1, 0, 0, 5, 0, -1, 0, 0, 0]),
                encode(4, Kind.EVENT, [6, 1, 0, 0, 1, 0]),
                encode(0, Kind.HEARTBEAT, [5, 9000, 5, 0, 0, 0, 0, 0, 3, "0.1.0", "BAD0B0A2", 4]),
            ]
            conn.sendall(b"".join(lines))
            await until(lambda: len(sub.events("s0")) >= 3, 10, "the good frames")
            types = [e["type"] for e in sub.events("s0")]
            assert types == ["hello", "snapshot", "event"]
            assert [e["seq"] for e in sub.events("s0")] == [1, 3, 4]
            await until(lambda: (sub.last("seat_state", seat="s0") or {}).get("state") == "ready",
                        5, "the snapshot's state")  # fmt: skip
            link = edge.links[0]
            assert link.rx.garbage >= 3 and link.rx.crc_errors >= 1
            assert link.stats.invalid_messages == 1
            # acked, not published, and counted where a supervisor sees the seat's link
            await until(lambda: (sub.last("seat_health", seat="s0") or {}).get(
                "invalid_frames") == 1, 10, "the invalid frame in the seat's health")  # fmt: skip
            conn.close()
        task.cancel()

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def test_frames_a_board_held_when_it_reset_are_counted_in_its_health(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    """A board reset loses what its RAM held unacked: the gateway cannot bring those frames
    back, but it counts the ones it knew of (seen past a gap, or named by the heartbeat's
    newest seq) in the seat's health, instead of saying nothing."""
    topics = site()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    write_inventory(tmp_path / "inventory.toml", {"s0": "BAD0B0A3"})
    cfg = settings(tmp_path, mqtt_broker, topics, [f"socket://127.0.0.1:{port}"])

    def beat(boot: int, newest: int) -> bytes:
        return encode(0, Kind.HEARTBEAT, [5, 9000, 5, 0, 0, 3, 0, 0, boot, "0.1.0", "BAD0B0A3",
                                          newest])  # fmt: skip

    async def scenario() -> None:
        sub = Collector(mqtt_broker, topics)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(sub.connected.wait(), 5)
        async with EdgeService(cfg) as edge:
            loop = asyncio.get_running_loop()
            conn, _ = await loop.run_in_executor(None, server.accept)
            await until(lambda: edge.links[0].is_open, 5, "the link open")
            await asyncio.sleep(0.2)
            hello = encode(1, Kind.HELLO, [1, 3, "0.1.0", "BAD0B0A3", "virtual"])
            conn.sendall(hello)
            q = await loop.run_in_executor(None, read_until_sync, conn)
            conn.sendall(encode(0, Kind.ACK, [q]))
            conn.sendall(hello + encode(2, Kind.SNAPSHOT, [1, 0, 0, 5, 0, -1, 0, 0, 0, 0])
                         + encode(4, Kind.EVENT, [6, 1, 0, 0, 1, 0])  # 3 damaged on the way
                         + beat(3, 5))  # it holds 3, 4 and 5  # fmt: skip
            await until(lambda: len(sub.events("s0")) >= 2, 10, "hello and snapshot")
            assert edge.links[0].rx.lost_at_reset == 0
            # reset: a new boot's hello; 3, 4 and 5 went with the board's RAM
            conn.sendall(encode(1, Kind.HELLO, [1, 4, "0.1.0", "BAD0B0A3", "virtual"])
                         + beat(4, 1))  # fmt: skip
            await until(lambda: (sub.last("seat_health", seat="s0") or {}).get(
                "lost_at_reset") == 3, 10, "lost_at_reset in the health")  # fmt: skip
            assert [(e["boot"], e["seq"]) for e in sub.events("s0")] == [(3, 1), (3, 2), (4, 1)]
            conn.close()
        task.cancel()

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def test_last_will_says_offline_when_the_gateway_is_killed(tmp_path: Path,
                                                           mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    with SeatFarm(1) as farm:
        write_inventory(tmp_path / "inventory.toml", {"s0": farm.seats[0].uid})
        cfg = config_file(tmp_path / "edge.toml",
                          settings(tmp_path, mqtt_broker, topics, [farm.seats[0].url]))
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "edge", "-c", str(cfg)],
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            async def online() -> None:
                sub = Collector(mqtt_broker, topics)
                task = asyncio.create_task(sub.run())
                await until(lambda: (sub.last("gateway_status", gateway="gw1") or {}).get(
                    "status") == "online", 15, "gateway online")  # fmt: skip
                task.cancel()

            asyncio.run(online())
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            # the broker notices the dead connection within keepalive * 1.5; a SIGKILLed
            # process's socket is closed by the kernel, so the will goes out at once
            will = retained(mqtt_broker, topics.gateway_status("gw1"), timeout=10)
            assert will["status"] == "offline" and will["t"] is None
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
            assert proc.stderr is not None
            proc.stderr.close()


# `seatlink edge` with one of its parts (the inventory watcher) replaced by a bug
DYING_EDGE = """
import sys
from gateway.cli import main
from gateway.edge.service import EdgeService

async def bug(self):
    raise RuntimeError("injected inventory bug")

EdgeService._watch_inventory = bug
sys.exit(main(["edge", "-c", sys.argv[1]]))
"""


def test_seatlink_edge_exits_with_1_when_a_part_dies(tmp_path: Path, mqtt_broker: Any) -> None:
    """A gateway that lost a part to a bug stops (logged, offline said) and exits 1, so that
    a supervisor restarts it; it exited 0, as if asked to stop."""
    topics = site()
    write_inventory(tmp_path / "inventory.toml", {})
    cfg = config_file(tmp_path / "edge.toml",
                      settings(tmp_path, mqtt_broker, topics, ["socket://127.0.0.1:1"]))
    out = subprocess.run([sys.executable, "-c", DYING_EDGE, str(cfg)], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "inventory failed" in out.stderr
    assert "RuntimeError: injected inventory bug" in out.stderr
    status = retained(mqtt_broker, topics.gateway_status("gw1"))
    assert status["status"] == "offline"


def test_bad_settings_stop_the_gateway_with_a_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text('gateway = "has space"\nlinks = ["socket://127.0.0.1:1"]\n')
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "edge", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert out.returncode == 2 and "has space" in out.stderr
    cfg.write_text('links = ["socket://127.0.0.1:1"]\ninventory = "missing.toml"\n')
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "edge", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert out.returncode == 2 and "missing.toml" in out.stderr


pytestmark = pytest.mark.timeout(120)


def test_a_killed_event_drainer_is_replaced_and_nothing_is_lost(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    topics = site()
    with SeatFarm(1) as farm:
        seat = farm.seats[0]
        write_inventory(tmp_path / "inventory.toml", {"s0": seat.uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [seat.url])

        async def scenario() -> None:
            sub = Collector(mqtt_broker, topics)
            task = asyncio.create_task(sub.run())
            await asyncio.wait_for(sub.connected.wait(), 5)
            async with EdgeService(cfg) as edge:
                drain = edge.drain_process
                assert drain is not None and drain.pid is not None
                await until(lambda: sub.last("seat_state", seat="s0"), 10)
                os.kill(drain.pid, signal.SIGKILL)
                await press(seat, IN_HELP)  # stored while no drainer runs
                await until(lambda: any(e["type"] == "event" for e in sub.events("s0")), 10,
                            "the event, published by the next drainer")  # fmt: skip
                assert drain.restarts == 1
            task.cancel()

        asyncio.run(scenario())
