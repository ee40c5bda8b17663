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
  hello with a new boot counter, or a heartbeat whose uptime went back, starts the count
  again;
- lines that are not frames are counted and skipped up to the next newline.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.seatlink.codec import (
    LINE_MAX,
    MAX_SEQ,
    QUEUE_SIZE,
    Direction,
    Field,
    Frame,
    FrameError,
    Kind,
    decode,
    encode,
    next_seq,
)
from gateway.seatlink.messages import Command

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


class RxStatus(enum.Enum):
    DELIVERED = "delivered"  # in order, or a heartbeat: wait_for and frames see it
    ACK = "ack"  # the seat's ack of a host frame: link business, recorded only
    DUPLICATE = "duplicate"  # a reliable frame already delivered: dropped, re-acked
    OUT_OF_ORDER = "out-of-order"  # a jump ahead: dropped, re-acked, Q sent
    STALE = "stale"  # too far behind to be a repeat: dropped, not acked
    GARBAGE = "garbage"  # not a frame


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


_HALF = MAX_SEQ // 2  # a seq this far ahead or more counts as behind (already seen)


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
        self.garbage = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.retransmits = 0
        self.resyncs = 0  # Q frames sent because of a gap or a restart
        self.stale = 0  # frames too far behind to be repeats
        self.skipped = 0  # seqs jumped over by a snapshot
        self.reboots = 0  # seat restarts seen (hello with a new boot, uptime going back)
        self._delivered: list[Received] = []
        self._cursor = 0
        self._next_tx = first_seq
        self._synced = False
        self._inflight: int | None = None
        self._acked = False
        self._rx_last: int | None = None  # last in-order seat seq
        self._boot: int | None = None  # boot counter of the last hello
        self._dropped: int | None = None  # the seat's dropped count in the last snapshot
        self._uptime: int | None = None  # from the last heartbeat
        self._gap_open = False
        self._need_resync = False
        self._line = bytearray()
        self._overlong = False

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
        return self._rx_last

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
        self._need_resync = False  # any Q brings the snapshot a gap asks for
        seq = self._send_reliable(Kind.SYNC, ())
        self._synced = True
        return seq

    def _service(self) -> None:
        # A Q asked for by a gap goes out once no command is waiting for its ack: sent in the
        # middle, it would take a seq the seat may still be waiting for.
        while self._need_resync and self._inflight is None:
            self.resyncs += 1
            self._sync()

    def _pump(self) -> None:
        waiting = getattr(self.port, "in_waiting", 0)
        data = self.port.read(max(1, waiting if isinstance(waiting, int) else 0))
        if not data:
            return
        t = self.clock()
        self.rx_log += data
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._take(data[start:])
                return
            self._take(data[start : end + 1])
            self.log.append(LogEntry(t, False, bytes(self._line)))  # whole lines read better
            if self._overlong:
                self._overlong = False
                self._garbage(t, bytes(self._line), f"line longer than {LINE_MAX} bytes")
            else:
                self._handle(t, bytes(self._line))
            self._line.clear()
            start = end + 1

    def _take(self, part: bytes) -> None:
        # An overlong line is cut short here and dropped whole at its newline.
        room = LINE_MAX + 2 - len(self._line)  # + "\r\n"
        if len(part) > room:
            self._overlong = True
            part = part[: max(room, 0)]
        self._line += part

    def _garbage(self, t: float, raw: bytes, note: str) -> None:
        self.garbage += 1
        self.received.append(Received(t, raw, None, RxStatus.GARBAGE, note))

    def _deliver(self, t: float, raw: bytes, frame: Frame, note: str = "") -> None:
        record = Received(t, raw, frame, RxStatus.DELIVERED, note)
        self.received.append(record)
        self._delivered.append(record)

    def _handle(self, t: float, raw: bytes) -> None:
        if raw.strip(b"\r\n") == b"":
            return  # a blank line is no frame but no fault either (the seat skips them too)
        try:
            frame = decode(raw, direction=Direction.SEAT_TO_HOST)
        except FrameError as exc:
            self._garbage(t, raw, f"{exc.reason}: {exc}")
            return
        if frame.kind is Kind.ACK:
            if frame.fields and frame.fields[0] == self._inflight:
                self._acked = True
            self.received.append(Received(t, raw, frame, RxStatus.ACK))
            return
        if not frame.kind.sequenced:
            if frame.kind is Kind.HEARTBEAT:
                self._heartbeat(frame)
            self._deliver(t, raw, frame)
            return
        seq = frame.seq
        if self._rx_last is None:
            self._accept(t, raw, frame, "first")
        elif seq == next_seq(self._rx_last):
            self._accept(t, raw, frame)
        elif self._new_boot(frame):
            self._restarted()
            self._accept(t, raw, frame, "new boot")
        elif (ahead := (seq - next_seq(self._rx_last)) % MAX_SEQ) < _HALF:
            if frame.kind is Kind.SNAPSHOT and self._collapsed(frame):
                self.skipped += ahead
                self._accept(t, raw, frame, f"snapshot after {ahead} dropped by the seat")
            else:
                self.out_of_order += 1
                note = f"{ahead} missing before it"
                self.received.append(Received(t, raw, frame, RxStatus.OUT_OF_ORDER, note))
                if not self._gap_open:  # one Q per gap, not one per frame past it
                    self._gap_open = self._need_resync = True
        elif (self._rx_last - seq) % MAX_SEQ < QUEUE_SIZE:
            self.duplicates += 1
            self.received.append(Received(t, raw, frame, RxStatus.DUPLICATE))
        else:
            self.stale += 1
            note = f"{(self._rx_last - seq) % MAX_SEQ} behind: not a repeat"
            self.received.append(Received(t, raw, frame, RxStatus.STALE, note))
            return
        if self._rx_last is not None:
            self.write(encode(0, Kind.ACK, [self._rx_last]))

    def _accept(self, t: float, raw: bytes, frame: Frame, note: str = "") -> None:
        self._rx_last, self._gap_open = frame.seq, False
        value = frame.fields[1] if len(frame.fields) > 1 else None
        if frame.kind is Kind.HELLO and isinstance(value, int):
            self._boot = value
        dropped = frame.fields[8] if len(frame.fields) > 8 else None
        if frame.kind is Kind.SNAPSHOT and isinstance(dropped, int):
            self._dropped = dropped
        self._deliver(t, raw, frame, note)

    def _collapsed(self, frame: Frame) -> bool:
        # The seat counts every frame its full queue drops, then queues this snapshot: a
        # grown count means the frames jumped over are gone. Without it they are still
        # queued (lost on the way, say) and come again in order.
        dropped = frame.fields[8] if len(frame.fields) > 8 else None
        if not isinstance(dropped, int):
            return False
        return self._dropped is None or dropped > self._dropped

    def _heartbeat(self, frame: Frame) -> None:
        uptime = frame.fields[0] if frame.fields else None
        if not isinstance(uptime, int):
            return
        if self._uptime is not None and uptime < self._uptime and self._rx_last is not None:
            # restarted, and its hello never reached us: take its count from the next frame
            self._restarted()
            self._rx_last = None
            self._need_resync = True
        self._uptime = uptime

    def _restarted(self) -> None:
        self.reboots += 1
        self._boot = self._dropped = None
        self._gap_open = self._need_resync = False

    def _new_boot(self, frame: Frame) -> bool:
        # The seat numbers from 1 again after a reset; its hello says so with a boot counter
        # the host has not seen (a resent hello repeats the counter).
        if frame.kind is not Kind.HELLO or len(frame.fields) < 2:
            return False
        boot = frame.fields[1]
        return isinstance(boot, int) and boot != self._boot
