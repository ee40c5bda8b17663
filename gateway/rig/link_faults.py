"""A faulty cable for fault tests: a TCP proxy between a gateway and a seat link.

    with FaultyLink(target=("127.0.0.1", seat_port), corrupt=0.001, seed=7) as link:
        gateway_connects_to(link.url)          # socket://127.0.0.1:PORT
        link.unplug()                          # both ends see EOF; connections refused
        link.replug()                          # same port again

Bytes are forwarded both ways; with probability `corrupt` per byte one random bit of it is
flipped (as line noise would), with a random generator of its own per direction, so a
given seed and byte stream always damage the same bytes. The gateway side is whoever
connects to `url`; each accepted connection gets its own connection to `target`.
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from gateway.rig.thread_calls import ThreadCalls

__all__ = ["TO_GATEWAY", "TO_SEAT", "FaultyLink", "flip_bits"]

TO_SEAT = "to_seat"  # gateway -> target
TO_GATEWAY = "to_gateway"  # target -> gateway
_CHUNK = 65536
_BUFFER_MAX = 1 << 20  # per direction: beyond it the source is not read (back-pressure)

_T = TypeVar("_T")


def flip_bits(buf: bytearray | memoryview, p: float, rng: random.Random) -> list[int]:
    """Line noise, in place: each byte of buf gets one random bit flipped with probability
    p. Returns the positions of the bytes it damaged. (Also the seat farm's noise.)"""
    hit: list[int] = []
    if p <= 0.0:
        return hit
    for i in range(len(buf)):
        if rng.random() < p:
            buf[i] ^= 1 << rng.randrange(8)
            hit.append(i)
    return hit


class _Pipe:
    """One direction of one connection pair: bytes read from src, waiting for dst."""

    def __init__(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        self.src = src
        self.dst = dst
        self.direction = direction
        self.pending = bytearray()
        self.eof = False  # src said EOF: dst gets it once pending is out


class _Pair:
    def __init__(self, gateway: socket.socket, target: socket.socket) -> None:
        self.gateway = gateway
        self.target = target
        self.up = _Pipe(gateway, target, TO_SEAT)
        self.down = _Pipe(target, gateway, TO_GATEWAY)


class FaultyLink:
    """target: (host, port) of the seat link. corrupt: probability per byte of one bit
    flipped, both directions (may be changed while running). seed: for the bit flips.

    Counters (per direction, keys TO_SEAT and TO_GATEWAY): `forwarded` bytes and
    `corrupted` bytes. `connections`: gateway connections accepted."""

    def __init__(self, target: tuple[str, int], *, corrupt: float = 0.0, seed: int = 0,
                 host: str = "127.0.0.1") -> None:  # fmt: skip
        if not 0.0 <= corrupt <= 1.0:
            raise ValueError("corrupt is a probability, 0..1")
        self.target = target
        self.corrupt = corrupt
        self.host = host
        self.forwarded = {TO_SEAT: 0, TO_GATEWAY: 0}
        self.corrupted = {TO_SEAT: 0, TO_GATEWAY: 0}
        self.connections = 0
        self.refused_by_target = 0  # gateway connections closed because target refused
        self._rng = {d: random.Random(f"{seed}/{d}") for d in (TO_SEAT, TO_GATEWAY)}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._sel = selectors.DefaultSelector()
        self._calls = ThreadCalls()
        self._sel.register(self._calls.waker, selectors.EVENT_READ, None)
        self._pairs: list[_Pair] = []
        self._listener: socket.socket | None = None
        self._listen(0)
        assert self._listener is not None
        self.port: int = self._listener.getsockname()[1]
        self.url = f"socket://{host}:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FaultyLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FaultyLink:
        if self._thread is not None:
            raise RuntimeError("FaultyLink started already")
        self._thread = threading.Thread(target=self._main, name="faulty-link", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close everything; idempotent. Raises RuntimeError if the proxy thread failed."""
        self._stopping = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._calls.wake()
            thread.join(timeout=5)
            if thread.is_alive():
                raise RuntimeError("FaultyLink's thread did not stop within 5 s")
        self._close_all()
        self._calls.close()
        self._sel.close()
        if self.error is not None:
            raise RuntimeError("FaultyLink's thread failed") from self.error

    def counters(self) -> dict[str, dict[str, int]]:
        """{"forwarded": {TO_SEAT: n, TO_GATEWAY: n}, "corrupted": {...}}, read between two
        events of the proxy thread: a byte the far end has read is counted (the attributes,
        read from another thread, may lag the socket by one send)."""
        return self._call(lambda: {"forwarded": dict(self.forwarded),
                                   "corrupted": dict(self.corrupted)})  # fmt: skip

    # --- faults ----------------------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self._listener is not None

    def unplug(self) -> None:
        """Pull the cable: every connection is closed on both sides (the gateway reads EOF)
        and new ones are refused, the port being closed, until replug()."""
        self._call(self._unplug)

    def replug(self) -> None:
        """Listen again on the same port."""
        self._call(lambda: self._listen(self.port) if self._listener is None else None)

    # --- the proxy thread ------------------------------------------------------------------

    def _call(self, fn: Callable[[], _T]) -> _T:
        return self._calls.call(fn, thread=self._thread)

    def _listen(self, port: int) -> None:
        # create_server sets SO_REUSEADDR: the port comes back at once after unplug()
        listener = socket.create_server((self.host, port), backlog=8)
        listener.setblocking(False)
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, None)

    def _unplug(self) -> None:
        self._close_all()

    def _close_all(self) -> None:
        if self._listener is not None:
            self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
        for pair in list(self._pairs):
            self._close_pair(pair)

    def _main(self) -> None:
        try:
            while not self._stopping:
                for key, events in self._sel.select(timeout=1.0):
                    if key.fileobj is self._calls.waker:
                        self._calls.drain()
                    elif key.fileobj is self._listener:
                        self._accept()
                    else:
                        pair, pipe_in, pipe_out = key.data
                        if pair not in self._pairs:
                            continue  # closed by an earlier event of this round
                        if events & selectors.EVENT_READ and pipe_in is not None:
                            self._pump_in(pair, pipe_in)
                        if events & selectors.EVENT_WRITE and pipe_out is not None \
                                and pair in self._pairs:
                            self._pump_out(pair, pipe_out)
                self._calls.run()
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            self._calls.cancel_all()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            gateway, _ = self._listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        self.connections += 1
        try:
            target = socket.create_connection(self.target, timeout=2)
        except OSError:
            self.refused_by_target += 1
            gateway.close()  # as a cable to a seat that is not there: nothing answers
            return
        for s in (gateway, target):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(gateway, target)
        self._pairs.append(pair)
        self._update(pair)

    def _update(self, pair: _Pair) -> None:
        """Register each socket for what it needs: reading while its outgoing pipe has room
        and no EOF, writing while the pipe into it has bytes waiting."""
        for sock, pipe_in, pipe_out in ((pair.gateway, pair.up, pair.down),
                                        (pair.target, pair.down, pair.up)):  # fmt: skip
            events = 0
            if not pipe_in.eof and len(pipe_in.pending) < _BUFFER_MAX:
                events |= selectors.EVENT_READ
            if pipe_out.pending:
                events |= selectors.EVENT_WRITE
            key = self._sel.get_map().get(sock)
            if events == 0:
                if key is not None:
                    self._sel.unregister(sock)
            elif key is None:
                self._sel.register(sock, events, (pair, pipe_in, pipe_out))
            elif key.events != events:
                self._sel.modify(sock, events, (pair, pipe_in, pipe_out))

    def _pump_in(self, pair: _Pair, pipe: _Pipe) -> None:
        try:
            data = pipe.src.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._close_pair(pair)
            return
        if not data:
            pipe.eof = True
            if not pipe.pending:
                self._half_close(pair, pipe)
                return
        else:
            pipe.pending += self._damage(data, pipe.direction)
            self._pump_out(pair, pipe)
            return
        self._update(pair)

    def _pump_out(self, pair: _Pair, pipe: _Pipe) -> None:
        if pipe.pending:
            try:
                sent = pipe.dst.send(pipe.pending)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._close_pair(pair)
                return
            del pipe.pending[:sent]
            self.forwarded[pipe.direction] += sent
        if pipe.eof and not pipe.pending:
            self._half_close(pair, pipe)
            return
        self._update(pair)

    def _half_close(self, pair: _Pair, pipe: _Pipe) -> None:
        # One side hung up: the other gets its EOF. A serial link has no half-open state
        # worth keeping, so once both are done (or either side errs) the pair goes.
        try:
            pipe.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        other = pair.down if pipe is pair.up else pair.up
        if other.eof and not other.pending:
            self._close_pair(pair)
        else:
            self._update(pair)

    def _close_pair(self, pair: _Pair) -> None:
        if pair in self._pairs:
            self._pairs.remove(pair)
        for sock in (pair.gateway, pair.target):
            if self._sel.get_map().get(sock) is not None:
                self._sel.unregister(sock)
            # unread input would turn the close into a reset: the far end should read EOF
            try:
                sock.setblocking(False)
                while sock.recv(_CHUNK):
                    pass
            except OSError:
                pass
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _damage(self, data: bytes, direction: str) -> bytes:
        p = self.corrupt
        if p <= 0.0:
            return data
        out = bytearray(data)
        self.corrupted[direction] += len(flip_bits(out, p, self._rng[direction]))
        return bytes(out)
