"""`seatlink emulate`: JSON lines out, boards usable from outside, all gone on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import serial

from gateway.image import build_image
from gateway.rig import Gpio, RawRepl
from gateway.seatlink.codec import FrameError, Kind, decode
from gateway.seatlink.messages import Hello

pytestmark = pytest.mark.hil
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _json_lines(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[dict[str, Any]]:
    """The first `count` lines of `proc`'s stdout, as JSON, within `timeout` seconds. The
    pipe's bytes are read here (os.read) and split into lines: select() on a buffered file
    followed by readline() waits forever when two lines arrive together, the second one
    sitting in Python's buffer where select() cannot see it."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    lines: list[dict[str, Any]] = []
    while True:
        while b"\n" in pending and len(lines) < count:
            line, pending = pending.split(b"\n", 1)
            lines.append(json.loads(line))
        if len(lines) == count:
            return lines
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"only {len(lines)} of {count} boards announced")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"emulate exited with {proc.wait()}")
        pending += chunk


def _uicr(repl: RawRepl) -> str:
    """UICR CUSTOMER[0..1], where the rig puts the board id, as the hello spells it."""
    out, _ = repl.exec(
        "import machine\n"
        "print('%08X%08X' % tuple(machine.mem32[0x10001080 + 4 * i] & 0xFFFFFFFF for i in (0, 1)))"
    )
    return out.strip()


@contextmanager
def _emulate(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`seatlink emulate ARGS` as a child, killed if a test leaves it running."""
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "emulate", *args], cwd=ROOT,
                            stdout=subprocess.PIPE)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stops_with_its_boards(proc: subprocess.Popen[bytes], boards: list[dict[str, Any]]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert not any(_alive(b["pid"]) for b in boards)


def test_emulate_boots_announces_and_cleans_up(qemu_available: None) -> None:
    with _emulate("-n", "2", "--bare") as proc:
        boards = _json_lines(proc, 2, timeout=30)
        assert [b["board"] for b in boards] == [0, 1]
        assert len({b["serial"] for b in boards}) == 2
        assert all(_alive(b["pid"]) for b in boards)
        uids = [b["uid"] for b in boards]
        assert uids[0] != uids[1] and all(re.fullmatch("[0-9A-F]{16}", u) for u in uids)
        with RawRepl.open(boards[1]["serial"]) as repl:
            assert repl.exec("print(6 * 7)")[0] == "42\n"
            assert _uicr(repl) == uids[1]
            repl.hard_reset()  # machine.reset(): the rig writes the id again
        with RawRepl.open(boards[1]["serial"]) as repl:
            repl.interrupt()
            assert _uicr(repl) == uids[1]
        with Gpio.connect(boards[0]["gpio"]) as gpio:  # the rig let go of the socket
            assert gpio.light() == 0
            gpio.reset()  # AIRCR from this client; answered once the board is back, id and all
        with RawRepl.open(boards[0]["serial"]) as repl:
            assert _uicr(repl) == uids[0]
        _stops_with_its_boards(proc, boards)


def _hello(url: str, gpio_path: str, timeout: float) -> Hello:
    """Reset the board through its GPIO socket and read the hello its firmware then sends."""
    port = serial.serial_for_url(url, timeout=0.1)
    try:
        with Gpio.connect(gpio_path) as gpio:
            gpio.reset()
        deadline, pending = time.monotonic() + timeout, b""
        while time.monotonic() < deadline:
            pending += port.read(256)
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    frame = decode(line)
                except FrameError:
                    continue
                if frame.kind is Kind.HELLO:
                    return Hello.from_frame(frame)
        raise TimeoutError(f"no hello from {url} in {timeout} s")
    finally:
        port.close()


def test_emulate_boots_the_seat_image_by_default(qemu_available: None) -> None:
    image = build_image()
    with _emulate("-n", "2") as proc:
        boards = _json_lines(proc, 2, timeout=60)
        hellos = [_hello(b["serial"], b["gpio"], timeout=20) for b in boards]
        assert [h.uid for h in hellos] == [b["uid"] for b in boards]
        assert len({h.uid for h in hellos}) == 2  # an inventory tells them apart
        assert {(h.board, h.firmware) for h in hellos} == {("microbit", image.version)}
        _stops_with_its_boards(proc, boards)


def test_emulate_refuses_a_missing_image(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "emulate", "--image",
                           str(tmp_path / "none.hex")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "no file" in proc.stderr
