"""QEMU's one qtest connection, shared between the emulator and one GPIO client at a time.

QEMU serves qtest to a single connection, but two parties need it: the emulator, which
writes the board id into UICR after every reset while the board is held (gateway.rig.qemu),
and a GPIO client (the rig's `Gpio`, or another process's after `seatlink emulate`). So the
emulator holds QEMU's socket and serves `path` to clients, one at a time; a second client
waits until the first leaves, as it would at QEMU's own socket.

- qtest answers every command with one line, in order: the relay remembers who sent each
  command and hands the reply back to them. `IRQ ...` lines go to the client.
- A client's AIRCR SYSRESETREQ write resets the board. Its reply is held until the emulator
  has finished the reset (`ResetCounter`), so the client's next command acts on the rebooted
  board, as it would straight on QEMU.
- QEMU's interception of outputs (`irq_intercept_out`) outlives clients; a second client's
  request for it is answered OK by QEMU itself.
- When QEMU goes away the client is dropped (its connection closes, as QEMU's would);
  `attach` connects to the next QEMU of the same board.
"""

from __future__ import annotations

import collections
import logging
import queue
import socket
import threading
import time
from pathlib import Path

from gateway.rig.qtest import AIRCR, QtestError

_log = logging.getLogger(__name__)
_VECTKEY = 0x05FA0000
_SYSRESETREQ = 0x4
_RESET_WAIT_S = 10.0


class ResetCounter:
    """Resets completed so far; waitable."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value = 0

    @property
    def value(self) -> int:
        with self._cond:
            return self._value

    def advance(self) -> None:
        with self._cond:
            self._value += 1
            self._cond.notify_all()

    def wait_past(self, value: int, timeout: float) -> bool:
        """True once more than `value` resets have completed; False after `timeout` s."""
        with self._cond:
            return self._cond.wait_for(lambda: self._value > value, timeout)


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.alive = True

    def send(self, line: str) -> None:
        """Never blocks: a client that stops reading for the ~200 KB a socket buffers
        (tens of seconds of output changes) is dropped rather than stall the board."""
        with self._lock:
            if not self.alive:
                return
            try:
                self.sock.sendall(line.encode("ascii") + b"\n", socket.MSG_DONTWAIT)
            except OSError:
                self.drop()

    def drop(self) -> None:
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_Dest = _Client | queue.SimpleQueue[str | None]


class _Upstream:
    """One connection to one QEMU, and who waits for which of its replies, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.waiting: collections.deque[_Dest] = collections.deque()


class QtestRelay:
    def __init__(self, path: Path, resets: ResetCounter) -> None:
        self._path = path
        self._resets = resets
        self._lock = threading.Lock()  # upstream sends and the reply order
        self._upstream: _Upstream | None = None
        self._client: _Client | None = None
        self._closed = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(4)
        self._server = threading.Thread(target=self._serve, name="qtest-relay", daemon=True)
        self._server.start()

    @property
    def path(self) -> Path:
        return self._path

    def attach(self, qtest_path: Path, *, timeout: float = 5.0) -> None:
        """Connect to QEMU's qtest socket (retrying until `timeout` while QEMU starts),
        replacing the connection to an earlier QEMU, whose client is dropped."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(qtest_path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QtestError(f"cannot connect to qtest at {qtest_path}: {exc}") from exc
                time.sleep(0.01)
        self._detach()
        upstream = _Upstream(sock)
        with self._lock:
            self._upstream = upstream
        threading.Thread(
            target=self._read_upstream, args=(upstream,), name="qtest-relay-up", daemon=True
        ).start()

    def command(self, line: str, *, timeout: float = 5.0) -> str:
        """The emulator's own command; its `OK ...` reply, else QtestError."""
        reply = self._forward(line, timeout=timeout)
        if not reply.startswith("OK"):
            raise QtestError(f"qtest {line!r}: {reply}")
        return reply

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._listener.close()
        self._detach()
        self._drop_client()
        if threading.current_thread() is not self._server:
            self._server.join(timeout=2)
        self._path.unlink(missing_ok=True)

    # Internals.

    def _forward(self, line: str, *, timeout: float) -> str:
        box: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._send(line, box)
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise QtestError(f"no qtest reply to {line!r} in {timeout} s") from None
        if reply is None:
            raise QtestError(f"qtest connection closed on {line!r} (did QEMU exit?)")
        return reply

    def _send(self, line: str, dest: _Dest) -> None:
        with self._lock:
            upstream = self._upstream
            if upstream is None:
                raise QtestError("no QEMU attached")
            upstream.waiting.append(dest)
            try:
                upstream.sock.sendall(line.encode("ascii") + b"\n")
            except OSError as exc:
                upstream.waiting.pop()
                raise QtestError(f"qtest send failed: {exc}") from exc

    def _detach(self) -> None:
        with self._lock:
            upstream, self._upstream = self._upstream, None
        if upstream is not None:
            self._drop_client()
            try:
                upstream.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # its reader closes it

    def _drop_client(self) -> None:
        client = self._client
        if client is not None:
            client.drop()

    def _read_upstream(self, upstream: _Upstream) -> None:
        pending = b""
        try:
            while data := upstream.sock.recv(65536):
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._route(upstream, raw.decode("ascii", "replace").strip())
        except OSError:
            pass
        finally:
            with self._lock:
                current = self._upstream is upstream
                if current:
                    self._upstream = None
                waiting, upstream.waiting = list(upstream.waiting), collections.deque()
            upstream.sock.close()
            for dest in waiting:
                if isinstance(dest, _Client):
                    dest.drop()
                else:
                    dest.put(None)
            if current:
                self._drop_client()  # QEMU is gone: so is its client's connection

    def _route(self, upstream: _Upstream, line: str) -> None:
        if not line:
            return
        if line.startswith("IRQ "):
            client = self._client
            if client is not None:
                client.send(line)
            return
        with self._lock:
            dest = upstream.waiting.popleft() if upstream.waiting else None
        if isinstance(dest, _Client):
            dest.send(line)
        elif dest is not None:
            dest.put(line)

    def _serve(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            client = _Client(sock)
            self._client = client
            try:
                self._serve_client(client)
            finally:
                self._client = None
                client.drop()
                sock.close()

    def _serve_client(self, client: _Client) -> None:
        pending = b""
        try:
            while client.alive and (data := client.sock.recv(4096)):
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode("ascii", "replace").strip()
                    if line:  # an empty line would trip an assert in QEMU
                        self._client_line(client, line)
        except (OSError, QtestError):
            pass

    def _client_line(self, client: _Client, line: str) -> None:
        if not _is_sysresetreq(line):
            self._send(line, client)
            return
        before = self._resets.value
        reply = self._forward(line, timeout=_RESET_WAIT_S)
        if reply.startswith("OK") and not self._resets.wait_past(before, _RESET_WAIT_S):
            _log.warning("board reset not finished in %s s; answering the client", _RESET_WAIT_S)
        client.send(reply)


def _is_sysresetreq(line: str) -> bool:
    """`writel AIRCR value` with the key and SYSRESETREQ: QEMU resets the machine on it."""
    words = line.split()
    if len(words) != 3 or words[0] != "writel":
        return False
    try:
        address, value = int(words[1], 0), int(words[2], 0)
    except ValueError:
        return False
    return address == AIRCR and value & 0xFFFF0000 == _VECTKEY and bool(value & _SYSRESETREQ)
