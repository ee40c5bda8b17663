"""Remote firmware update through the edge gateway, end to end: virtual seats whose boards
hold their firmware as files and serve MicroPython's REPL (gateway.virtual_farm), the real
edge service, a real mosquitto, and the job sent on the firmware_cmd topic."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiomqtt
from edge_support import (
    Collector,
    command,
    edge_and_collector,
    factory_files,
    release_bundle,
    settings,
    site,
    until,
    write_inventory,
)

from gateway.contract.topics import Topics
from gateway.fleet.flash import firmware_version, load_bundle
from gateway.virtual_farm import SeatFarm

OLD = firmware_version()


def on_board(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store.iterdir() if p.name != "boot"}


async def send(broker: Any, topics: Topics, body: dict[str, Any] | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish(topics.topic("firmware_cmd", gateway="gw1"), data, qos=1)


def job_of(sub: Collector, job: str | None) -> dict[str, Any] | None:
    found = [b for b in sub.on("firmware_job", gateway="gw1") if b.get("job") == job]
    return found[-1] if found else None


def stages(sub: Collector, seat: str, job: str) -> list[str]:
    out: list[str] = []
    for body in sub.on("seat_firmware", seat=seat):
        if body["job"] == job and (not out or out[-1] != body["stage"]):
            out.append(body["stage"])
    return out


def health_firmware(sub: Collector, seat: str) -> str | None:
    last = sub.last("seat_health", seat=seat)
    return None if last is None else last["firmware"]


def test_rolling_update_then_a_release_that_does_not_boot_is_rolled_back(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    with SeatFarm(3) as farm:
        seats = {f"s{i}": s.uid for i, s in enumerate(farm.seats)}
        write_inventory(tmp_path / "inventory.toml", seats)
        cfg = settings(tmp_path, mqtt_broker, topics, [s.url for s in farm.seats])

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: all(health_firmware(sub, s) == OLD for s in seats), 15,
                            "every seat online on the factory firmware")  # fmt: skip
                boots = [s.boot for s in farm.seats]

                # 1. a good release to two seats, one after the other
                await send(mqtt_broker, topics, {"v": 1, "id": "up1", "seats": ["s0", "s1"],
                                                 "bundle": release_bundle("0.1.1"), "by": "ada"})
                await until(lambda: (job_of(sub, "up1") or {}).get("status") == "done", 60,
                            "job up1 done")  # fmt: skip
                for seat in ("s0", "s1"):
                    assert stages(sub, seat, "up1") == ["queued", "reading_back", "writing",
                                                        "waiting_hello", "done"]  # fmt: skip
                    await until(lambda seat=seat: health_firmware(sub, seat) == "0.1.1", 10)
                written = [b for b in sub.on("seat_firmware", seat="s0")
                           if b["stage"] == "writing" and b["total_bytes"]]  # fmt: skip
                # only what changed: the part with the version string, then main.py
                assert written[-1]["total_bytes"] == len(factory_files()["fw0"]) + len(
                    factory_files()["main.py"])
                assert written[-1]["written_bytes"] == written[-1]["total_bytes"]
                assert on_board(farm.seats[0].store) == _files(release_bundle("0.1.1"))
                assert farm.seats[0].boot == boots[0] + 1 and farm.seats[2].boot == boots[2]
                # the previous version is kept on the gateway, as a bundle flash takes
                kept = load_bundle(tmp_path / "firmware" / f"s0-{seats['s0']}.json")
                assert dict(kept.for_kind("microbit").files) == factory_files()
                assert kept.for_kind("microbit").version == OLD
                done = job_of(sub, "up1")
                assert done is not None and done["by"] == "ada"
                assert done["seats"] == {"s0": "done", "s1": "done"}

                # 2. a release that never says hello: the first seat is rolled back, the
                # job stops there
                bad = release_bundle("0.2.0", broken=True)
                await send(mqtt_broker, topics, {"v": 1, "id": "up2", "seats": ["s2", "s0"],
                                                 "bundle": bad, "hello_deadline_s": 5})
                await until(lambda: (job_of(sub, "up2") or {}).get("status") == "halted", 60,
                            "job up2 halted")  # fmt: skip
                assert stages(sub, "s2", "up2") == ["queued", "reading_back", "writing",
                                                    "waiting_hello", "rolling_back",
                                                    "rolled_back"]  # fmt: skip
                last = sub.last("seat_firmware", seat="s2")
                assert last is not None and "no hello from 0.2.0 within 5 s" in last["detail"]
                assert stages(sub, "s0", "up2")[-1] == "skipped"
                await until(lambda: health_firmware(sub, "s2") == OLD, 10, "s2 back on old")
                assert on_board(farm.seats[2].store) == factory_files()
                assert on_board(farm.seats[0].store) == _files(release_bundle("0.1.1"))
                halted = job_of(sub, "up2")
                assert halted is not None and "seat s2 rolled back" in halted["detail"]
                await until(lambda: (sub.last("seat_availability", seat="s2") or {}).get(
                    "status") == "online", 5, "s2 online again")
                # and counted in the gateway's health
                counted = {"jobs": 2, "done": 2, "rolled_back": 1, "skipped": 1}
                await until(lambda: (sub.last("gateway_health", gateway="gw1") or {}).get(
                    "firmware_updates") == counted, 5, f"health counting {counted}")

        asyncio.run(scenario())


def test_bad_jobs_are_refused_and_touch_nothing(tmp_path: Path, mqtt_broker: Any) -> None:
    topics = site()
    with SeatFarm(1) as farm:
        seats = {"s0": farm.seats[0].uid}
        write_inventory(tmp_path / "inventory.toml", seats)
        cfg = settings(tmp_path, mqtt_broker, topics, [farm.seats[0].url])
        good = release_bundle("0.1.1")
        damaged = json.loads(json.dumps(good))
        damaged["boards"]["microbit"]["files"][2]["data"] = "eD0x"  # "x=1"
        damaged["boards"]["microbit"]["files"][2]["size"] = 3
        cases: list[tuple[str | None, dict[str, Any] | bytes, str]] = [
            (None, b"{not json", "not JSON"),
            ("b1", {"v": 1, "id": "b1", "seats": ["s0"], "bundle": damaged},
             "fw2: SHA-256 differs from the manifest's (damaged)"),
            ("b2", {"v": 1, "id": "b2", "seats": ["s0", "nobody"], "bundle": good},
             "not seats of gateway gw1: nobody"),
            ("b3", {"v": 1, "id": "b3", "seats": ["s0", "s0"], "bundle": good},
             "a seat is listed twice"),
            ("b4", {"v": 1, "id": "b4", "seats": [], "bundle": good}, "seats:"),
            ("b5", {"v": 1, "id": "b5", "seats": ["s0"], "bundle": {"format": "zip"}},
             "not a seatlink firmware bundle"),
            ("b6", {"v": 1, "id": "b6", "seats": ["s0"], "bundle": good,
                    "hello_deadline_s": 1}, "hello_deadline_s"),
        ]  # fmt: skip

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: health_firmware(sub, "s0") == OLD, 15, "s0 online")
                boot = farm.seats[0].boot
                for job, body, reason in cases:
                    await send(mqtt_broker, topics, body)
                    await until(lambda job=job: job_of(sub, job) is not None, 10,
                                f"job {job} answered")  # fmt: skip
                    answer = job_of(sub, job)
                    assert answer is not None and answer["status"] == "invalid", answer
                    assert reason in answer["detail"], answer
                    sub.messages.clear()
                await until(lambda: (sub.last("gateway_health", gateway="gw1") or {}).get(
                    "firmware_updates") == {"invalid": len(cases)}, 5, "invalid jobs counted")
                # a seat command still works: the gateway is fine
                await command(mqtt_broker, topics, "s0", {"v": 1, "id": "c1", "command": "sync"})
                await until(lambda: sub.result("s0", "c1"), 5, "sync done")
            assert sub.on("seat_firmware", seat="s0") == []
            assert farm.seats[0].boot == boot and on_board(farm.seats[0].store) == factory_files()

        asyncio.run(scenario())


def test_a_seat_on_a_call_is_not_taken_from_its_agent(tmp_path: Path, mqtt_broker: Any) -> None:
    topics = site()
    with SeatFarm(1) as farm:
        seats = {"s0": farm.seats[0].uid}
        write_inventory(tmp_path / "inventory.toml", seats)
        cfg = settings(tmp_path, mqtt_broker, topics, [farm.seats[0].url])

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: health_firmware(sub, "s0") == OLD, 15, "s0 online")
                for cid, body in (("r", {"command": "set_state", "state": "ready"}),
                                  ("o", {"command": "offer", "call": 42})):
                    await command(mqtt_broker, topics, "s0", {"v": 1, "id": cid, **body})
                    await until(lambda cid=cid: sub.result("s0", cid), 5)
                await until(lambda: (sub.last("seat_state", seat="s0") or {}).get("state")
                            == "ringing", 5, "s0 ringing")  # fmt: skip
                boot = farm.seats[0].boot
                await send(mqtt_broker, topics, {"v": 1, "id": "u", "seats": ["s0"],
                                                 "bundle": release_bundle("0.1.1"),
                                                 "idle_wait_s": 1})  # fmt: skip
                await until(lambda: (job_of(sub, "u") or {}).get("status") == "done", 15)
                last = sub.last("seat_firmware", seat="s0")
                assert last is not None and last["stage"] == "skipped"
                assert "stayed on a call" in last["detail"]
                waited = [b for b in sub.on("seat_firmware", seat="s0") if b["stage"] == "queued"]
                assert "its agent is on a call: waiting up to 1 s" in waited[-1]["detail"]
                assert farm.seats[0].boot == boot
                assert (sub.last("seat_state", seat="s0") or {}).get("state") == "ringing"

        asyncio.run(scenario())


def _files(doc: dict[str, Any]) -> dict[str, bytes]:
    return {f["name"]: base64.b64decode(f["data"]) for f in doc["boards"]["microbit"]["files"]}


def test_no_backup_no_update(tmp_path: Path, mqtt_broker: Any) -> None:
    """The gateway cannot keep the running firmware (its backup directory cannot be made):
    nothing is written, and the seat comes back on the firmware it had."""
    topics = site()
    (tmp_path / "not-a-directory").write_text("")
    with SeatFarm(1) as farm:
        write_inventory(tmp_path / "inventory.toml", {"s0": farm.seats[0].uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [farm.seats[0].url],
                       firmware_backups=tmp_path / "not-a-directory" / "firmware")  # fmt: skip

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: health_firmware(sub, "s0") == OLD, 15, "s0 online")
                await send(mqtt_broker, topics, {"v": 1, "id": "u", "seats": ["s0"],
                                                 "bundle": release_bundle("0.1.1")})
                await until(lambda: (job_of(sub, "u") or {}).get("status") == "halted", 30)
                last = sub.last("seat_firmware", seat="s0")
                assert last is not None and last["stage"] == "failed"
                assert "cannot keep the running firmware" in last["detail"]
                assert "nothing was written" in last["detail"]
                # restarted into what it had: online again, same version, same files
                await until(lambda: (sub.last("seat_availability", seat="s0") or {}).get(
                    "status") == "online" and health_firmware(sub, "s0") == OLD, 15)
            assert on_board(farm.seats[0].store) == factory_files()

        asyncio.run(scenario())


def test_a_gateway_stopped_before_the_hello_finishes_the_job_after_its_restart(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    """Stopped while a release that never boots waits for its hello: the restarted gateway
    waits out the hello's deadline and rolls the seat back."""
    topics = site()
    with SeatFarm(1) as farm:
        write_inventory(tmp_path / "inventory.toml", {"s0": farm.seats[0].uid})
        cfg = settings(tmp_path, mqtt_broker, topics, [farm.seats[0].url])
        pending = tmp_path / "firmware"

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: health_firmware(sub, "s0") == OLD, 15, "s0 online")
                await send(mqtt_broker, topics, {
                    "v": 1, "id": "r", "seats": ["s0"], "hello_deadline_s": 8,
                    "bundle": release_bundle("0.2.0", broken=True)})  # fmt: skip
                await until(lambda: stages(sub, "s0", "r")[-1:] == ["waiting_hello"], 30,
                            "the new firmware written, its hello awaited")  # fmt: skip
            assert [p.name for p in pending.glob("*.pending.json")] == [
                f"s0-{farm.seats[0].uid}.pending.json"]
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: (sub.last("seat_firmware", seat="s0") or {}).get("stage")
                            == "rolled_back", 60, "s0 rolled back")  # fmt: skip
                last = sub.last("seat_firmware", seat="s0")
                assert last is not None and last["job"] == "r"
                assert "the gateway restarted during the update" in last["detail"]
                await until(lambda: health_firmware(sub, "s0") == OLD, 15, "s0 back on old")
            assert on_board(farm.seats[0].store) == factory_files()
            assert list(pending.glob("*.pending.json")) == []

        asyncio.run(scenario())


