"""gateway.edge.drain_process: the drainer child ends quietly when its gateway is gone.

The gateway here is a small parent process that starts the drainer exactly as the edge
service does (`DrainProcess`) on an outbox holding a backlog, so that the child is busy
publishing when its parent goes: SIGKILLed (the pipe closes under the child), or stopped
with Ctrl-C (the whole process group gets SIGINT, the parent stops the child). The
child's main is also run in the test's process, with a stand-in for the broker side that
loses its cancellation as aiomqtt's waits can (gateway/aio.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import aiomqtt
import pytest
from edge_support import site

from gateway.edge import drain_process
from gateway.edge.drain import Drainer
from gateway.edge.drain_process import DrainConfig, DrainProcess
from gateway.edge.outbox import Outbox, Record, event_id

pytestmark = pytest.mark.timeout(120)

BACKLOG = 20_000  # events: seconds of publishing, so the child is mid-stream when it ends

# The gateway's side: DrainProcess as the edge service starts it. Prints the child's pid,
# then "publishing" once the broker has taken the first events; Ctrl-C stops it cleanly.
PARENT = """
import asyncio, json, signal, sys
from pathlib import Path
from gateway.edge import drain_process
from gateway.edge.drain import Drainer
from gateway.edge.drain_process import DrainConfig, DrainProcess

async def main(a):
    config = DrainConfig(outbox=Path(a["outbox"]), site=a["site"], root=a["root"],
                         host=a["host"], port=a["port"], identifier=a["identifier"],
                         username=None, password=None, keepalive_s=30, backoff_s=(0.2, 5.0))
    delivered = asyncio.Event()
    drain = DrainProcess(config, on_lease=lambda _: None,
                         on_delivered=lambda _: delivered.set())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    await drain.start()
    print(drain.pid, flush=True)
    await delivered.wait()
    print("publishing", flush=True)
    await stop.wait()
    await drain.stop()

asyncio.run(main(json.loads(sys.argv[1])))
"""


def backlog(path: Path, count: int) -> None:
    with Outbox(path) as box:
        box.put_many([Record(f"B{i % 4}", 1, i // 4 + 1, f"s{i % 4}",
                             json.dumps({"v": 1, "id": event_id(f"B{i % 4}", 1, i // 4 + 1)}
                                        ).encode()) for i in range(count)])  # fmt: skip


def read_line(stream: IO[bytes], timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no line from the parent within {timeout} s")
    return stream.readline().decode().strip()


def alive(pid: int) -> bool:
    """Not exited: an orphan is reaped by whoever adopts it, so a zombie counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pid: int, timeout: float) -> float:
    start = time.monotonic()
    while alive(pid):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"the drainer (pid {pid}) still runs {timeout} s after its "
                                 "gateway went")  # fmt: skip
        time.sleep(0.01)
    return time.monotonic() - start


@contextmanager
def gateway_parent(tmp_path: Path, broker: Any, **popen: Any
                   ) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:  # fmt: skip
    """The parent with its drainer publishing a backlog: (parent, drainer pid, the file
    both write their stderr to). Both are killed afterwards if still running."""
    outbox = tmp_path / "outbox.db"
    backlog(outbox, BACKLOG)
    topics = site()
    args = {"outbox": str(outbox), "site": topics.site, "root": topics.root,
            "host": broker.host, "port": broker.port, "identifier": "drain-" + topics.site}
    err = tmp_path / "stderr.txt"
    with err.open("wb") as stderr:
        parent = subprocess.Popen([sys.executable, "-c", PARENT, json.dumps(args)],
                                  stdout=subprocess.PIPE, stderr=stderr, **popen)  # fmt: skip
    child = 0
    try:
        assert parent.stdout is not None
        child = int(read_line(parent.stdout, 30))
        assert read_line(parent.stdout, 30) == "publishing"
        yield parent, child, err
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)


def quiet(err: Path) -> None:
    text = err.read_text(errors="replace")
    noise = [line for line in text.splitlines()
             if any(w in line for w in ("Traceback", "Error", "ERROR", "KeyboardInterrupt"))]
    assert not noise, f"the drainer's stderr:\n{text[-3000:]}"


