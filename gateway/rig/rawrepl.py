"""MicroPython's raw REPL over a pyserial URL, shaped for micro:bit MicroPython 1.9.2.

That build has no raw-paste mode, no `os.stat` (but `os.size`), and raises MemoryError on
a few KB of source in one go, so files go over as many small `f.write(b'...')` execs.

The emulated UART has no baud rate: bytes reach the firmware as fast as its receive
interrupt takes them, into a 64-slot ring (mphalport.cpp) that silently drops whatever
does not fit while the REPL is busy. Measured on a loaded host, even paced 32-byte writes
lost bytes. So the host never has more than RING bytes in flight: every exec sent in one
go (code + Ctrl-D) fits the ring, and the next is sent only after the board has answered.
Longer code is sent in ring-sized pieces, joined on the board and run with exec().
"""

from __future__ import annotations

import ast
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Protocol, cast

import serial

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
FRIENDLY_PROMPT = b">>> "
CTRL_A, CTRL_B, CTRL_C, CTRL_D = b"\x01", b"\x02", b"\x03", b"\x04"
RING = 63
"""Bytes the firmware can buffer unread: its ring has 64 slots and keeps one free."""
READ_CHUNK = 128
FILE_ATTEMPTS = 3


# CPython 3.11's AST constructor keeps its recursion depth per interpreter, not per thread:
# boards flashed in parallel (gateway.fleet.flash_many's threads) parsing at once failed with
# "SystemError: AST constructor recursion depth mismatch". One parse at a time; they are tiny.
_AST = threading.Lock()


def literal(text: str) -> Any:
    """ast.literal_eval, one thread at a time."""
    with _AST:
        return ast.literal_eval(text)


class ReplError(RuntimeError):
    """The board did not answer as a raw REPL should."""


class ReplTimeout(ReplError, TimeoutError):
    """No complete answer in time; `partial` holds what did arrive."""

    def __init__(self, message: str, partial: bytes) -> None:
        super().__init__(f"{message}; got {partial[-300:]!r}")
        self.partial = partial


class RemoteError(ReplError):
    """The code raised on the board; `traceback` is the board's text."""

    def __init__(self, code: str, traceback: str) -> None:
        last = traceback.strip().splitlines()[-1] if traceback.strip() else "?"
        super().__init__(
            f"{last}\n--- code ---\n{code[:500]}\n--- board traceback ---\n{traceback}"
        )
        self.traceback = traceback


class VerifyError(ReplError):
    """A file read back from the board differs from what was written."""


