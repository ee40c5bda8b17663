"""Fixtures every test suite may use: a mosquitto broker of its own, on a free loopback port.

Never the machine's shared broker on 1883: fault tests stop and restart theirs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.image import build_image
from gateway.rig import EmulatedBoard
from gateway.rig.qemu import unavailable_reason


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    config: Path
    saved: Path | None = None  # where a persistent broker keeps its sessions and queues

    def restart(self) -> None:
        """Start it again on the same port and config (after stop())."""
        self.stop()
        fresh = _launch(self.config, self.port)
        self.process = fresh

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _executable() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        reason = "mosquitto is not installed (make deps)"
        if os.environ.get("CI") == "true":  # CI installs it: a missing one is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    return exe


def start_broker(directory: Path, *, persistent: bool = False,
                 settings: Mapping[str, object] | None = None) -> Broker:  # fmt: skip
    """A mosquitto of the caller's own. `persistent`: sessions and queued QoS 1 messages
    survive stop() and restart(), as on a production broker. `settings`: more
    mosquitto.conf lines, name -> value (e.g. max_queued_messages)."""
    port = _free_port()
    config = directory / "mosquitto.conf"
    store, saved = "persistence false\n", None
    if persistent:
        # mosquitto started as root drops to its own user, which must reach and write the
        # directory (pytest's tmp_path is private to root): else it logs "Permission denied"
        # at exit and nothing survives a restart
        saved = Path(tempfile.mkdtemp(prefix="seatlink-mosquitto-"))
        saved.chmod(0o777)
        store = f"persistence true\npersistence_location {saved}/\n"
    more = "".join(f"{name} {value}\n" for name, value in (settings or {}).items())
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n{store}"
                      f"log_dest stderr\n{more}")  # fmt: skip
    return Broker("127.0.0.1", port, _launch(config, port), config, saved)


def _launch(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([_executable(), "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError(f"mosquitto did not listen on {port} within 10 s")


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A persistent broker for one test, to stop and restart (fault tests). More
    mosquitto.conf settings through indirect parametrization:
    `@pytest.mark.parametrize("own_broker", [{"max_queued_messages": 50}], indirect=True)`."""
    broker = start_broker(tmp_path, persistent=True, settings=getattr(request, "param", None))
    try:
        yield broker
    finally:
        broker.stop()
        if broker.saved is not None:
            shutil.rmtree(broker.saved, ignore_errors=True)


@pytest.fixture
def qemu_available() -> None:
    """QEMU and Debian's MicroPython are here; skipped where not, but failed under CI=true
    (CI installs them: a missing one is a failure)."""
    if reason := unavailable_reason():
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def qemu_image_board(
    qemu_available: None,
) -> Iterator[Callable[[dict[str, str] | None], EmulatedBoard]]:
    """Boot an emulated micro:bit on the seat image (built, or taken from the cache), with
    `extra` modules frozen beside the firmware; stopped after the test."""
    boards: list[EmulatedBoard] = []

    def boot(extra: dict[str, str] | None = None) -> EmulatedBoard:
        board = EmulatedBoard(firmware_hex=build_image(extra_modules=extra).path)
        boards.append(board)
        board.start(repl=False)
        return board

    yield boot
    for board in boards:
        board.stop()
