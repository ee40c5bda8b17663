"""A PBX restarted in the middle of a campaign never dials a number of it again (issue 19):
the campaign's progress is in the PBX's store, written before each dial.

Real parts: the PBX service (in this process, then `seatlink pbx` as a process that is
SIGKILLed), a mosquitto of the suite's own, SQLite files. Two Ready seats are published as
an edge gateway would (retained seat states); the simulated callees never answer, so each
line ends after one ring and the seats stay Ready."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from edge_support import Collector, site, until
from pbx_support import run

from gateway.contract.payloads import SeatState
from gateway.contract.topics import Topics
from gateway.pbx.acd import Acd
from gateway.pbx.dialer import DecisionStore
from gateway.pbx.runner import build
from gateway.pbx.settings import PbxSettings

DAYTIME = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: inside the window
SEATS = ("s1", "s2")


def numbers(n: int) -> list[str]:
    """Shanghai numbers whose last four digits differ: a masked call event names one."""
    return [f"+86216123{4500 + i}" for i in range(1, n + 1)]


def write_campaign(path: Path, dial: list[str]) -> Path:
    entries = "".join(f'[[number]]\nnumber = "{n}"\nname = "callee {i}"\n'
                      for i, n in enumerate(dial, start=1))  # fmt: skip
    path.write_text('name = "renewals"\ncaller_id = "+862160000000"\nqueue = "sales"\n'
                    f"ring_limit = 1\n{entries}")  # fmt: skip
    return path


async def ready_seats(broker: Any, topics: Topics) -> None:
    """The seats' retained state, Ready, as their gateway publishes it."""
    now = time.time()
    async with aiomqtt.Client(broker.host, broker.port) as c:
        for i, seat in enumerate(SEATS):
            state = SeatState(seat=seat, gateway="gw1", board=f"5EA7000{i + 1}", boot=1,
                              state="ready", reason=None, call=None, since=now - 60 + i,
                              help=False, off_hook=False, hold_over_limit=False, pending=None,
                              misses=0, t=now)  # fmt: skip
            await c.publish(topics.seat_state(seat), state.dump(), qos=1, retain=True)


def dial_events(sub: Collector) -> list[dict[str, Any]]:
    """The `dial` call events heard, once each (by id)."""
    seen: dict[str, dict[str, Any]] = {}
    for topic, body, _ in sub.messages:
        if "/call/" in topic and body.get("type") == "dial":
            seen.setdefault(body["id"], body)
    return list(seen.values())


def decisions_by_number(store: Path) -> Counter[tuple[str, bool]]:
    """(full number, allowed) -> how many compliance decisions the store holds."""
    ds = DecisionStore(store)
    try:
        return Counter((d.decision.number, d.decision.allowed) for d in ds.recent(10_000))
    finally:
        ds.close()


def claimed(store: Path) -> set[str]:
    """The numbers of the campaign the store has recorded as taken."""
    with sqlite3.connect(store) as db:
        return {n for (n,) in db.execute(
            "SELECT number FROM campaign_progress WHERE campaign = 'renewals'")}  # fmt: skip


