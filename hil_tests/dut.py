"""The device under test: one seat board, whatever runs it.

Three backends, one interface (the pytest-embedded idea):

- `QemuDut` (default): an emulated micro:bit (`gateway.rig.EmulatedBoard`) booting the seat
  image (the firmware frozen into MicroPython 1.9.2, gateway.image); inputs and light over
  qtest, stamped with `time.monotonic_ns()`.
- `VirtualDut`: the same bundle under CPython in real time (`gateway.virtual_seat`), inputs
  as board bits, the light recorded as the firmware sets it.
- `SerialDut`: a real board on a serial device. Nothing drives its pins or watches its
  light, so only the protocol can be tested; it is reset through the protocol (Z, then a
  soft reboot from the REPL).

A `Dut` records everything that crossed its serial line, the inputs driven, the resets and
notes, as one timeline (`serial_log_text`) to save when a test fails.
"""

from __future__ import annotations

import abc
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import serial

from gateway.firmware_host import SeatStopped, load_firmware
from gateway.image import build_image
from gateway.rig import EmulatedBoard
from gateway.rig.gpio import BLUE, GREEN, RED
from gateway.seatlink import AckTimeout, SessionError, messages
from gateway.seatlink.session import Session
from gateway.virtual_seat import RealtimeBoard, SocketPort

__all__ = [
    "BACKENDS",
    "BLUE",
    "COLOUR_NAMES",
    "GREEN",
    "AT_REST",
    "INPUTS",
    "MAGENTA",
    "OFF",
    "RED",
    "WHITE",
    "YELLOW",
    "Dut",
    "DutError",
    "QemuDut",
    "RecordingPort",
    "SerialDut",
    "SerialLog",
    "VirtualDut",
    "colour_name",
    "open_dut",
]

OFF = 0
YELLOW = RED | GREEN
MAGENTA = RED | BLUE
WHITE = RED | GREEN | BLUE
COLOUR_NAMES = {OFF: "off", RED: "red", GREEN: "green", YELLOW: "yellow", BLUE: "blue",
                MAGENTA: "magenta", GREEN | BLUE: "cyan", WHITE: "white"}  # fmt: skip

INPUTS = ("hanger", "ready", "wrap", "help", "answer")
"""The seat's inputs by logical name (docs/seat.md, Inputs), all active high."""
AT_REST = {"hanger": 1}
"""The levels of a desk nobody touches: the headset on its hanger, nothing pressed."""

BACKENDS = ("qemu", "virtual", "serial")

LightHistory = list[tuple[int, int]]
"""(time.monotonic_ns(), rgb) of every light change, the first entry the state then."""


def colour_name(rgb: int) -> str:
    return COLOUR_NAMES.get(rgb, f"rgb {rgb}")


class DutError(RuntimeError):
    """The board (or its backend) did not do what a test needs from it at all."""


def printable(data: bytes) -> str:
    """Bytes as one readable line: ASCII as is, anything else escaped."""
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        elif byte == 0x0D:
            out.append("\\r")
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