class SerialPort(Protocol):
    """The part of a pyserial port the REPL uses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class RawRepl:
    """Owns the serial connection while open (the UART takes one client at a time).
    Note pyserial's socket:// close() sleeps 0.3 s."""

    def __init__(self, port: SerialPort) -> None:
        self._port = port
        self._raw = False
        self._buf = b""

    @classmethod
    def open(cls, url: str, *, baudrate: int = 115200) -> RawRepl:
        """`url` as for serial.serial_for_url, e.g. socket://127.0.0.1:PORT or a device.
        `baudrate` matters on a real UART only (pyserial's default, 9600, is not the
        micro:bit's REPL speed); the emulated one has none."""
        # Short read timeout: reads poll while deadlines are kept here.
        port = serial.serial_for_url(url, timeout=0.02, baudrate=baudrate)
        # pyserial's socket:// leaves Nagle on; against the board's delayed ACKs that
        # costs up to ~40 ms per small write.
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(cast(SerialPort, port))

    def close(self) -> None:
        self._port.close()

    @property
    def port(self) -> SerialPort:
        """The serial port itself, for bytes outside the REPL's protocol: a frame to firmware
        that has disabled Ctrl-C (gateway.fleet.flash sends the seat's Z exit frame)."""
        return self._port

    def __enter__(self) -> RawRepl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Getting a prompt.

    def interrupt(self, *, deadline: float = 3.0) -> None:
        """Stop whatever runs and land at the friendly `>>> ` prompt. Retries Ctrl-C until
        `deadline` seconds: a program may need a moment, and one that disabled Ctrl-C
        (micropython.kbd_intr(-1)) never yields; reset the board and retry for that."""
        end = time.monotonic() + deadline
        self._port.reset_input_buffer()
        self._buf = seen = b""
        while time.monotonic() < end:
            self._port.write(b"\r" + CTRL_C + CTRL_C)
            seen += self._drain(0.03)
            # Ctrl-B leaves raw mode and, in friendly mode, reprints banner and prompt:
            # a prompt *after* it proves the REPL is listening now.
            self._port.write(CTRL_B)
            got = self._read_until(FRIENDLY_PROMPT, 0.2, raise_timeout=False)
            seen += got
            if got.endswith(FRIENDLY_PROMPT):
                self._raw = False
                return
        raise ReplTimeout(f"no REPL prompt after {deadline} s of Ctrl-C", seen)

    def interrupt_boot(self, *, deadline: float = 2.0) -> None:
        """Call right after a reset: Ctrl-C every few ms so one lands while main.py starts,
        before firmware can disable it; then make sure of the prompt."""
        end = time.monotonic() + deadline
        self._port.reset_input_buffer()
        self._buf = b""
        while time.monotonic() < end and FRIENDLY_PROMPT not in self._buf:
            self._port.write(CTRL_C)
            # What has arrived, up to a bound (a chatty main.py must not starve the Ctrl-C):
            # pyserial's socket:// reports in_waiting as 0 or 1, and a byte a pass made the
            # traceback and prompt take a second to read.
            got = len(self._buf)
            while (waiting := self._port.in_waiting) and len(self._buf) - got < 512:
                self._buf += self._port.read(waiting)
            time.sleep(0.005)
        self.interrupt(deadline=max(0.5, end - time.monotonic()))

    def enter_raw(self, *, deadline: float = 3.0) -> None:
        self.interrupt(deadline=deadline)
        self._port.write(CTRL_A)
        self._read_until(RAW_BANNER, 2.0)
        self._raw = True

    def exit_raw(self) -> None:
        """Back to the friendly REPL."""
        self._port.write(CTRL_B)
        self._read_until(FRIENDLY_PROMPT, 2.0)
        self._raw = False

    # Running code.

    def exec(self, code: str, *, timeout: float = 10.0, check: bool = True) -> tuple[str, str]:
        """Run `code`; returns (stdout, stderr) with \\r\\n turned into \\n. With `check`,
        anything on stderr (a traceback) raises RemoteError."""
        if not self._raw:
            self.enter_raw()
        source = code.encode("utf-8")
        if len(source) < RING:
            return self._run(source, timeout=timeout, check=check, shown=code)
        self._run(b"_s=[]")
        for piece in _pieces(source, budget=RING - 1 - len(b"_s.append()")):
            self._run(b"_s.append(" + _literal(piece) + b")")
        # Join first so the pieces are garbage before the code is compiled.
        self._run(b"_s=b''.join(_s)")
        stdout, stderr = self._run(b"exec(_s)", timeout=timeout, check=False)
        self._run(b"del _s")
        if check and stderr:
            raise RemoteError(code, stderr)
        return stdout, stderr

    def eval(self, expression: str, *, timeout: float = 10.0) -> object:
        """Value of a Python-literal expression on the board (via repr)."""
        stdout, _ = self.exec(f"print(repr({expression}))", timeout=timeout)
        return literal(stdout.strip())

    def _run(
        self, source: bytes, *, timeout: float = 5.0, check: bool = True, shown: str = ""
    ) -> tuple[str, str]:
        assert len(source) < RING, "would overflow the board's receive ring"
        self._port.write(source + CTRL_D)
        try:
            self._read_until(b"OK", 2.0)
            out = self._read_until(CTRL_D, timeout)
            err = self._read_until(CTRL_D, 2.0)
            self._read_until(b">", 2.0)
        except ReplTimeout:
            self._raw = False  # unknown state: interrupt again next time
            raise
        stdout, stderr = _text(out[:-1]), _text(err[:-1])
        if check and stderr:
            raise RemoteError(shown or source.decode("utf-8", "replace"), stderr)
        return stdout, stderr

    # Files.

    def write_file(self, name: str, data: bytes, *, verify: bool = True) -> None:
        """Write `data` to `name` in ring-sized `f.write(b'...')` execs; with `verify` read
        it back and compare, writing it again (up to FILE_ATTEMPTS times) on a mismatch."""
        error: ReplError | None = None
        for _ in range(FILE_ATTEMPTS if verify else 1):
            try:
                self._write_pieces(name, data)
                if verify:
                    self.verify_file(name, data)
                return
            except (RemoteError, VerifyError) as exc:
                error = exc
        assert error is not None
        raise error

    def _write_pieces(self, name: str, data: bytes) -> None:
        self.exec(f"_f=open({name!r},'wb')\n_w=_f.write")
        try:
            for piece in _pieces(data, budget=RING - 1 - len(b"_w()")):
                self._run(b"_w(" + _literal(piece) + b")")
        finally:
            self._run(b"_f.close()\ndel _f,_w")

    def read_file(self, name: str) -> bytes:
        stdout, _ = self.exec(
            f"_f=open({name!r},'rb')\n"
            "while 1:\n"
            f" _c=_f.read({READ_CHUNK})\n"
            " if not _c:\n"
            "  break\n"
            " print(repr(_c))\n"
            "_f.close()\n"
            "del _f,_c"
        )
        return b"".join(_bytes_literal(line) for line in stdout.splitlines() if line)

    def verify_file(self, name: str, data: bytes) -> None:
        """Raise VerifyError unless `name` on the board holds exactly `data`."""
        size = self.eval(f"__import__('os').size({name!r})")
        if size != len(data):
            raise VerifyError(f"{name}: {size} bytes on the board, {len(data)} written")
        back = self.read_file(name)
        if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
            raise VerifyError(f"{name}: content read back differs from what was written")

    def list_files(self) -> list[str]:
        names = self.eval("__import__('os').listdir()")
        if not isinstance(names, list):
            raise ReplError(f"os.listdir() gave {names!r}")
        return [str(n) for n in names]

    def remove_file(self, name: str) -> None:
        self.exec(f"__import__('os').remove({name!r})")

    # Resets. Both run main.py; the REPL is then main.py's until it ends or is interrupted.

    def soft_reset(self) -> None:
        """Ctrl-D at the friendly prompt: a fresh heap, then main.py."""
        self.interrupt()
        self._port.write(CTRL_D)
        self._read_until(b"soft reboot", 2.0)
        self._raw = False

    def hard_reset(self) -> None:
        """machine.reset() from the board itself."""
        if not self._raw:
            self.enter_raw()
        self._port.write(b"import machine\nmachine.reset()" + CTRL_D)
        self._read_until(b"OK", 2.0)
        self._raw = False

    # Serial plumbing.

    def _drain(self, seconds: float) -> bytes:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._buf += self._port.read(max(1, self._port.in_waiting))
        got, self._buf = self._buf, b""
        return got

    def _read_until(self, token: bytes, timeout: float, *, raise_timeout: bool = True) -> bytes:
        """Bytes up to and including `token`; what arrived after it waits in the buffer."""
        end = time.monotonic() + timeout
        while (at := self._buf.find(token)) < 0:
            if time.monotonic() > end:
                got, self._buf = self._buf, b""
                if raise_timeout:
                    raise ReplTimeout(f"waited {timeout} s for {token!r}", got)
                return got
            self._buf += self._port.read(max(1, self._port.in_waiting))
        got, self._buf = self._buf[: at + len(token)], self._buf[at + len(token) :]
        return got


def _pieces(data: bytes, *, budget: int) -> Iterator[bytes]:
    """Consecutive slices of `data` whose bytes literals are at most `budget` long."""
    start = 0
    while start < len(data):
        end = start + 1
        while end < len(data) and len(_literal(data[start : end + 1])) <= budget:
            end += 1
        yield data[start:end]
        start = end


def _literal(data: bytes) -> bytes:
    # Python's bytes repr is pure ASCII and MicroPython parses it the same way.
    return repr(data).encode("ascii")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")


def _bytes_literal(line: str) -> bytes:
    value = literal(line)
    if not isinstance(value, bytes):
        raise ReplError(f"expected a bytes repr, got {line!r}")
    return value
