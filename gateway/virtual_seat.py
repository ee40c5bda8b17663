"""A seat whose firmware runs under CPython in real time, behind a socket.

The firmware is the exact bundle a micro:bit gets; only the board differs: the
clock is the host's, inputs are bits the caller sets (firmware/agent.py's: bit 0
HANGER, 1 = the headset rests on it; 1 READY, 2 WRAP, 3 HELP, 4 ANSWER, 1 = pressed),
the light is recorded and the serial link is one end of a socket pair.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.firmware_host import SeatStopped, load_firmware

TICKS_MASK = 0x3FFFFFFF  # MicroPython's ticks_ms period (2**30)
# firmware/agent.py's input bits, as the board reads them: HANGER is 1 with the headset
# resting on its hanger, the buttons 1 while pressed
IN_HANGER, IN_READY, IN_WRAP, IN_HELP, IN_ANSWER = 1, 2, 4, 8, 16


class RealtimeBoard:
    """The board interface of boards/microbit.py over host time and a socket.

    Without a link (None) the serial line goes nowhere: subclasses with a transport of
    their own (gateway.virtual_farm) override read() and write()."""

    NAME = b"virtual"
    PINS: dict[str, int] = {}
    # A virtual seat's store is new with its farm, and its count starts at 1: tests and the
    # demo name boots by it. A board with flash starts from a random one (boards/*.py).
    BOOT0 = 0

    def __init__(self, *, link: socket.socket | None, uid: bytes, store: Path,
                 on_light: Callable[[int], None] | None = None) -> None:
        self.UID = uid
        self.STORE = str(store) + "/"
        self.bits = IN_HANGER  # a desk at rest: the headset on its hanger, nothing pressed
        self.rgb = 0
        self.stopping = threading.Event()
        self._link = link
        if link is not None:
            link.setblocking(False)
        self._on_light = on_light

    def now(self) -> int:
        return int(time.monotonic() * 1000) & TICKS_MASK

    def diff(self, a: int, b: int) -> int:
        return ((a - b + (TICKS_MASK + 1) // 2) & TICKS_MASK) - (TICKS_MASK + 1) // 2

    def sleep(self, ms: int) -> None:
        if self.stopping.wait(ms / 1000):
            raise SeatStopped

    def reset(self) -> None:
        raise SeatStopped

    def mem(self) -> int:
        return 0  # CPython has no fixed heap to report

    def kbd(self, x: int) -> None:
        """Ctrl-C handling exists only on a board."""

    def inputs(self) -> int:
        return self.bits

    def light(self, rgb: int) -> None:
        self.rgb = rgb
        if self._on_light:
            self._on_light(rgb)

    def read(self, buf: bytearray) -> int | None:
        if self._link is None:
            return None
        try:
            return self._link.recv_into(buf) or None
        except BlockingIOError:
            return None

    def write(self, buf: bytes | bytearray, n: int) -> None:
        if self._link is None:
            return
        self._link.setblocking(True)
        try:
            self._link.sendall(bytes(buf[:n]))
        finally:
            self._link.setblocking(False)


class SocketPort:
    """A pyserial-like port (read/write/timeout) over a socket, for seatlink.Session."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.timeout: float | None = 0.02

    def read(self, size: int = 1, /) -> bytes:
        self._sock.settimeout(self.timeout)
        try:
            return self._sock.recv(size)
        except TimeoutError:
            return b""

    def write(self, data: bytes, /) -> int | None:
        self._sock.sendall(data)
        return len(data)


class VirtualSeat:
    """Start with `with VirtualSeat(uid=...) as seat:`; seat.port is the host end."""

    def __init__(self, *, uid: bytes = b"\x00\x00\x00\x01",
                 on_light: Callable[[int], None] | None = None) -> None:
        seat_end, host_end = socket.socketpair()
        self._store = tempfile.TemporaryDirectory(prefix="seatlink-vseat-")
        self.board = RealtimeBoard(link=seat_end, uid=uid, store=Path(self._store.name),
                                   on_light=on_light)
        self.port = SocketPort(host_end)
        self._sockets = (seat_end, host_end)
        self.firmware = load_firmware(board=self.board)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="virtual-seat", daemon=True)

    def _run(self) -> None:
        try:
            self.firmware.run()
        except SeatStopped:
            pass
        except BaseException as exc:  # reported by stop(), never lost
            self.error = exc

    def __enter__(self) -> VirtualSeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.board.stopping.set()
        self._thread.join(timeout=5)
        for s in self._sockets:
            s.close()
        self._store.cleanup()
        if self.error is not None:
            raise RuntimeError("the virtual seat's firmware failed") from self.error