def test_a_microbit_v1_seat_is_refused_even_after_a_gateway_restart(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    """A seat whose hello names the board `microbit` takes a whole image at its desk: a job
    naming it is invalid and nothing is touched, the board name kept across a gateway
    restart (the seat's hello, acked before, is not sent again)."""
    topics = site()
    with SeatFarm(1) as files, SeatFarm(1, board_name="microbit", first_uid=0x5EA70100) as mb:
        seats = {"s0": files.seats[0].uid, "s1": mb.seats[0].uid}
        write_inventory(tmp_path / "inventory.toml", seats)
        cfg = settings(tmp_path, mqtt_broker, topics, [files.seats[0].url, mb.seats[0].url])
        assert (mb.seats[0].board.NAME, files.seats[0].board.NAME) == (b"microbit", b"virtual")

        async def refused(sub: Collector, job: str) -> None:
            boots = [files.seats[0].boot, mb.seats[0].boot]
            await send(mqtt_broker, topics, {"v": 1, "id": job, "seats": ["s0", "s1"],
                                             "bundle": release_bundle("0.1.1")})
            await until(lambda: job_of(sub, job) is not None, 10, f"job {job} answered")
            answer = job_of(sub, job)
            assert answer is not None and answer["status"] == "invalid", answer
            assert answer["detail"] == (
                "s1: micro:bit v1 seats take a whole image: seatlink flash --image FILE.hex "
                "--drive PATH at the desk (DAPLink); a remote update rewrites firmware files, "
                "which a micro:bit v1 does not keep (nothing was touched)")
            assert sub.on("seat_firmware", seat="s0") == sub.on("seat_firmware", seat="s1") == []
            assert [files.seats[0].boot, mb.seats[0].boot] == boots
            for farm in (files, mb):
                assert on_board(farm.seats[0].store) == factory_files()

        async def scenario() -> None:
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: health_firmware(sub, "s0") == OLD
                            and health_firmware(sub, "s1") == OLD, 15, "both seats online")
                # the hello comes by the event drain, which may trail the health it named
                await until(lambda: [e for e in sub.events("s1") if e["type"] == "hello"], 15,
                            "s1's hello")  # fmt: skip
                hello = [e for e in sub.events("s1") if e["type"] == "hello"]
                assert hello[-1]["data"]["board_name"] == "microbit"
                await refused(sub, "m1")
            async with edge_and_collector(cfg, mqtt_broker, topics) as sub:
                await until(lambda: (sub.last("seat_availability", seat="s1") or {}).get(
                    "status") == "online", 15, "s1 online again")
                assert not [e for e in sub.events("s1") if e["type"] == "hello"
                            and e["id"] not in {h["id"] for h in hello}]  # no new hello
                await refused(sub, "m2")
                # the other seat alone is updated as before
                await send(mqtt_broker, topics, {"v": 1, "id": "f1", "seats": ["s0"],
                                                 "bundle": release_bundle("0.1.1")})
                await until(lambda: (job_of(sub, "f1") or {}).get("status") == "done", 60,
                            "job f1 done")  # fmt: skip

        asyncio.run(scenario())
