"""`seatlink demo` as a newcomer runs it: the whole system comes up with nothing configured,
the API shows live calls within 60 s, the two emulated micro:bits (QEMU, the seat image) take
calls beside the virtual seats, and Ctrl-C stops every process it started, QEMU included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.rig.qemu import unavailable_reason

pytestmark = pytest.mark.timeout(240)
EMULATED = ("s009", "s010")  # after the 8 virtual seats


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


class Answered:
    """Seats seen talking on a call, from GET /seats every 0.5 s (a call talks 5 s at least),
    on a thread of its own while the test goes on."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.calls: dict[str, set[int]] = {}
        self.seats: list[dict[str, object]] = []
        self._base, self._headers = base, headers
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="answered", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(headers=self._headers, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    seats = client.get(self._base + "/seats").json()
                except httpx.HTTPError:
                    seats = []  # the API stopping: the test says what it missed
                with self._changed:
                    self.seats = seats or self.seats
                    for s in seats:
                        if s["state"] == "talking" and s["call"]:
                            self.calls.setdefault(s["seat"], set()).add(s["call"])
                    self._changed.notify_all()
                self._stop.wait(0.5)

    def wait(self, seats: tuple[str, ...], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: all(s in self.calls for s in seats), timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def test_the_demo_shows_live_calls_and_stops_everything(tmp_path: Path) -> None:
    if reason := unavailable_reason():
        if os.environ.get("CI") == "true":  # CI installs QEMU: a missing one is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--seats", "8",
                             "--rate", "40", "--port", "0", "--keep", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    lines: list[str] = []
    answered: Answered | None = None
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
        assert len(pids) == 7, text  # broker, desks, microbits, edge, pbx, core, api
        # the emulated micro:bits, after the processes: seat, board uid, serial URL, QEMU pid
        while not any(line.startswith("The fleet") for line in lines):
            lines.append(proc.stdout.readline())
            assert lines[-1], "the demo ended before its summary:\n" + "".join(lines)
        boards = re.findall(r"^  (s\d+)  board ([0-9A-F]+)  (socket://\S+)  QEMU pid (\d+)$",
                            "".join(lines), re.MULTILINE)  # fmt: skip
        assert [b[0] for b in boards] == list(EMULATED), "".join(lines)
        assert len({b[1] for b in boards}) == 2, boards  # a board id each
        qemu = [int(b[3]) for b in boards]
        assert all(_alive(p) for p in qemu)
        base = url.group(1)
        form = {"username": login.group(1), "password": login.group(2)}
        token = httpx.post(base + "/auth/token", data=form).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        answered = Answered(base, headers)
        live: list[dict[str, object]] = []
        while not live:
            assert time.monotonic() - started < 60, "no live call on the API within 60 s"
            seats = httpx.get(base + "/seats", headers=headers).json()
            live = [s for s in seats if s["state"] in ("ringing", "talking", "hold") and s["call"]]
            time.sleep(0.5)
        deadline = time.monotonic() + 30
        while not (len(seats) == 10 and all(s["online"] and s["board_name"] for s in seats)):
            assert time.monotonic() < deadline, f"not every seat online: {seats}"
            time.sleep(0.5)
            seats = httpx.get(base + "/seats", headers=headers).json()
        by_seat = {s["seat"]: s for s in seats}
        for seat, uid, _, _ in boards:  # the emulated ones, as the API shows them
            assert by_seat[seat]["board_name"] == "microbit", by_seat[seat]
            assert by_seat[seat]["board"] == uid
            assert by_seat[seat]["firmware"] == by_seat["s001"]["firmware"]  # this checkout's
        assert {s["board_name"] for s in seats if s["seat"] not in EMULATED} == {"virtual"}
        assert httpx.get(base + "/wallboard/").status_code == 200
        # the inventory tool against the demo's gateway, as the demo suggests
        while not any("seatlink inventory" in line for line in lines):
            lines.append(proc.stdout.readline())
        fleet = next(line for line in lines if "seatlink inventory" in line).split()[2:]
        listed = subprocess.run([sys.executable, "-m", "gateway.cli", "inventory", *fleet],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        rows = [r for r in listed.stdout.splitlines() if r.startswith("s0")]
        assert len(rows) == 10 and all(r.rstrip().endswith("online") for r in rows), listed.stdout
        assert "Floor 1, row A, desk 1" in listed.stdout
        assert "Floor 1, row B, desk 2" in next(r for r in rows if r.startswith("s010"))
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
        # a call answered at each emulated micro:bit: its robot pressed ANSWER on its pin
        assert answered.wait(EMULATED, 60), f"talking on a call: {sorted(answered.calls)}"
        # agents at seats, end to end: each robot signed in with its own account (the API),
        # its seat took the login (edge, seat), the tiles name it (API), and the core books
        # the micro:bit's calls to the agent signed in there, not to the desk
        seats = httpx.get(base + "/seats", headers=headers).json()
        agents = {s["seat"]: (s["agent"], s["agent_name"]) for s in seats}
        assert all(a and n for a, n in agents.values()), agents
        assert len({a for a, _ in agents.values()}) == 10, agents  # one agent per seat
        agent = agents[EMULATED[0]][0]

        def handled() -> int:
            got = httpx.get(f"{base}/kpis/agent/{agent}", headers=headers)
            return int(got.json()["windows"]["today"]["handled"]) if got.status_code == 200 else 0

        deadline = time.monotonic() + 90  # a call to end, then the agents' 15 s publishing
        while handled() < 1:
            assert time.monotonic() < deadline, f"no handled call booked to {agent}"
            time.sleep(1)
        assert httpx.get(f"{base}/kpis/agent/{EMULATED[0]}", headers=headers).status_code == 404
    finally:
        if answered is not None:
            answered.stop()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        status = proc.wait(60)
    assert status == 0
    deadline = time.monotonic() + 5
    while [p for p in pids + qemu if _alive(p)]:  # the QEMUs too, which the demo's child ran
        assert time.monotonic() < deadline, [p for p in pids + qemu if _alive(p)]
        time.sleep(0.1)
    assert (tmp_path / "demo" / "core.db").exists()  # --keep keeps the work directory
    assert os.path.exists(tmp_path / "demo" / "api.log")


def test_without_qemu_the_demo_says_what_is_missing_and_goes_on_without_micro_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.demo.system import DemoOptions, DemoSystem

    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without qemu-system-arm
    said: list[str] = []
    system = DemoSystem(DemoOptions(emulated=2, say=said.append))
    assert system._image() is None  # the demo goes on with its virtual seats
    assert len(said) == 1, said
    assert "qemu-system-arm is not installed" in said[0] and "`make deps`" in said[0], said