class SerialLog:
    """A timeline of one board: lines read ("<") and written (">"), and notes ("#": resets,
    inputs, test boundaries), each stamped with time.monotonic_ns(). Thread safe."""

    def __init__(self) -> None:
        self.started_ns = time.monotonic_ns()
        self.rx = bytearray()  # every byte the board sent, exactly
        self._entries: list[tuple[int, str, str]] = []
        # bytes of a line not yet ended, and when the last of them came
        self._partial: dict[str, tuple[int, bytearray]] = {}
        self._lock = threading.Lock()

    def received(self, data: bytes, t_ns: int | None = None) -> None:
        with self._lock:
            self.rx += data
            self._lines("<", data, time.monotonic_ns() if t_ns is None else t_ns)

    def sent(self, data: bytes, t_ns: int | None = None) -> None:
        with self._lock:
            self._lines(">", data, time.monotonic_ns() if t_ns is None else t_ns)

    def note(self, text: str, t_ns: int | None = None) -> None:
        with self._lock:
            self._entries.append((time.monotonic_ns() if t_ns is None else t_ns, "#", text))

    def _lines(self, mark: str, data: bytes, t_ns: int) -> None:
        _, partial = self._partial.get(mark, (t_ns, bytearray()))
        partial += data
        while (end := partial.find(b"\n")) >= 0:
            self._entries.append((t_ns, mark, printable(bytes(partial[:end]))))
            del partial[: end + 1]
        self._partial[mark] = (t_ns, partial)

    def tail(self, size: int = 600) -> str:
        """The last `size` bytes the board sent, escaped: for error messages."""
        with self._lock:
            data = bytes(self.rx[-size:])
        return "\n".join(printable(line) for line in data.split(b"\n")) if data else "(nothing)"

    def render(self, light: Iterable[tuple[int, int]] = ()) -> str:
        """The whole timeline; `light` changes are merged in by their stamps."""
        with self._lock:
            entries = list(self._entries)
            for mark, (t_ns, partial) in self._partial.items():
                if partial:  # shown unended, with a backslash as Session.transcript does
                    entries.append((t_ns, mark, printable(bytes(partial)) + "\\"))
        entries += [(t, "*", f"light {colour_name(rgb)}") for t, rgb in light]
        entries.sort(key=lambda entry: entry[0])  # stable: same-stamp entries keep their order
        legend = "# s since start; < from the board, > to the board, * light, # note\n"
        return legend + "".join(
            f"{(t - self.started_ns) / 1e9:11.6f} {mark} {text}\n" for t, mark, text in entries
        )


class RecordingPort:
    """A pyserial-like port that copies everything through it into a SerialLog, so the log
    outlives each test's Session."""

    def __init__(self, inner: serial.SerialBase | SocketPort, log: SerialLog) -> None:
        self._inner = inner
        self._log = log

    @property
    def timeout(self) -> float | None:
        return self._inner.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._inner.timeout = value

    @property
    def in_waiting(self) -> int:
        waiting = getattr(self._inner, "in_waiting", 0)
        return waiting if isinstance(waiting, int) else 0

    def read(self, size: int = 1, /) -> bytes:
        data = self._inner.read(size)
        if data:
            self._log.received(data)
        return data

    def write(self, data: bytes, /) -> int | None:
        self._log.sent(data)
        return self._inner.write(data)


class Dut(abc.ABC):
    """One seat board: its serial port, inputs by name, the light with timestamps, reset,
    and the log of all of it. `start()` (or `with`) before use; `stop()` cleans up."""

    backend: ClassVar[str]
    drives_inputs: ClassVar[bool] = True
    sees_light: ClassVar[bool] = True
    board_name: ClassVar[str | None] = None  # the hello's board name, where known
    boot_timeout: float = 10.0  # seconds from a reset to the hello

    def __init__(self) -> None:
        self.log = SerialLog()
        self._port: RecordingPort | None = None

    # --- lifecycle ----------------------------------------------------------------------

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the board up with the firmware on it, serial port open. The firmware may
        or may not be running: `reset()` starts it afresh."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Release everything start() took. Safe to call twice, or after a failed start."""

    def __enter__(self) -> Dut:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def describe(self) -> str:
        return self.backend

    # --- serial -------------------------------------------------------------------------

    @property
    def port(self) -> RecordingPort:
        if self._port is None:
            raise DutError(f"{self.describe()}: not started")
        return self._port

    def drain(self, *, quiet_s: float = 0.05, limit_s: float = 1.0) -> None:
        """Read (and log) whatever the board has sent, until it is quiet for `quiet_s`."""
        port = self.port
        saved, port.timeout = port.timeout, quiet_s
        deadline = time.monotonic() + limit_s
        try:
            while port.read(4096) and time.monotonic() < deadline:
                pass
        finally:
            port.timeout = saved

    # --- reset --------------------------------------------------------------------------

    def reset(self) -> None:
        """Restart the firmware from boot (RAM lost, files kept); the port stays open."""
        self.note("reset")
        self._reset()

    @abc.abstractmethod
    def _reset(self) -> None: ...

    # --- inputs -------------------------------------------------------------------------

    def set_input(self, name: str, level: int | bool) -> int:
        """Drive input `name` to 0/1; returns time.monotonic_ns() when it was driven."""
        if name not in INPUTS:
            raise KeyError(f"no input {name!r}; inputs: {', '.join(INPUTS)}")
        if not self.drives_inputs:
            raise DutError(f"{self.describe()}: nothing drives this board's inputs")
        value = 1 if level else 0
        t_ns = self._drive(name, value)
        self.log.note(f"input {name}={value}", t_ns)
        return t_ns

    def _drive(self, name: str, level: int) -> int:
        raise DutError(f"{self.describe()}: nothing drives this board's inputs")

    # --- light --------------------------------------------------------------------------

    def light_history(self) -> LightHistory:
        raise DutError(f"{self.describe()}: nothing watches this board's light")

    def light(self) -> int:
        return self.light_history()[-1][1]

    # --- health and log -----------------------------------------------------------------

    def check(self) -> None:  # noqa: B027 (most backends have nothing to check)
        """Raise if the backend itself broke (not the firmware's behaviour: tests judge that)."""

    def note(self, text: str) -> None:
        self.log.note(text)

    def serial_log_text(self) -> str:
        """Everything this board's line carried since start, inputs, resets and (where
        watched) light changes merged in time order."""
        light = self.light_history() if self.sees_light else []
        head = f"# board: {self.describe()}\n"
        return head + self.log.render(light)


