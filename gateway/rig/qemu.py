"""An emulated BBC micro:bit v1 in QEMU (`-M microbit`) running Debian's MicroPython build.

Per board: the UART on a localhost TCP port (`socket://` for pyserial), GPIO over a qtest
unix socket, QMP for hard reset and reset events, all in a private temp directory.
`flash_image` flashes a whole image as the board's DAPLink would (gateway.rig.drive).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.rig.emulator import Emulator, EmulatorError
from gateway.rig.gpio import Gpio
from gateway.rig.hexfile import read_image_file
from gateway.rig.pins import BoardPins, microbit_pins
from gateway.rig.qmp import Qmp, QmpError
from gateway.rig.qtest import QtestPort
from gateway.rig.spawn import spawn

FIRMWARE_PACKAGE = "firmware-microbit-micropython"
HEX_ENV = "SEATLINK_MICROBIT_HEX"
_PORT_ATTEMPTS = 5

_live: weakref.WeakSet[QemuMicrobit] = weakref.WeakSet()
_live_lock = threading.Lock()


@functools.cache
def unavailable_reason() -> str | None:
    """Why no emulated board can start here (QEMU or the firmware missing), or None."""
    if shutil.which("qemu-system-arm") is None:
        return "qemu-system-arm is not installed (make deps)"
    try:
        find_firmware_hex()
    except EmulatorError as exc:
        return str(exc)
    return None


def find_firmware_hex() -> Path:
    """$SEATLINK_MICROBIT_HEX, else the firmware.hex of the Debian package."""
    if env := os.environ.get(HEX_ENV):
        return Path(env)
    try:
        listing = subprocess.run(
            ["dpkg", "-L", FIRMWARE_PACKAGE], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmulatorError(
            f"no MicroPython hex: install {FIRMWARE_PACKAGE} (make deps) or set {HEX_ENV}"
        ) from exc
    for line in listing.splitlines():
        if line.endswith("/firmware.hex"):
            return Path(line)
    raise EmulatorError(f"{FIRMWARE_PACKAGE} lists no firmware.hex")


def free_tcp_port() -> int:
    """A port that was free a moment ago; QEMU may still lose it to a race (we retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class QemuMicrobit(Emulator):
    def __init__(
        self,
        *,
        firmware_hex: Path | None = None,
        pins: BoardPins | None = None,
        qemu: str = "qemu-system-arm",
    ) -> None:
        self._hex = firmware_hex
        self._pins = pins or microbit_pins()
        self._qemu = qemu
        self._proc: subprocess.Popen[bytes] | None = None
        self._qmp: Qmp | None = None
        self._dir: Path | None = None
        self._port = 0
        self._reset_callbacks: list[Callable[[], None]] = []
        self._lock = threading.RLock()  # flash_image against stop
        self._flashing = False

    # Emulator interface.

    @property
    def running(self) -> bool:
        # a board being flashed is running: its QEMU is replaced, not stopped
        return self._flashing or (self._proc is not None and self._proc.poll() is None)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def serial_url(self) -> str:
        self._require_started()
        return f"socket://127.0.0.1:{self._port}"

    @property
    def gpio_address(self) -> str:
        return str(self._socket("qtest.sock"))

    @property
    def log_path(self) -> Path:
        """QEMU's own stdout/stderr."""
        return self._socket("qemu.log")

    def start(self, *, timeout: float = 10.0) -> None:
        if self._proc is not None:
            raise EmulatorError("already started")
        self._dir = Path(tempfile.mkdtemp(prefix="seatlink-rig-"))
        hex_path = self._hex or find_firmware_hex()
        with _live_lock:
            _live.add(self)
        try:
            for _ in range(_PORT_ATTEMPTS):
                self._port = free_tcp_port()
                # A fresh log per try: a stale bind error must not explain a later failure.
                self.log_path.unlink(missing_ok=True)
                self._proc = spawn(self._argv(hex_path), log_path=self.log_path)
                if self._await_qmp(timeout):
                    return
                self._proc = None
            raise EmulatorError(f"QEMU could not bind a serial port in {_PORT_ATTEMPTS} tries")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        with _live_lock:
            _live.discard(self)

    def reset(self) -> None:
        self._require_started()
        assert self._qmp is not None
        self._qmp.execute("system_reset")

    def on_reset(self, callback: Callable[[], None]) -> None:
        self._reset_callbacks.append(callback)

    def flash_image(self, image: Path, *, timeout: float = 10.0) -> None:
        """Flash a whole image (Intel HEX) as the board's DAPLink does: the chip is erased
        (firmware, filesystem, RAM) and the board starts in the new image. QEMU is started
        again on it, on the same serial TCP port and qtest/QMP socket paths, so the serial
        URL stays; a connected serial, qtest or QMP client loses its connection and connects
        again (no RESET event: it is a new process). HexError for a file that is not an
        nRF51 image, before the board is touched; EmulatorError if the serial port was taken
        meanwhile (the board is then stopped)."""
        read_image_file(image)
        with self._lock:
            self._require_started()
            flashed = self._socket("flashed.hex")
            shutil.copyfile(image, flashed)
            self._flashing = True
            try:
                if self._qmp is not None:
                    self._qmp.close()
                    self._qmp = None
                proc, self._proc = self._proc, None
                if proc is not None:
                    _end(proc)
                for name in ("qmp.sock", "qtest.sock"):
                    self._socket(name).unlink(missing_ok=True)
                self.log_path.unlink(missing_ok=True)
                self._proc = spawn(self._argv(flashed), log_path=self.log_path)
                if not self._await_qmp(timeout):
                    self._proc = None
                    raise EmulatorError(f"the serial port {self._port} was taken while the "
                                        "board was being flashed")  # fmt: skip
            except BaseException:
                self._flashing = False
                self._stop()
                raise
            finally:
                self._flashing = False

    def open_gpio(self) -> Gpio:
        self._require_started()
        return Gpio(port=QtestPort.connect(self.gpio_address), pins=self._pins)

    # Internals.

    def _argv(self, hex_path: Path) -> list[str]:
        return [
            self._qemu, "-M", "microbit",
            # qtest only serves while the CPU runs when the accelerator is given explicitly.
            "-accel", "tcg",
            "-device", f"loader,file={hex_path}",
            "-display", "none", "-monitor", "none",
            # nodelay: without it Nagle + delayed ACK add ~40 ms to every REPL round trip.
            "-serial", f"tcp:127.0.0.1:{self._port},server=on,wait=off,nodelay=on",
            "-qtest", f"unix:{self._socket('qtest.sock')},server=on,wait=off",
            # qtest logs every line (330 display IRQs/s) to stderr unless told otherwise.
            "-qtest-log", os.devnull,
            "-qmp", f"unix:{self._socket('qmp.sock')},server=on,wait=off",
        ]  # fmt: skip

    def _await_qmp(self, timeout: float) -> bool:
        """True once QMP answers (QEMU creates every chardev before it serves QMP); False if
        QEMU exited because the serial port was taken."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        path = str(self._socket("qmp.sock"))
        while True:
            if self._proc.poll() is not None:
                log = self.log_path.read_text(errors="replace")
                if "bind" in log.lower() or "in use" in log.lower():
                    return False
                raise EmulatorError(f"QEMU exited with {self._proc.returncode}: {log[-2000:]}")
            if os.path.exists(path):
                try:
                    self._qmp = Qmp.connect(path, timeout=0)
                except QmpError:
                    pass
                else:
                    self._qmp.add_listener(self._on_event)
                    return True
            if time.monotonic() > deadline:
                raise EmulatorError(f"QEMU did not come up in {timeout} s; see {self.log_path}")
            time.sleep(0.005)

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "RESET":
            for callback in list(self._reset_callbacks):
                callback()

    def _socket(self, name: str) -> Path:
        self._require_started()
        assert self._dir is not None
        return self._dir / name

    def _require_started(self) -> None:
        if self._dir is None:
            raise EmulatorError("emulator not started")


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Stop one child we started: SIGTERM, then SIGKILL; always reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        emulators = list(_live)
    for emulator in emulators:
        emulator.stop()
