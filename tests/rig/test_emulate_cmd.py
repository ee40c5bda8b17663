"""`seatlink emulate`: JSON lines out, boards usable from outside, all gone on SIGTERM."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.rig import Gpio, RawRepl

pytestmark = pytest.mark.hil
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _json_lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while len(lines) < count:
            if not selector.select(timeout):
                raise TimeoutError(f"only {len(lines)} of {count} boards announced")
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"emulate exited with {proc.wait()}")
            lines.append(json.loads(line))
    return lines


def test_emulate_boots_announces_and_cleans_up(qemu_available: None) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "emulate", "-n", "2", "--no-install"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        boards = _json_lines(proc, 2, timeout=30)
        assert [b["board"] for b in boards] == [0, 1]
        assert len({b["serial"] for b in boards}) == 2
        assert all(_alive(b["pid"]) for b in boards)
        with RawRepl.open(boards[1]["serial"]) as repl:
            assert repl.exec("print(6 * 7)")[0] == "42\n"
        with Gpio.connect(boards[0]["gpio"]) as gpio:  # the rig let go of the socket
            assert gpio.light() == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not any(_alive(b["pid"]) for b in boards)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
