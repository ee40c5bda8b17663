"""An emulated BBC micro:bit v1 in QEMU (`-M microbit`) running Debian's MicroPython build.

Per board: the UART on a localhost TCP port (`socket://` for pyserial), GPIO over a qtest
unix socket, QMP for hard reset and reset events, all in a private temp directory.

Each board has its own id (`uid`), in UICR CUSTOMER[0..1], where boards/microbit.py reads it.
QEMU 7.2 erases UICR on every reset (nrf51_nvm_reset), before any reset handler a `-device
loader` could add, and writes a hex file's ROM data to RAM and flash only. So the rig holds
the board at every reset and writes the id itself before the CPU runs: QEMU starts paused
(`-S`) and turns every reset request, the guest's and QMP's, into a pause
(`-action reboot=shutdown,shutdown=pause`). On that SHUTDOWN event a worker thread resets
the machine (`set-action reboot=reset`, `system_reset`), writes the id over qtest, runs the
reset callbacks (re-driven inputs land before the firmware starts) and continues the CPU.
qtest takes one connection: the emulator holds it and serves GPIO clients through a relay
(gateway.rig.qtest_relay).
`flash_image` flashes a whole image as the board's DAPLink would (gateway.rig.drive).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import os
import queue
import re
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
from gateway.rig.qtest import QtestError, QtestPort
from gateway.rig.qtest_relay import QtestRelay, ResetCounter
from gateway.rig.spawn import spawn

FIRMWARE_PACKAGE = "firmware-microbit-micropython"
HEX_ENV = "SEATLINK_MICROBIT_HEX"
_PORT_ATTEMPTS = 5
UICR_CUSTOMER = 0x10001080
"""nRF51 UICR CUSTOMER[0]; the board id is CUSTOMER[0] and [1] (boards/microbit.py)."""
ERASED_UID = "F" * 16
"""What erased UICR reads as: the board then reports its FICR device id instead."""
_RESET_STEP_S = 5.0
_uids = itertools.count(1)
_log = logging.getLogger(__name__)

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


def board_uid(uid: str | bytes | None = None) -> str:
    """A board id as its hello reports it: 16 upper-case hex digits. `uid` as 8 bytes or 16
    hex digits; None: a new one, distinct from every other board this host runs at the same
    time ("5EA7", this process's pid, a counter)."""
    if uid is None:
        return f"5EA7{os.getpid() & 0xFFFFFF:06X}{next(_uids) & 0xFFFFFF:06X}"
    text = uid.hex() if isinstance(uid, bytes) else uid
    if not re.fullmatch(r"[0-9A-Fa-f]{16}", text):
        raise ValueError(f"a board uid is 8 bytes or 16 hex digits, not {uid!r}")
    if text.upper() == ERASED_UID:
        raise ValueError("uid FFFFFFFFFFFFFFFF reads as erased UICR: the board would not report it")
    return text.upper()


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
        uid: str | bytes | None = None,
    ) -> None:
        """`uid`: the board id (8 bytes or 16 hex digits; default: a new one, board_uid)."""
        self._uid = board_uid(uid)
        self._hex = firmware_hex
        self._pins = pins or microbit_pins()
        self._qemu = qemu
        self._proc: subprocess.Popen[bytes] | None = None
        self._qmp: Qmp | None = None
        self._dir: Path | None = None
        self._port = 0
        self._reset_callbacks: list[Callable[[], None]] = []
        self._relay: QtestRelay | None = None
        self._resets = ResetCounter()  # resets finished (id written, CPU running again)
        self._machine_resets = 0  # RESET events seen: the machine itself was reset
        self._machine_reset = threading.Condition()
        self._reset_lock = threading.RLock()  # a reset in progress against a new request
        self._pending: queue.SimpleQueue[bool] = queue.SimpleQueue()  # False: stop
        self._worker: threading.Thread | None = None
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
    def uid(self) -> str:
        """The board id its firmware reports (hello, boards/microbit.py UID), as upper-case hex;
        written into UICR CUSTOMER[0..1] at start and after every reset."""
        return self._uid

    @property
    def serial_url(self) -> str:
        self._require_started()
        return f"socket://127.0.0.1:{self._port}"

    @property
    def gpio_address(self) -> str:
        """The qtest relay's socket (QEMU's own, qtest.sock, is the emulator's)."""
        return str(self._socket("gpio.sock"))

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
            self._relay = QtestRelay(self._socket("gpio.sock"), self._resets)
            self._worker = threading.Thread(
                target=self._serve_resets, name="qemu-resets", daemon=True
            )
            self._worker.start()
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

    def _end_process(self) -> None:
        """Close QMP and stop this board's QEMU (and nothing else)."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc)

    def _stop(self) -> None:
        self._end_process()
        worker, self._worker = self._worker, None
        if worker is not None:
            self._pending.put(False)
            if worker is not threading.current_thread():
                worker.join(timeout=2 * _RESET_STEP_S)
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        with _live_lock:
            _live.discard(self)

    def reset(self) -> None:
        """Returns once the board has been reset, its id written, and its CPU runs again."""
        self._require_started()
        assert self._qmp is not None
        with self._reset_lock:  # not inside a reset the worker is finishing: that would undo it
            done = self._resets.value
            self._qmp.execute("system_reset")  # a pause (SHUTDOWN): the worker does the rest
        if threading.current_thread() is self._worker:
            return  # from a reset callback: this reset comes after the current one
        if not self._resets.wait_past(done, 2 * _RESET_STEP_S):
            raise EmulatorError(f"the board did not come back from a reset; see {self.log_path}")

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
                self._end_process()
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
        """A Gpio through the qtest relay (one client at a time)."""
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
            # Paused until the board id is in UICR; every reset a pause (see the module doc).
            "-S", "-action", "reboot=shutdown,shutdown=pause",
            # nodelay: without it Nagle + delayed ACK add ~40 ms to every REPL round trip.
            "-serial", f"tcp:127.0.0.1:{self._port},server=on,wait=off,nodelay=on",
            "-qtest", f"unix:{self._socket('qtest.sock')},server=on,wait=off",
            # qtest logs every line (330 display IRQs/s) to stderr unless told otherwise.
            "-qtest-log", os.devnull,
            "-qmp", f"unix:{self._socket('qmp.sock')},server=on,wait=off",
        ]  # fmt: skip

    def _await_qmp(self, timeout: float) -> bool:
        """True once QMP answers (QEMU creates every chardev before it serves QMP) and the
        board runs with its id written; False if QEMU exited because the serial port was
        taken."""
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
                    self._run_board(timeout=max(0.5, deadline - time.monotonic()))
                    return True
            if time.monotonic() > deadline:
                raise EmulatorError(f"QEMU did not come up in {timeout} s; see {self.log_path}")
            time.sleep(0.005)

    def _run_board(self, *, timeout: float) -> None:
        """QEMU waits paused (-S): give it the board id, then let the CPU run."""
        assert self._relay is not None and self._qmp is not None
        try:
            self._relay.attach(self._socket("qtest.sock"), timeout=timeout)
            self._write_uid()
            self._qmp.execute("cont")
        except (QtestError, QmpError) as exc:
            raise EmulatorError(
                f"QEMU did not start the board ({exc}); see {self.log_path}"
            ) from exc

    def _write_uid(self) -> None:
        assert self._relay is not None
        for offset in (0, 8):
            word = int(self._uid[offset : offset + 8], 16)
            self._relay.command(f"writel {UICR_CUSTOMER + offset // 2:#x} {word:#x}")

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        # On QMP's reader thread: nothing here may wait for QMP.
        if event == "SHUTDOWN" and str(data.get("reason", "")).endswith("reset"):
            self._pending.put(True)  # a reset request, held paused (-action reboot=shutdown)
        elif event == "RESET":
            with self._machine_reset:
                self._machine_resets += 1
                self._machine_reset.notify_all()

    def _serve_resets(self) -> None:
        while self._pending.get():
            try:
                self._finish_reset()
            except (QmpError, QtestError, EmulatorError) as exc:
                if self.running:
                    _log.warning("a reset of the board could not be finished: %s", exc)

    def _finish_reset(self) -> None:
        """The board is paused on a reset request: reset it, write its id, tell whoever waits,
        run the callbacks, and let the CPU run."""
        with self._reset_lock:
            qmp = self._qmp
            if qmp is None:
                return
            with self._machine_reset:
                seen = self._machine_resets
            qmp.execute("set-action", {"reboot": "reset"})
            try:
                qmp.execute("system_reset")
                with self._machine_reset:
                    if not self._machine_reset.wait_for(
                        lambda: self._machine_resets > seen, _RESET_STEP_S
                    ):
                        raise EmulatorError(f"no RESET from QEMU in {_RESET_STEP_S} s")
                self._write_uid()
            except (QmpError, QtestError, EmulatorError) as exc:
                # Not left paused for it: the board runs on, and says its FICR id.
                _log.warning("board %s: id not restored after a reset: %s", self._uid, exc)
            finally:
                qmp.execute("set-action", {"reboot": "shutdown"})
            # Still paused: a client's reset (relay) is answered, inputs are driven again.
            self._resets.advance()
            for callback in list(self._reset_callbacks):
                try:
                    callback()
                except Exception:  # one bad callback must not leave the board paused
                    _log.exception("reset callback failed")
            qmp.execute("cont")

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
