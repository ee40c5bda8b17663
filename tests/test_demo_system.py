"""`seatlink demo` as a newcomer runs it: the whole system comes up with nothing configured,
the API shows live calls within 60 s, and Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(240)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_the_demo_shows_live_calls_and_stops_everything(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--seats", "8",
                             "--rate", "40", "--port", "0", "--keep", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while not any(line.startswith("  processes") for line in lines):
            line = proc.stdout.readline()
            assert line, "the demo ended before it was up:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"wallboard\s+(http://\S+)/wallboard/", text)
        login = re.search(r"supervisor\s+(\S+)\s+password\s+(\S+)", text)
        pids = [int(p) for p in re.findall(r"\w+ (\d+)", text.split("processes", 1)[1])]
        assert url and login, text
        assert len(pids) == 6, text  # broker, desks, edge, pbx, core, api
        base = url.group(1)
        form = {"username": login.group(1), "password": login.group(2)}
        token = httpx.post(base + "/auth/token", data=form).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        live: list[dict[str, object]] = []
        while not live:
            assert time.monotonic() - started < 60, "no live call on the API within 60 s"
            seats = httpx.get(base + "/seats", headers=headers).json()
            live = [s for s in seats if s["state"] in ("ringing", "talking", "hold") and s["call"]]
            time.sleep(0.5)
        assert len(seats) == 8 and all(s["online"] for s in seats)
        assert httpx.get(base + "/wallboard/").status_code == 200
        # the inventory tool against the demo's gateway, as the demo suggests
        while not any("seatlink inventory" in line for line in lines):
            lines.append(proc.stdout.readline())
        fleet = next(line for line in lines if "seatlink inventory" in line).split()[2:]
        listed = subprocess.run([sys.executable, "-m", "gateway.cli", "inventory", *fleet],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        rows = [r for r in listed.stdout.splitlines() if r.startswith("s0")]
        assert len(rows) == 8 and all(r.rstrip().endswith("online") for r in rows), listed.stdout
        assert "Floor 1, row A, desk 1" in listed.stdout
        # the remote update it suggests: two seats, one after the other, while calls go on
        while not any("seatlink update" in line for line in lines):
            lines.append(proc.stdout.readline())
        update = next(line for line in lines if "seatlink update" in line).split()[2:]
        updated = subprocess.run([sys.executable, "-m", "gateway.cli", "update", *update,
                                  "--json"], capture_output=True, text=True, timeout=300)
        assert updated.returncode == 0, updated.stderr + updated.stdout
        outcome = json.loads(updated.stdout)
        assert {s: b["stage"] for s, b in outcome["seats"].items()} == {"s001": "done",
                                                                        "s002": "done"}
        release = outcome["seats"]["s001"]["to_version"]

        def firmware() -> dict[str, str]:
            seats = httpx.get(base + "/seats", headers=headers).json()
            return {s["seat"]: s["firmware"] for s in seats if s["seat"] in ("s001", "s002")}

        deadline = time.monotonic() + 10
        while firmware() != {"s001": release, "s002": release}:
            assert time.monotonic() < deadline, f"the API shows {firmware()}, not {release}"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        status = proc.wait(60)
    assert status == 0
    time.sleep(0.5)
    assert [p for p in pids if _alive(p)] == []
    assert (tmp_path / "demo" / "core.db").exists()  # --keep keeps the work directory
    assert os.path.exists(tmp_path / "demo" / "api.log")
