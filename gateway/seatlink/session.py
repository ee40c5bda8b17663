"""A synchronous host end of one seat link, for hardware-in-the-loop tests.

    session = Session(serial.serial_for_url(board.serial_url))
    seq = session.send(messages.set_state(State.READY))      # Q sync first, then T; acked
    session.wait_for(lambda f: f.kind is Kind.EVENT and f.fields[1] == State.READY)
    Path("artifacts/link.log").write_bytes(session.transcript())

One thread, no background reader: input is read only inside send_command, poll and wait_for,
so a test decides when time passes. The rules (docs/protocol.md) as the host applies them:
- its reliable frames are numbered from a Q (sync), one at a time: each waits for the seat's
  A with exactly its seq, and is resent after ack_timeout, at most `attempts` times;
  then AckTimeout, and the next command starts with a new Q (the seat may not have it);
- every reliable seat frame is acked with the last in-order seq (cumulative ack);
  a repeat (at most 10 behind: the seat keeps no more) is dropped and re-acked;
- a jump ahead is dropped and re-acked too (the seat resends from its first unacked frame,
  go-back-N) and makes the host send a Q, so the seat queues a fresh snapshot; except a jump
  to a snapshot whose dropped count grew: the seat's queue collapsed into it, the frames
  jumped over are gone, and the snapshot carries the whole state, so it is taken;
- a frame further behind than a repeat can be is from a seat that restarted its count: it
  is dropped and not acked (an ack of the old count would ack the new one's frames); a
  hello with a new boot counter, or a heartbeat whose uptime went back or whose boot counter
  is not the one known, starts the count again;
- lines that are not frames are counted and skipped up to the next newline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.seatlink.codec import MAX_SEQ, Field, Frame, Kind, encode, next_seq
from gateway.seatlink.messages import Command
from gateway.seatlink.receiver import LineSplitter, Receiver, RxStatus

__all__ = [
    "AckTimeout",
    "LogEntry",
    "Received",
    "RxStatus",
    "SerialPort",
    "Session",
    "SessionError",
    "SessionTimeout",
]


class SerialPort(Protocol):
    """What the session needs of a pyserial Serial (or anything shaped like one)."""

    timeout: float | None

    def read(self, size: int = ..., /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...


class SessionError(RuntimeError):
    pass


class AckTimeout(SessionError, TimeoutError):
    """A command was sent `attempts` times and never acked."""


class SessionTimeout(SessionError, TimeoutError):
    """wait_for saw no matching frame in time."""


@dataclass(frozen=True, slots=True)
class Received:
    t: float  # clock() when its newline arrived
    raw: bytes  # the line as read, "\n" included (cut short for an overlong line)
    frame: Frame | None  # None for garbage
    status: RxStatus
    note: str = ""  # why garbage, or what a delivery did to the sequence


@dataclass(frozen=True, slots=True)
class LogEntry:
    t: float
    outgoing: bool  # host -> seat
    data: bytes



class Session:
    """Host end of one seat link over a pyserial-like port.

    ack_timeout: seconds before a command is resent; attempts: sends before AckTimeout;
    first_seq: the seq of the first Q (tests start near 65535 to cross the wrap);
    read_timeout: how long one read may block, set as port.timeout.
    """

    def __init__(
        self,
        port: SerialPort,
        *,
        ack_timeout: float = 0.5,
        attempts: int = 5,
        first_seq: int = 1,
        read_timeout: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 1 <= first_seq <= MAX_SEQ:
            raise ValueError(f"first_seq must be 1..{MAX_SEQ}")
        self.port = port
        self.ack_timeout = ack_timeout
        self.attempts = attempts
        self.clock = clock
        port.timeout = read_timeout
        self.started = clock()
        self.received: list[Received] = []  # every line, garbage included
        self.log: list[LogEntry] = []  # every line read and every write, in order
        self.rx_log = bytearray()  # the raw bytes read, exactly
        self.tx_log = bytearray()  # the raw bytes written, exactly
        self.retransmits = 0
        self.resyncs = 0  # Q frames sent because of a gap or a restart
        self.rx = Receiver()  # the seat's sequence as the host takes it
        self._lines = LineSplitter()
        self._delivered: list[Received] = []
        self._cursor = 0
        self._next_tx = first_seq
        self._synced = False
        self._inflight: int | None = None
        self._acked = False

    # --- what tests read ------------------------------------------------------------------

    @property
    def frames(self) -> list[Frame]:
        """Every delivered frame, in arrival order."""
        return [r.frame for r in self._delivered if r.frame is not None]

    @property
    def raw_log(self) -> bytes:
        """Everything the seat sent, byte for byte."""
        return bytes(self.rx_log)

    @property
    def last_seat_seq(self) -> int | None:
        return self.rx.last

    @property
    def next_host_seq(self) -> int:
        """The seq the next reliable host frame will carry."""
        return self._next_tx

    # the receiver's counters, as the session's own
    garbage = property(lambda self: self.rx.garbage)
    duplicates = property(lambda self: self.rx.duplicates)
    out_of_order = property(lambda self: self.rx.out_of_order)
    stale = property(lambda self: self.rx.stale)
    skipped = property(lambda self: self.rx.skipped)
    reboots = property(lambda self: self.rx.reboots)

    def mark(self) -> int:
        """A position for wait_for(since=...): only frames delivered after now."""
        return len(self._delivered)

    def transcript(self) -> bytes:
        """Both directions, one entry per line read or write made: "<s since start> <'>' or
        '<'> <bytes>"; an entry that does not end in a newline gets a backslash-newline (lines
        cut short, garbage written without one)."""
        out = bytearray()
        for entry in self.log:
            data = entry.data if entry.data.endswith(b"\n") else entry.data + b"\\\n"
            arrow = b">" if entry.outgoing else b"<"
            out += b"%.6f %s %s" % (entry.t - self.started, arrow, data)
        return bytes(out)

    # --- sending ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Raw bytes to the seat, framed or not (garbage tests)."""
        self.port.write(data)
        self.tx_log += data
        self.log.append(LogEntry(self.clock(), True, bytes(data)))

    def sync(self) -> int:
        """Send Q and wait for its ack: the seat then expects our next seq and sends a
        snapshot. Returns the Q's seq."""
        seq = self._sync()
        self._service()
        return seq

    def send_command(self, kind: Kind | str, fields: Sequence[Field] = ()) -> int:
        """Send one reliable command and wait for its ack; returns its seq (an X reject names
        it). The first command of a session, and the first after an AckTimeout, is preceded
        by a Q."""
        k = Kind(kind)
        if not (k.from_host and k.sequenced):
            raise ValueError(f"{k.value} is not a reliable host command")
        encode(MAX_SEQ, k, fields)  # a command the seat cannot read fails before any Q goes
        if k is Kind.SYNC:
            return self.sync()
        if not self._synced:
            self._sync()
        seq = self._send_reliable(k, fields)
        self._service()
        return seq

    def send(self, command: Command) -> int | None:
        """A built command: reliable ones as send_command (returns the seq), A and I at once."""
        if command.sequenced:
            return self.send_command(command.kind, command.fields)
        self.write(command.encode(0))
        return None

    def ping(self) -> None:
        """I: the seat answers with a heartbeat."""
        self.write(encode(0, Kind.PING))

    # --- receiving --------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> list[Frame]:
        """Read and handle input for `timeout` seconds (at least one read); returns the frames
        delivered meanwhile."""
        start = len(self._delivered)
        deadline = self.clock() + timeout
        while True:
            self._pump()
            self._service()
            if self.clock() >= deadline:
                break
        return [r.frame for r in self._delivered[start:] if r.frame is not None]

    def wait_for(
        self, predicate: Callable[[Frame], bool], *, timeout: float = 5.0, since: int | None = None
    ) -> Frame:
        """The first delivered frame matching predicate, from `since` (a mark()) or else from
        just after the last frame wait_for returned; reads input until `timeout` seconds."""
        index = self._cursor if since is None else since
        deadline = self.clock() + timeout
        while True:
            while index < len(self._delivered):
                frame = self._delivered[index].frame
                index += 1
                if frame is not None and predicate(frame):
                    self._cursor = index
                    return frame
            if self.clock() >= deadline:
                raise SessionTimeout(f"no matching frame within {timeout} s")
            self._pump()
            self._service()

    # --- internals --------------------------------------------------------------------------

    def _send_reliable(self, kind: Kind, fields: Sequence[Field]) -> int:
        if self._inflight is not None:
            raise SessionError("a command is already waiting for its ack")
        seq = self._next_tx
        line = encode(seq, kind, fields)  # before the seq is spent: a bad command costs none
        self._next_tx = next_seq(seq)
        self._inflight, self._acked = seq, False
        try:
            for attempt in range(self.attempts):
                if attempt:
                    self.retransmits += 1
                self.write(line)
                deadline = self.clock() + self.ack_timeout
                while not self._acked and self.clock() < deadline:
                    self._pump()
                if self._acked:
                    return seq
        finally:
            self._inflight = None
        # The seat may never have had it, and it takes only the seq after its last: resync.
        self._synced = False
        raise AckTimeout(f"{kind.value} seq {seq} not acked after {self.attempts} sends")

    def _sync(self) -> int:
        self.rx.resynced()  # any Q brings the snapshot a gap asks for
        seq = self._send_reliable(Kind.SYNC, ())
        self._synced = True
        return seq

    def _service(self) -> None:
        # A Q asked for by a gap goes out once no command is waiting for its ack: sent in the
        # middle, it would take a seq the seat may still be waiting for.
        while self.rx.need_resync and self._inflight is None:
            self.resyncs += 1
            self._sync()

    def _pump(self) -> None:
        waiting = getattr(self.port, "in_waiting", 0)
        data = self.port.read(max(1, waiting if isinstance(waiting, int) else 0))
        if not data:
            return
        t = self.clock()
        self.rx_log += data
        for line, overlong in self._lines.feed(data):
            self.log.append(LogEntry(t, False, line))  # whole lines read better
            self._handle(t, line, overlong)

    def _handle(self, t: float, raw: bytes, overlong: bool) -> None:
        out = self.rx.take(raw, overlong=overlong)
        if out.status is RxStatus.BLANK:
            return
        if out.status is RxStatus.ACK:
            assert out.frame is not None
            if out.frame.fields and out.frame.fields[0] == self._inflight:
                self._acked = True
        record = Received(t, raw, out.frame, out.status, out.note)
        self.received.append(record)
        if out.status is RxStatus.DELIVERED:
            self._delivered.append(record)
        if out.ack is not None:
            self.write(encode(0, Kind.ACK, [out.ack]))