def test_a_restarted_pbx_resumes_its_campaign_without_dialling_a_number_again(
        tmp_path: Path, mqtt_broker: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    topics = site()
    dial = numbers(12)
    cfg = PbxSettings(pbx="pbxrestart", site=topics.site, root=topics.root,
                      broker={"host": mqtt_broker.host, "port": mqtt_broker.port},  # type: ignore[arg-type]
                      queues={"sales": {"seats": list(SEATS)}},  # type: ignore[dict-item]
                      ring_ms=1000, store=tmp_path / "pbx.db", health_interval_s=0.5,
                      compliance={"dnc": tmp_path / "dnc.db"},  # type: ignore[arg-type]
                      dialer={"campaigns": [write_campaign(tmp_path / "renewals.toml", dial)],  # type: ignore[arg-type]
                              "tick_s": 0.2, "callees": {"answer_p": 0.0}})  # fmt: skip
    # Every number the engine is asked to dial, whichever run asks: the real dial still runs.
    placed: list[str] = []
    real_dial = Acd.dial

    def watched(self: Acd, **kw: Any) -> int:
        placed.append(kw["number"])
        return real_dial(self, **kw)

    monkeypatch.setattr(Acd, "dial", watched)

    async def flow() -> None:
        sub = Collector(mqtt_broker, topics)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(sub.connected.wait(), 5)
        await ready_seats(mqtt_broker, topics)
        async with build(cfg, wall=lambda: DAYTIME) as pbx:
            await pbx.wait_online()
            await until(lambda: len(placed) >= 4, 20, "the first run's first dials")
        first = list(placed)
        assert len(first) < len(dial), "the first run ended the campaign: no restart tested"
        with caplog.at_level(logging.INFO, logger="seatlink.pbx"):
            async with build(cfg, wall=lambda: DAYTIME) as pbx:
                await pbx.wait_online()
                await until(lambda: pbx.health().campaigns["renewals"].remaining == 0, 30,
                            f"the campaign's end (placed so far: {placed})")  # fmt: skip
                health = pbx.health().campaigns["renewals"]
        task.cancel()
        # Every number once, across the two runs; the second run began after the first's.
        assert Counter(placed) == Counter(dial), f"first run {first}, in all {placed}"
        assert placed[: len(first)] == first and set(placed[len(first):]) == set(dial) - set(first)
        assert (health.dialled, health.denied, health.remaining) == (len(dial), 0, 0)
        masked = Counter(e["number"] for e in dial_events(sub))
        assert all(n == 1 for n in masked.values()), masked
        # The second run said what it skipped.
        said = [r.getMessage() for r in caplog.records if "renewals" in r.getMessage()]
        assert any(f"{len(first)} of {len(dial)} numbers already taken" in m for m in said), said

    run(flow, timeout=90)
    assert decisions_by_number(tmp_path / "pbx.db") == Counter({(n, True): 1 for n in dial})
    assert claimed(tmp_path / "pbx.db") == set(dial)


def test_seatlink_pbx_killed_mid_campaign_resumes_without_dialling_a_number_again(
        tmp_path: Path, mqtt_broker: Any) -> None:  # fmt: skip
    topics = site()
    dial = numbers(16)
    write_campaign(tmp_path / "renewals.toml", dial)
    cfg = tmp_path / "pbx.toml"
    # The real clock here: the calling window is the whole day so that the test runs at any
    # hour.
    cfg.write_text(
        f'pbx = "pbxkilled"\nsite = "{topics.site}"\nroot = "{topics.root}"\n'
        'store = "pbx.db"\nring_ms = 1000\nhealth_interval_s = 0.5\n'
        '[queues.sales]\nseats = ["s1", "s2"]\n'
        '[dialer]\ncampaigns = ["renewals.toml"]\ntick_s = 0.2\n'
        "[dialer.callees]\nanswer_p = 0.0\n"
        '[compliance]\ndnc = "dnc.db"\nwindow = [00:00:00, 23:59:59.999999]\n'
        f'[broker]\nhost = "{mqtt_broker.host}"\nport = {mqtt_broker.port}\n')
    store = tmp_path / "pbx.db"
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / "run1.log", tmp_path / "run2.log"]

    def start(log: Path) -> None:
        with log.open("wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "pbx", "-c",
                                           str(cfg)], stderr=err))  # fmt: skip

    async def flow() -> set[str]:
        sub = Collector(mqtt_broker, topics)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(sub.connected.wait(), 5)
        await ready_seats(mqtt_broker, topics)
        start(logs[0])
        await until(lambda: len(dial_events(sub)) >= 3, 30, "the first run's first dials")
        os.kill(procs[0].pid, signal.SIGKILL)  # whatever it was doing
        procs[0].wait(timeout=5)
        killed_at = time.time()  # every dial after this is the second run's
        taken = claimed(store)  # what the killed run recorded before it went
        assert len(taken) < len(dial), "the first run ended the campaign: no restart tested"
        start(logs[1])

        def finished() -> bool:
            health = sub.last("pbx_health", pbx="pbxkilled") or {}
            campaign = health.get("campaigns", {}).get("renewals", {})
            return campaign.get("remaining") == 0

        await until(finished, 40, f"the campaign's end ({len(dial_events(sub))} dials heard)")
        procs[1].terminate()
        assert procs[1].wait(timeout=10) == 0
        # the second run's dials, every one heard: it stopped cleanly
        second = [e for e in dial_events(sub) if e["t"] > killed_at]
        task.cancel()
        masked = Counter(e["number"] for e in dial_events(sub))
        assert all(n == 1 for n in masked.values()), f"a number dialled twice: {masked}"
        # a number whose dial event died with the killed process was claimed by it
        unheard = {n for n in dial if "***" + n[-4:] not in masked}
        assert unheard <= taken, (unheard, taken)
        assert {"***" + n[-4:] for n in set(dial) - taken} == {e["number"] for e in second}
        return taken

    try:
        taken = run(flow, timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
    assert claimed(store) == set(dial)
    decided = decisions_by_number(store)
    # a number is claimed before the gate is asked: never a second decision for one number
    assert all(n <= 1 for n in decided.values()), decided
    assert {n for n, _ in decided} <= set(dial)
    said = logs[1].read_text()
    assert f"renewals: {len(taken)} of {len(dial)} numbers already taken" in said, said
