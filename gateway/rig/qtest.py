"""GPIO of an emulated nRF51 over QEMU's qtest socket (see docs in gateway/rig/README.md).

qtest speaks lines: each command gets one `OK ...`/`FAIL ...` reply, and once outputs are
intercepted, unsolicited `IRQ raise N` / `IRQ lower N` lines report output changes.
Traps this class works around, all measured on QEMU 7.2:

- A bad GPIO line number trips an assert and QEMU aborts (the socket just closes), so
  lines are checked here before anything is sent.
- qtest only reports a line when its level differs from the last level *it* reported, and
  forgets those levels when a client connects. Outputs already high when we connect would
  then drop silently, so `sync()` reads the real levels from the GPIO registers and, while
  any output is high but not yet reported, polls the registers until it drops.
- `raise` also means "not driven" (level -1): a pin not configured as an output.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Collection

NRF51 = "/machine/nrf51"
GPIO_LINES = 32
# nRF51 GPIO registers (nRF51 reference manual, GPIO chapter).
REG_OUT = 0x50000504
REG_IN = 0x50000510
REG_DIR = 0x50000514
# ARMv7-M/v6-M AIRCR: VECTKEY | SYSRESETREQ. QEMU resets the whole machine on it.
AIRCR = 0xE000ED0C
AIRCR_SYSRESETREQ = 0x05FA0004
_STALE_POLL_S = 0.01

OutputListener = Callable[[int, int, int], None]
"""(line, level 0/1, time.monotonic_ns() when seen), called from the reader thread."""


class QtestError(RuntimeError):
    """A qtest command failed, timed out, or the connection is gone."""


class QtestPort:
    """One qtest connection to one QEMU: drive input lines, follow output lines."""

    def __init__(self, sock: socket.socket, *, device: str = NRF51) -> None:
        self._sock = sock
        self._device = device
        self._send_lock = threading.Lock()
        self._replies: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._on_reply: Callable[[str, int], None] | None = None
        self._closed = threading.Event()
        self._listener: OutputListener | None = None
        self._watched: frozenset[int] = frozenset()
        # What qtest last reported per line (nonzero = "raise"), the basis of its filtering.
        self._reported: dict[int, int] = {}
        self._stale: set[int] = set()
        self._poller: threading.Thread | None = None
        self._reader = threading.Thread(target=self._read_loop, name="qtest-reader", daemon=True)
        self._reader.start()

    @classmethod
    def connect(cls, path: str, *, timeout: float = 5.0, device: str = NRF51) -> QtestPort:
        """Connect to a qtest unix socket; retries until `timeout` while QEMU starts."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return cls(sock, device=device)
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QtestError(f"cannot connect to qtest at {path}: {exc}") from exc
                time.sleep(0.01)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=2)

    def watch(self, lines: Collection[int], listener: OutputListener) -> None:
        """Intercept the device's outputs and report changes of `lines` to `listener`."""
        for line in lines:
            _check_line(line)
        self._watched = frozenset(lines)
        self._listener = listener
        self.command(f"irq_intercept_out {self._device}")
        self.sync()

    def drive(self, line: int, level: int) -> int:
        """Drive an input line 0/1 (-1 lets it float); returns monotonic_ns when sent."""
        _check_line(line)
        if level not in (-1, 0, 1):
            raise ValueError(f"level must be -1, 0 or 1, not {level!r}")
        return self._send(f"set_irq_in {self._device} unnamed-gpio-in {line} {level}")[1]

    def readl(self, address: int) -> int:
        reply = self.command(f"readl {address:#x}")
        return int(reply.split()[1], 16)

    def read_memory(self, address: int, size: int) -> bytes:
        """`size` bytes of the board's memory from `address` (qtest `read`: RAM, flash or
        registers, as the CPU sees them), read while the board runs."""
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size!r}")
        reply = self.command(f"read {address:#x} {size:#x}")
        data = bytes.fromhex(reply.split()[1].removeprefix("0x"))
        if len(data) != size:
            raise QtestError(f"qtest read {address:#x} {size}: {len(data)} bytes came back")
        return data

    def hard_reset(self) -> None:
        """SYSRESETREQ through AIRCR. QEMU resets the machine before it reads our next line,
        so commands sent after this returns act on the rebooted board."""
        self.command(f"writel {AIRCR:#x} {AIRCR_SYSRESETREQ:#x}")

    def sync(self) -> None:
        """Report the watched outputs' real levels (read from the registers, in stream order)."""
        direction = self.readl(REG_DIR)
        self._send(f"readl {REG_OUT:#x}", on_reply=lambda r, t: self._synced(direction, r, t))

    def command(self, line: str, *, timeout: float = 5.0) -> str:
        return self._send(line, timeout=timeout)[0]

    def _send(
        self,
        line: str,
        *,
        timeout: float = 5.0,
        on_reply: Callable[[str, int], None] | None = None,
    ) -> tuple[str, int]:
        with self._send_lock:
            if self.closed:
                raise QtestError("qtest connection is closed")
            self._on_reply = on_reply
            sent_ns = time.monotonic_ns()
            try:
                self._sock.sendall(line.encode("ascii") + b"\n")
            except OSError as exc:
                raise QtestError(f"qtest send failed: {exc}") from exc
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise QtestError(f"no qtest reply to {line!r} in {timeout} s") from None
            if reply is None:
                raise QtestError(f"qtest connection closed on {line!r} (did QEMU exit?)")
            if not reply.startswith("OK"):
                raise QtestError(f"qtest {line!r}: {reply}")
            return reply, sent_ns

    def _read_loop(self) -> None:
        pending = b""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                now = time.monotonic_ns()
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._handle(raw.decode("ascii", "replace").strip(), now)
        except OSError:
            pass
        finally:
            self._closed.set()
            self._replies.put(None)

    def _handle(self, line: str, now: int) -> None:
        if line.startswith("IRQ "):
            _, edge, number = line.split()
            self._irq(int(number), 1 if edge == "raise" else 0, now)
        elif line:
            # Replies come in command order and only one command is in flight; the hook
            # runs here so register reads land in order among the IRQ lines.
            hook, self._on_reply = self._on_reply, None
            if hook is not None and line.startswith("OK"):
                hook(line, now)
            self._replies.put(line)

    def _irq(self, line: int, level: int, now: int) -> None:
        self._reported[line] = level
        if line in self._watched:
            self._stale.discard(line)
            self._emit(line, level, now)

    def _synced(self, direction: int, reply: str, now: int) -> None:
        out = int(reply.split()[1], 16)
        for line in self._watched:
            level = (direction >> line) & (out >> line) & 1
            if level and not self._reported.get(line, 0):
                self._stale.add(line)
            elif not level:
                self._stale.discard(line)
            self._emit(line, level, now)
        if self._stale and (self._poller is None or not self._poller.is_alive()):
            self._poller = threading.Thread(target=self._poll, name="qtest-poll", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        while self._stale and not self.closed:
            time.sleep(_STALE_POLL_S)
            try:
                self.sync()
            except QtestError:
                return

    def _emit(self, line: int, level: int, now: int) -> None:
        if self._listener is not None:
            self._listener(line, level, now)


def _check_line(line: int) -> None:
    if not 0 <= line < GPIO_LINES:
        # QEMU asserts on a bad line number and aborts: never send one.
        raise ValueError(f"GPIO line must be 0..{GPIO_LINES - 1}, not {line!r}")
