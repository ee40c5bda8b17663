"""`seatlink core` on the command line: bad settings refused with the key named, and the
daily KPI and monthly attendance reports written from a real store."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.contract.topics import Topics
from gateway.core.store import open_store
from tools.trace import generate

DAY_START = 1_768_492_800.0  # 2026-01-16 00:00 in Asia/Shanghai, a Friday in the past


def seatlink(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "core", *args],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "core.toml"
    path.write_text(f'site = "hq"\nstore = "core.db"\ntimezone = "Asia/Shanghai"\n{extra}')
    return path


def test_settings_mistakes_are_refused_with_the_key_named(tmp_path: Path) -> None:
    for extra, named in (('colour = "red"\n', "colour"),
                         ('timezone = "Mars/Olympus"\n', "Mars/Olympus"),
                         ("ring_limit = 0\n", "ring_limit"),
                         ("[targets]\nring_limit = 0\n", "targets.ring_limit"),
                         ("[alerts]\nhold_max_s = -1\n", "hold_max_s"),
                         ("[alerts]\nhold_max = 30\n", "hold_max")):  # fmt: skip
        path = tmp_path / "bad.toml"
        path.write_text(f'site = "hq"\n{extra}')
        done = seatlink("-c", str(path), "--report", "2026-01-16")
        assert done.returncode == 2, (extra, done.stderr)
        assert named in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "core.db").exists()  # nothing was opened
    done = seatlink("-c", str(config(tmp_path)), "--report", "15/01/2027")
    assert done.returncode == 2 and "YYYY-MM-DD" in done.stderr
    done = seatlink("-c", str(config(tmp_path)), "--attendance", "2026-01")
    assert done.returncode == 2 and "schedule" in done.stderr


def fill(store_path: Path) -> int:
    """A generated day (12 seats, 08:00-12:00 local) stored as the core would: the day's
    answered calls."""
    trace = generate(seats=12, queues=2, start=DAY_START + 8 * 3600, hours=4, seed=3,
                     encode=True)  # fmt: skip
    topics = Topics(site="hq")
    messages = [(topics.seat_event(i) if k == "seat" else topics.topic("call_event", call=i), b)
                for k, i, b in trace.encoded]  # fmt: skip
    answered = sum(b'"type":"answer"' in b for _, b in messages)
    # agents a1 and a2 sign in at the first two seats before the day, b<n> at the others
    for n, seat in enumerate(sorted({i for k, i, _ in trace.encoded if k == "seat"}), 1):
        change = {"v": 1, "id": f"api-{n}", "seat": seat, "agent": f"a{n}" if n < 3 else
                  f"b{n}", "name": None, "t": DAY_START, "by": "sup", "cause": "self",
                  "previous": None}  # fmt: skip
        messages.append((topics.topic("seat_agent", seat=seat), json.dumps(change).encode()))
    with open_store(store_path, topics=topics, clock=lambda: DAY_START + 86400) as store:
        result = store.ingest(messages)
        assert result.stored == len(messages)
    return answered


def test_the_daily_report_is_written_from_the_store(tmp_path: Path) -> None:
    answered = fill(tmp_path / "core.db")
    done = seatlink("-c", str(config(tmp_path)), "--report", "2026-01-16", "--out",
                    str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "out" / "kpi-hq-2026-01-16.html").read_text()
    rows = list(csv.DictReader(io.StringIO(
        (tmp_path / "out" / "kpi-hq-2026-01-16.csv").read_text())))  # fmt: skip
    day = [r for r in rows if r["by"] == "site" and r["start"].startswith("2026-01-16T00:00")
           and r["end"].startswith("2026-01-17T00:00")]  # fmt: skip
    assert len(day) == 1 and int(day[0]["answered"]) == answered > 50
    assert f">{answered}<" in html.replace(",", "")
    assert {r["by"] for r in rows} == {"site", "queue", "agent", "seat"}
    # the day before has nothing: a report that says so, not an error
    done = seatlink("-c", str(config(tmp_path)), "--report", "2026-01-15", "--out",
                    str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_attendance_report_is_written_from_the_store_and_the_schedule(
        tmp_path: Path) -> None:  # fmt: skip
    fill(tmp_path / "core.db")
    # the schedule names agents: a1 and a2 signed in at s0001 and s0002, a99 nowhere
    agents = (("a1", "08:00-12:00"), ("a2", "07:00-12:00"), ("a99", "08:00-12:00"))
    (tmp_path / "schedule.toml").write_text('zone = "Asia/Shanghai"\n' + "".join(
        f'[[agent]]\nid = "{a}"\n[agent.days]\n2026-01-16 = "{shift}"\n'
        for a, shift in agents))  # fmt: skip
    path = config(tmp_path, 'schedule = "schedule.toml"\n')
    done = seatlink("-c", str(path), "--attendance", "2026-01", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = {r["agent"]: r for r in csv.DictReader(io.StringIO(
        (tmp_path / "attendance-hq-2026-01.csv").read_text()))}  # fmt: skip
    # the trace logs its seats in within 10 min of 08:00: a2's 07:00 start makes a2 over an
    # hour late (a half day), a99 never signs in anywhere (absent)

    assert int(rows["a1"]["half_days"]) == 0 and int(rows["a1"]["absences"]) == 0
    assert int(rows["a2"]["half_days"]) >= 1 and int(rows["a2"]["late"]) == 1
    assert int(rows["a99"]["absences"]) == 1
    assert (rows["a1"]["seats"], rows["a99"]["seats"]) == ("s0001", "")
    assert "a99" in (tmp_path / "attendance-hq-2026-01.html").read_text()


def test_a_worker_runs_until_sigterm_and_says_offline(mqtt_broker: Any, tmp_path: Path) -> None:
    import signal
    import time

    import paho.mqtt.subscribe as subscribe

    path = config(tmp_path, f'[broker]\nhost = "{mqtt_broker.host}"\nport = {mqtt_broker.port}\n')
    command = [sys.executable, "-m", "gateway.cli", "core", "-c", str(path)]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    topic = Topics(site="hq").topic("core_status", core="core-1")
    try:
        deadline = time.monotonic() + 30
        status: dict[str, Any] = {}
        while status.get("status") != "online" and time.monotonic() < deadline:
            assert worker.poll() is None, worker.communicate()
            message = subscribe.simple(topic, hostname=mqtt_broker.host, port=mqtt_broker.port,
                                       retained=True)  # fmt: skip
            status = json.loads(message.payload)  # type: ignore[union-attr]
        assert status["status"] == "online"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    message = subscribe.simple(topic, hostname=mqtt_broker.host, port=mqtt_broker.port,
                               retained=True)  # fmt: skip
    assert json.loads(message.payload)["status"] == "offline"  # type: ignore[union-attr]
    assert (tmp_path / "core.db").exists()
