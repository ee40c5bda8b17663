"""What the edge gateway's tests share: an inventory on disk, gateway settings for a test's
own broker, a subscriber that keeps everything it hears, and the checks every fault test
makes (nothing lost, no duplicates, order kept, state converged)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.bundle import firmware_bundle
from gateway.contract.topics import Topics
from gateway.edge.service import EdgeService
from gateway.edge.settings import EdgeSettings
from gateway.fleet.flash import FileSet, Firmware, bundle_document


def write_inventory(path: Path, seats: Mapping[str, str], *,
                    defaults: Mapping[str, int] | None = None) -> Path:  # fmt: skip
    """seats: seat id -> board uid. Written atomically, as facilities are told to."""
    lines = []
    if defaults:
        lines.append("[defaults]")
        lines += [f"{k} = {v}" for k, v in defaults.items()]
    for seat, board in seats.items():
        lines += ["[[seat]]", f'seat = "{seat}"', f'board = "{board}"']
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def site() -> Topics:
    return Topics(site="t" + uuid.uuid4().hex[:10])


def settings(tmp: Path, broker: Any, topics: Topics, links: Iterable[str], **extra: Any
             ) -> EdgeSettings:  # fmt: skip
    values: dict[str, Any] = {
        "gateway": "gw1", "site": topics.site, "root": topics.root,
        "broker": {"host": broker.host, "port": broker.port}, "links": list(links),
        "inventory": str(tmp / "inventory.toml"), "outbox": tmp / "outbox.db",
        "firmware_backups": tmp / "firmware",
        "reopen_backoff_s": (0.1, 0.5), "health_interval_s": 1.0,
    }  # fmt: skip
    values.update(extra)
    return EdgeSettings(**values)


def config_file(path: Path, s: EdgeSettings) -> Path:
    """The same settings as a TOML file, for a gateway run as its own process."""
    links = ", ".join(json.dumps(u) for u in s.links)
    path.write_text(
        f'gateway = "{s.gateway}"\nsite = "{s.site}"\nroot = "{s.root}"\n'
        f"links = [{links}]\ninventory = {json.dumps(s.inventory)}\n"
        f"outbox = {json.dumps(str(s.outbox))}\nreopen_backoff_s = {list(s.reopen_backoff_s)}\n"
        f"health_interval_s = {s.health_interval_s}\n"
        f'[broker]\nhost = "{s.broker.host}"\nport = {s.broker.port}\n')
    return path


class Collector:
    """Every message under the site, with a persistent session (what the broker keeps for
    it while it is away reaches it when it is back)."""

    def __init__(self, broker: Any, topics: Topics) -> None:
        self.broker = broker
        self.topics = topics
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.ident = "collector-" + uuid.uuid4().hex[:8]
        self.connected = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.broker.host, self.broker.port,
                                          identifier=self.ident, clean_session=False) as c:
                    await c.subscribe(self.topics.prefix + "#", qos=1)
                    self.connected.set()
                    async for m in c.messages:
                        assert isinstance(m.payload, bytes)
                        try:
                            body = json.loads(m.payload)
                        except ValueError:
                            body = {"raw": m.payload.decode(errors="replace")}
                        self.messages.append((str(m.topic), body, bool(m.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    def on(self, name: str, **ids: str) -> list[dict[str, Any]]:
        topic = self.topics.topic(name, **ids)
        return [body for t, body, _ in self.messages if t == topic]

    def last(self, name: str, **ids: str) -> dict[str, Any] | None:
        found = self.on(name, **ids)
        return found[-1] if found else None

    def events(self, seat: str) -> list[dict[str, Any]]:
        """The seat's events once each (by id), in arrival order."""
        seen: set[str] = set()
        out = []
        for body in self.on("seat_event", seat=seat):
            if body["id"] not in seen:
                seen.add(body["id"])
                out.append(body)
        return out

    def result(self, seat: str, cid: str | None) -> dict[str, Any] | None:
        for body in self.on("seat_cmd_result", seat=seat):
            if body.get("id") == cid:
                return body
        return None