class QemuDut(Dut):
    """An emulated micro:bit v1 in QEMU booting the seat image: MicroPython 1.9.2 with the
    firmware frozen into flash (gateway.image, built or taken from the cache)."""

    backend = "qemu"
    board_name = "microbit"

    def __init__(self, *, boot_timeout: float = 20.0) -> None:
        super().__init__()
        self.boot_timeout = boot_timeout
        self._board: EmulatedBoard | None = None
        self._serial: serial.SerialBase | None = None

    @property
    def board(self) -> EmulatedBoard:
        if self._board is None:
            raise DutError("qemu: not started")
        return self._board

    def describe(self) -> str:
        pid = self._board.pid if self._board is not None else None
        return f"qemu micro:bit (pid {pid})"

    def start(self) -> None:
        image = build_image()
        self.note(f"seat image {image.path.name} (firmware {image.version})")
        board = self._board = EmulatedBoard(firmware_hex=image.path)
        try:
            # The firmware boots at once; the fixture resets the board once the port is ours.
            board.start(repl=False)
            port = serial.serial_for_url(board.serial_url, timeout=0.02)
            sock = getattr(port, "_socket", None)
            if isinstance(sock, socket.socket):
                # pyserial's socket:// leaves Nagle on: each small frame would wait ~40 ms
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serial = port
            self._port = RecordingPort(port, self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()
        board, self._board = self._board, None
        if board is not None:
            board.stop()

    def _reset(self) -> None:
        self.board.reset()

    def _drive(self, name: str, level: int) -> int:
        return self.board.gpio.set_input(name, level)

    def light_history(self) -> LightHistory:
        return self.board.gpio.light_history()


class LightRecorder:
    """The light as a virtual board sets it, with stamps, in the shape of Gpio's history."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: LightHistory = [(time.monotonic_ns(), OFF)]

    def record(self, rgb: int) -> None:
        now = time.monotonic_ns()
        with self._lock:
            if rgb != self._history[-1][1]:
                self._history.append((now, rgb))

    def history(self) -> LightHistory:
        with self._lock:
            return list(self._history)


class VirtualDut(Dut):
    """The firmware bundle under CPython in real time (gateway.virtual_seat's board), behind a
    socket pair. A reset starts a new firmware instance (fresh module state, as a board's
    RAM) on the same line and the same file store, so the boot counter grows."""

    backend = "virtual"
    board_name = "virtual"
    # Input bits of the board interface (boards/*.py `inputs()`): bit0 hanger .. bit4 answer.
    INPUT_BITS: ClassVar[dict[str, int]] = {"hanger": 1, "ready": 2, "wrap": 4, "help": 8,
                                            "answer": 16}  # fmt: skip

    def __init__(self, *, uid: bytes = bytes.fromhex("5ea70001"), boot_timeout: float = 5.0):
        super().__init__()
        self.boot_timeout = boot_timeout
        self._uid = uid
        self._levels = 1  # the headset on its hanger
        self._lights = LightRecorder()
        self._seat_end: socket.socket | None = None
        self._host_end: socket.socket | None = None
        self._store: tempfile.TemporaryDirectory[str] | None = None
        self._board: RealtimeBoard | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._seat_end, self._host_end = socket.socketpair()
        self._store = tempfile.TemporaryDirectory(prefix="hil-virtual-seat-")
        self._port = RecordingPort(SocketPort(self._host_end), self.log)

    def stop(self) -> None:
        self._power_off()
        for sock in (self._seat_end, self._host_end):
            if sock is not None:
                sock.close()
        self._seat_end = self._host_end = None
        if self._store is not None:
            self._store.cleanup()
            self._store = None

    def _reset(self) -> None:
        self._power_off()
        self._power_on()

    def _power_on(self) -> None:
        if self._seat_end is None or self._store is None:
            raise DutError("virtual: not started")
        board = RealtimeBoard(link=self._seat_end, uid=self._uid, store=Path(self._store.name),
                              on_light=self._lights.record)  # fmt: skip
        board.bits = self._levels
        try:
            firmware = load_firmware(board=board)
        except Exception as exc:
            raise DutError(f"virtual: the firmware bundle does not load: {exc!r}") from exc
        self._board = board
        self._thread = threading.Thread(
            target=self._run, args=(firmware.run,), name="hil-virtual-seat", daemon=True
        )
        self._thread.start()

    def _run(self, run: Callable[[], None]) -> None:
        try:
            run()
        except SeatStopped:
            pass
        except BaseException as exc:  # reported by check(), never lost
            self.error = exc
            self.log.note(f"virtual board: firmware raised {exc!r}")

    def _power_off(self) -> None:
        board, thread = self._board, self._thread
        self._board = self._thread = None
        if board is None or thread is None:
            return
        board.stopping.set()
        thread.join(timeout=5)
        if thread.is_alive():
            raise DutError("virtual: the firmware thread did not stop within 5 s")
        self._lights.record(OFF)  # a reset turns a board's outputs off

    def _drive(self, name: str, level: int) -> int:
        bit = self.INPUT_BITS[name]
        self._levels = self._levels | bit if level else self._levels & ~bit
        if self._board is not None:
            self._board.bits = self._levels
        return time.monotonic_ns()

    def light_history(self) -> LightHistory:
        return self._lights.history()

    def check(self) -> None:
        if self.error is not None:
            raise DutError(f"virtual: the firmware thread died: {self.error!r}") from self.error


class SerialDut(Dut):
    """A real board with the firmware installed, on a serial device (e.g. /dev/ttyACM0).

    Nothing drives its pins or watches its light: tests that need them are skipped. A reset
    goes through the protocol: Z (leave the firmware for the REPL), then Ctrl-D (soft
    reboot, which runs main.py again); if the firmware does not take the Z, the Ctrl-C and
    Ctrl-D reach a board that is already at its REPL."""

    backend = "serial"
    drives_inputs = False
    sees_light = False

    def __init__(self, device: str, *, baudrate: int = 115200, boot_timeout: float = 10.0):
        super().__init__()
        self.device = device
        self.baudrate = baudrate
        self.boot_timeout = boot_timeout
        self._serial: serial.Serial | None = None

    def describe(self) -> str:
        return f"serial board on {self.device}"

    def start(self) -> None:
        self._serial = serial.Serial(self.device, self.baudrate, timeout=0.02)
        self._port = RecordingPort(self._serial, self.log)

    def stop(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    def _reset(self) -> None:
        port = self.port
        session = Session(port, attempts=3, ack_timeout=0.3)
        try:
            session.send(messages.exit_to_repl())
        except (AckTimeout, SessionError):
            self.note("reset: the firmware did not take Z; assuming a board at its REPL")
        else:
            self._read_until(b">>> ", 2.0)
        port.write(b"\r\x03\x03")
        self._read_until(b">>> ", 1.0)
        port.write(b"\x04")

    def _read_until(self, marker: bytes, timeout: float) -> bool:
        start = len(self.log.rx)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.port.read(256)
            if marker in self.log.rx[start:]:
                return True
        return False


def open_dut(backend: str, *, device: str | None = None) -> Dut:
    """A Dut for `backend` (one of BACKENDS), not started yet."""
    if backend == "qemu":
        return QemuDut()
    if backend == "virtual":
        return VirtualDut()
    if backend == "serial":
        if not device:
            raise ValueError("the serial backend needs a device (--port /dev/ttyACM0)")
        return SerialDut(device)
    raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