def test_an_orphaned_drainer_exits_quietly_and_promptly(tmp_path: Path, mqtt_broker: Any) -> None:
    with gateway_parent(tmp_path, mqtt_broker) as (parent, child, err):
        os.kill(parent.pid, signal.SIGKILL)  # the gateway's SIGKILL: the pipe closes
        parent.wait(timeout=10)
        wait_gone(child, 10)  # and with it, what it was publishing as an orphan
    quiet(err)


def test_ctrl_c_stops_the_drainer_quietly(tmp_path: Path, mqtt_broker: Any) -> None:
    with gateway_parent(tmp_path, mqtt_broker, start_new_session=True) as (parent, child, err):
        os.killpg(parent.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole group
        assert parent.wait(timeout=20) == 0
        wait_gone(child, 10)
    quiet(err)


def test_a_drainer_that_fails_otherwise_exits_and_is_replaced(
    tmp_path: Path, mqtt_broker: Any
) -> None:
    """Not an MQTT error (here: a file that is no outbox) ends the child with it, instead of
    leaving it alive and idle, so the gateway's watchdog starts another."""
    not_an_outbox = tmp_path / "other.db"
    sqlite3.connect(not_an_outbox).close()
    topics = site()
    config = DrainConfig(outbox=not_an_outbox, site=topics.site, root=topics.root,
                         host=mqtt_broker.host, port=mqtt_broker.port,
                         identifier="drain-" + topics.site, username=None, password=None,
                         keepalive_s=30, backoff_s=(0.2, 5.0))  # fmt: skip

    async def scenario() -> None:
        drain = DrainProcess(config, on_lease=lambda _: None, on_delivered=lambda _: None)
        await drain.start()
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while drain.restarts < 1:
                assert asyncio.get_running_loop().time() < deadline, "the child never ended"
                await asyncio.sleep(0.05)
        finally:
            await drain.stop()

    asyncio.run(scenario())


def child_config(outbox: Path) -> DrainConfig:
    """For the child's main run in this process: it never reaches a broker here."""
    return DrainConfig(outbox=outbox, site="t", root="seatlink", host="127.0.0.1", port=1,
                       identifier="drain-test", username=None, password=None, keepalive_s=30,
                       backoff_s=(0.2, 5.0))  # fmt: skip


def orphaned_child(outbox: Path, exits: list[int]) -> float:
    """Run the child's main with its gateway gone from the start (the pipe's other end
    closed); seconds until it returned. `exits`: the codes of any forced exit."""

    async def scenario() -> float:
        parent, child = multiprocessing.Pipe(duplex=True)
        parent.close()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(drain_process._child_main(child_config(outbox), child,
                                                         exit_now=exits.append), 30)  # fmt: skip
        child.close()
        return loop.time() - start

    return asyncio.run(scenario())


def test_a_drainer_that_lost_its_cancellation_ends_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The cancellation that ends the drainer can be lost: aiomqtt waits for the CONNACK
    with asyncio.wait_for, which on Python 3.11 drops a cancel that comes in the same turn
    as the CONNACK. The drainer then goes on; its next read of the outbox ends it."""
    backlog(tmp_path / "outbox.db", 10)
    lost: list[bool] = []

    async def bridge(*, drainer: Drainer, **_: Any) -> None:
        try:
            await asyncio.sleep(3600)  # connecting
        except asyncio.CancelledError:
            lost.append(True)  # connected in the same turn: the cancel is gone
        await drainer.run(cast(aiomqtt.Client, None))  # it must publish nothing

    monkeypatch.setattr(drain_process, "bridge", bridge)
    exits: list[int] = []
    with caplog.at_level(logging.WARNING):
        orphaned_child(tmp_path / "outbox.db", exits)
    assert lost, "the stand-in was not cancelled"
    assert not exits, "it ended only by the forced exit, after STOP_S"
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_a_drainer_whose_tasks_do_not_end_is_exited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort: tasks that still run STOP_S after the stop (a lost cancellation
    where nothing reads the outbox again) would keep asyncio.run's shutdown waiting for
    ever; the child exits instead."""
    backlog(tmp_path / "outbox.db", 10)

    async def bridge(**_: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # lost
        await asyncio.sleep(3600)  # ended by this test's own loop shutdown

    monkeypatch.setattr(drain_process, "bridge", bridge)
    monkeypatch.setattr(drain_process, "STOP_S", 0.2)
    exits: list[int] = []
    orphaned_child(tmp_path / "outbox.db", exits)
    assert exits == [0]