@contextlib.asynccontextmanager
async def edge_and_collector(settings: EdgeSettings, broker: Any,
                             topics: Topics) -> AsyncIterator[Collector]:  # fmt: skip
    """A subscriber to everything under the site, then the edge service running; the
    subscriber is stopped after the service's clean stop (its offline messages heard)."""
    sub = Collector(broker, topics)
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.wait_for(sub.connected.wait(), 5)
        async with EdgeService(settings):
            yield sub
        await asyncio.sleep(0.2)
    finally:
        task.cancel()


async def until(condition: Callable[[], object], timeout: float, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(0.02)


async def command(broker: Any, topics: Topics, seat: str, body: dict[str, Any] | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish(topics.seat_cmd(seat), data, qos=1)


def retained(broker: Any, topic: str, *, timeout: int = 5) -> dict[str, Any]:
    """The retained message on topic, read by mosquitto_sub: an independent client."""
    out = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-C", "1",
         "-W", str(timeout), "--retained-only"],
        capture_output=True, text=True, timeout=timeout + 5, check=False)  # fmt: skip
    assert out.returncode == 0 and out.stdout, f"no retained message on {topic}: {out.stderr}"
    body: dict[str, Any] = json.loads(out.stdout.splitlines()[0])
    return body


def check_delivery(collector: Collector, seats: Mapping[str, str], written: Iterable[tuple[str, int, int]]) -> dict[str, int]:  # noqa: E501
    """Every reliable frame a seat wrote (uid, boot, seq) reached the subscriber; none twice
    under another id (help events alternate on/off); each seat's frames in order. Returns
    counts for the test's message."""
    by_uid = {uid: seat for seat, uid in seats.items()}
    expected: dict[str, set[str]] = {}
    for uid, boot, seq in written:
        if uid in by_uid:
            expected.setdefault(by_uid[uid], set()).add(f"{uid}-{boot}-{seq}")
    total = repeats = 0
    for seat in seats:
        raw = collector.on("seat_event", seat=seat)
        events = collector.events(seat)
        repeats += len(raw) - len(events)
        ids = {e["id"] for e in events}
        missing = expected.get(seat, set()) - ids
        assert not missing, f"{seat}: {len(missing)} events lost, e.g. {sorted(missing)[:5]}"
        total += len(ids)
        last: tuple[int, int] | None = None
        for e in events:  # within a boot, seqs rise (mod 65535 never wraps in a test)
            key = (e["boot"], e["seq"])
            if last is not None and key[0] == last[0]:
                assert key[1] > last[1], f"{seat}: {key} after {last}: order broken"
            last = key
        helps = [(e["boot"], e["data"]["a"]) for e in events
                 if e["type"] == "event" and e["data"]["event"] == "help"]  # fmt: skip
        for a, b in zip(helps, helps[1:], strict=False):
            # each press toggles help; a boot starts with it cleared
            assert a != b, f"{seat}: help {a[1]} twice in a row in boot {a[0]}: a repeat"
    return {"events": total, "repeats": repeats}


def factory_files() -> dict[str, bytes]:
    """The micro:bit firmware files of this checkout, as a virtual farm's boards start."""
    return {f.name: f.data for f in firmware_bundle(board="microbit")}


def release_bundle(version: str, *, broken: bool = False) -> dict[str, Any]:
    """This checkout's micro:bit firmware stamped as another version (its hello says
    `version`), as a bundle document. `broken`: one part imports a module the board does not
    have, so the firmware never boots."""
    fileset = Firmware.checkout(version=version).for_kind("microbit")
    files = dict(fileset.files)
    if broken:
        files["fw3"] = b"import seatlink_missing_module\n" + files["fw3"]
    return bundle_document([FileSet("microbit", version, files)], version=version)
