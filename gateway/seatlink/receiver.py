"""The host's rules for what arrives from a seat, without any I/O.

Both host ends use it: the synchronous `Session` of the hardware-in-the-loop tests and the
edge gateway's asyncio links. `LineSplitter` cuts the byte stream into lines (an overlong
line is dropped whole at its newline); `Receiver.take(line)` decides, for one line, what the
host does with it (docs/protocol.md, "Host"):

- a reliable seat frame is taken only in order and acked with the last in-order seq
  (cumulative ack); a repeat (at most QUEUE_SIZE behind: the seat keeps no more) is dropped
  and re-acked;
- a jump ahead is dropped and re-acked (the seat resends from its first unacked frame,
  go-back-N) and raises `need_resync`, so the host sends one Q per gap; except a jump to a
  snapshot that says the frames jumped over are gone (its last field: the first seq its
  full queue dropped, at or before the one the host expects): the seat's queue collapsed
  into it, and the snapshot carries the whole state, so it is taken. Any other snapshot
  past a gap (the one a Q asks for, say) is a frame past a gap like any other;
- a frame further behind than a repeat can be is from a seat that restarted its count: it is
  dropped and not acked (an ack of the old count would ack the new one's frames); a hello
  with a new boot counter, or a heartbeat whose uptime went back or whose boot counter is
  not the one known, starts the count again;
- lines that are not frames are garbage, blank lines are skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.seatlink.codec import (
    LINE_MAX,
    MAX_SEQ,
    QUEUE_SIZE,
    CrcError,
    Direction,
    Frame,
    FrameError,
    Kind,
    decode,
    next_ordinal,
    next_seq,
    seq_of_ordinal,
)

__all__ = ["LineSplitter", "Outcome", "Receiver", "RxStatus"]

_HALF = MAX_SEQ // 2  # a seq this far ahead or more counts as behind (already seen)
_BEAT_FIELDS = 11  # a heartbeat with the boot counter (field 9) and board uid
_BEAT_NEWEST = 11  # index of the newest seq queued, in a heartbeat that has it (12 fields)
_SNAP_GONE_FROM = 9  # index of the first seq dropped before a snapshot (10 fields)
_SNAP_DROPPED = 8  # index of the dropped count (a 9-field snapshot ends with it)


class RxStatus(enum.Enum):
    DELIVERED = "delivered"  # in order, or a heartbeat: the host acts on it
    ACK = "ack"  # the seat's ack of a host frame: link business
    DUPLICATE = "duplicate"  # a reliable frame already delivered: dropped, re-acked
    OUT_OF_ORDER = "out-of-order"  # a jump ahead: dropped, re-acked, Q wanted
    STALE = "stale"  # too far behind to be a repeat: dropped, not acked
    GARBAGE = "garbage"  # not a frame
    BLANK = "blank"  # an empty line: no frame, no fault
    HELD = "held"  # a reliable frame while the owner has not said where the count stands


@dataclass(frozen=True, slots=True)
class Outcome:
    status: RxStatus
    frame: Frame | None  # None for garbage and blank lines
    ack: int | None = None  # write `0 A <ack>` to the seat now
    note: str = ""  # why garbage, or what a delivery did to the sequence
    crc_error: bool = False  # garbage because of a CRC mismatch (link quality)


class LineSplitter:
    """Bytes in, whole lines out (newline kept). A line longer than LINE_MAX (+ CR LF) is
    cut short and reported as overlong at its newline, so memory stays bounded."""

    def __init__(self) -> None:
        self._line = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """The lines completed by data, each with whether it was overlong."""
        out: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._take(data[start:])
                return out
            self._take(data[start : end + 1])
            out.append((bytes(self._line), self._overlong))
            self._line.clear()
            self._overlong = False
            start = end + 1

    def clear(self) -> None:
        """Forget a partial line (the port was closed and opened again)."""
        self._line.clear()
        self._overlong = False

    def _take(self, part: bytes) -> None:
        room = LINE_MAX + 2 - len(self._line)  # + "\r\n"
        if len(part) > room:
            self._overlong = True
            part = part[: max(room, 0)]
        self._line += part


class Receiver:
    """Sequence state of one seat link, host side. `take` each line; after a DELIVERED
    reliable frame, `boot` and `dropped` are the seat's latest known values.

    `boot` is the boot counter of the count being taken: from its hello, or from a heartbeat
    that came while no count was under way (nothing taken yet, or a restart just seen). A
    heartbeat never sets it for a count already under way: the seat may have restarted since
    that count's frames, and a new boot's hello must not then pass for a resend.
    `beat_boot` is the boot counter of the last heartbeat (None from older firmware).

    `need_resync` is raised by a gap or a restart seen in a heartbeat: the owner sends a Q
    once no command of its own waits for an ack, then clears it (`resynced`).

    `known_start` (the edge gateway): while no count is under way, reliable frames are HELD
    (not taken, not acked) until the owner says where it stands (`start`): the newest seq
    it stored from this board and boot, or 0 when it has none (the boot's hello, seq 1,
    comes first). Taking whatever arrives first instead would start the count at a newer
    frame whenever the older one was damaged on the line, and the older ones would then
    look like repeats, and be lost.

    `n` is the ordinal of `last` in its boot (docs/mqtt.md, the event id): it goes on where
    `last` wraps, from where the owner said the count stands, or from the seq of the first
    frame of a count nobody placed (no wrap known before it).

    `newest` is the newest seq the seat is known to have queued in the count under way
    (from its frames, and from heartbeats that say it); when the seat restarts, the frames
    after `last` up to it were in its RAM and are gone: `lost_at_reset` counts them. Frames
    queued after the last word from the old boot cannot be known, and are not counted."""

    def __init__(self, *, known_start: bool = False) -> None:
        self.known_start = known_start
        self.garbage = 0
        self.crc_errors = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.stale = 0
        self.skipped = 0  # seqs jumped over by a snapshot
        self.reboots = 0  # seat restarts seen (a new boot in a hello or heartbeat, uptime back)
        self.lost_at_reset = 0  # frames known queued and not taken when the seat restarted
        self.delivered = 0
        self.need_resync = False
        self.last: int | None = None  # last in-order seat seq
        self.n: int | None = None  # its ordinal in its boot (1, 2, ... past the wrap; 0: none)
        self.boot: int | None = None  # boot counter of the count being taken (see above)
        self.beat_boot: int | None = None  # boot counter in the last heartbeat
        self.dropped: int | None = None  # the seat's dropped count in the last snapshot
        self.uptime: int | None = None  # from the last heartbeat
        self.gap_open = False  # frames past a gap seen since the last one taken
        self.newest: int | None = None  # newest seq known queued in this count (see above)

    def resynced(self) -> None:
        """A Q went out: it brings the snapshot a gap asked for."""
        self.need_resync = False

    def start(self, last: int, boot: int, *, dropped: int | None,
              n: int | None = None) -> None:  # fmt: skip
        """The count of boot `boot` stands at `last` (0: nothing taken, seq 1 is next);
        `dropped`: the seat's dropped count as last known (a heartbeat of this boot), so
        that only a snapshot with more dropped is taken as a collapsed queue: with None any
        snapshot ahead is, and the frames before it would be skipped. `n`: the ordinal of
        `last` in its boot, when the count has wrapped (None: it has not, n is `last`)."""
        if not 0 <= last <= MAX_SEQ:
            raise ValueError(f"last seq {last} is not 0..{MAX_SEQ}")
        if n is None:
            n = last
        elif n < 0 or (0 if n == 0 else seq_of_ordinal(n)) != last:
            raise ValueError(f"ordinal {n} is not one of seq {last}")
        self.last, self.boot, self.dropped, self.n = last, boot, dropped, n
        if self.newest is None or not self._ahead_of_last(self.newest):
            self.newest = last

    @property
    def holding(self) -> bool:
        return self.known_start and self.last is None

    def forget(self) -> None:
        """Start over as if nothing had been taken (a new connection to another board)."""
        self.__init__(known_start=self.known_start)  # type: ignore[misc]

    def take(self, raw: bytes, *, overlong: bool = False) -> Outcome:
        if overlong:
            return self._garbage(f"line longer than {LINE_MAX} bytes")
        # The seat skips blank lines too. NULs alone are a UART starting up (QEMU's nRF51
        # sends the dummy byte that a real one sends with its pins disconnected), not noise.
        if raw.strip(b"\r\n\x00") == b"":
            return Outcome(RxStatus.BLANK, None)
        try:
            frame = decode(raw, direction=Direction.SEAT_TO_HOST)
        except FrameError as exc:
            return self._garbage(f"{exc.reason}: {exc}", crc=isinstance(exc, CrcError))
        if frame.kind is Kind.ACK:
            return Outcome(RxStatus.ACK, frame)
        if not frame.kind.sequenced:
            if frame.kind is Kind.HEARTBEAT:
                self._heartbeat(frame)
            self.delivered += 1
            return Outcome(RxStatus.DELIVERED, frame)
        return self._reliable(frame)

    def _garbage(self, note: str, *, crc: bool = False) -> Outcome:
        self.garbage += 1
        self.crc_errors += crc
        return Outcome(RxStatus.GARBAGE, None, note=note, crc_error=crc)

    def _reliable(self, frame: Frame) -> Outcome:
        seq = frame.seq
        if self.holding:
            return Outcome(RxStatus.HELD, frame, None, "the count's start is not known yet")
        if self.last is None:
            return self._accept(frame, "first")
        if self._new_boot(frame):  # before the next seq: a new boot's hello 1 may be it
            self._restarted()
            return self._accept(frame, "new boot")
        if seq == next_seq(self.last):
            return self._accept(frame)
        ahead = (seq - next_seq(self.last)) % MAX_SEQ
        if ahead < _HALF:
            if frame.kind is Kind.SNAPSHOT and self._collapsed(frame):
                self.skipped += ahead
                return self._accept(frame, f"snapshot after {ahead} dropped by the seat")
            self._saw(seq)
            self.out_of_order += 1
            if not self.gap_open:  # one Q per gap, not one per frame past it
                self.gap_open = self.need_resync = True
            return Outcome(RxStatus.OUT_OF_ORDER, frame, self.last, f"{ahead} missing before it")
        behind = (self.last - seq) % MAX_SEQ
        if behind < QUEUE_SIZE:
            self.duplicates += 1
            return Outcome(RxStatus.DUPLICATE, frame, self.last)
        self.stale += 1
        return Outcome(RxStatus.STALE, frame, None, f"{behind} behind: not a repeat")

    def _accept(self, frame: Frame, note: str = "") -> Outcome:
        if self.last is None or self.n is None:
            self.n = frame.seq  # a count nobody placed: no wrap is known before it
        else:
            self.n = next_ordinal(self.n, frame.seq)
        self.last, self.gap_open = frame.seq, False
        self._saw(frame.seq)
        value = frame.fields[1] if len(frame.fields) > 1 else None
        if frame.kind is Kind.HELLO and isinstance(value, int):
            self.boot = value
        dropped = frame.fields[_SNAP_DROPPED] if len(frame.fields) > _SNAP_DROPPED else None
        if frame.kind is Kind.SNAPSHOT and isinstance(dropped, int):
            self.dropped = dropped
        self.delivered += 1
        return Outcome(RxStatus.DELIVERED, frame, frame.seq, note)

    def _collapsed(self, frame: Frame) -> bool:
        # The seat's full queue dropped every frame from `gone` on, then queued this
        # snapshot: when the frame the host expects next is among them, nothing before the
        # snapshot will come. Any other snapshot past a gap (the one a Q asks for, with
        # gone 0) has its frames before it still queued: lost on the way, they come again.
        fields = frame.fields
        if len(fields) > _SNAP_GONE_FROM:
            gone = fields[_SNAP_GONE_FROM]
            assert self.last is not None
            return (isinstance(gone, int) and 0 < gone <= MAX_SEQ
                    and (next_seq(self.last) - gone) % MAX_SEQ < _HALF)  # fmt: skip
        # Firmware from before that says only how many it dropped in all: a grown count
        # means a collapse. With no count known (None) any snapshot ahead is taken, so a
        # resync's snapshot past a damaged frame skips frames: new firmware has no hazard.
        dropped = fields[_SNAP_DROPPED] if len(fields) > _SNAP_DROPPED else None
        if not isinstance(dropped, int):
            return False
        return self.dropped is None or dropped > self.dropped

    def _ahead_of_last(self, seq: int) -> bool:
        return self.last is not None and 0 < (seq - self.last) % MAX_SEQ < _HALF

    def _saw(self, seq: int) -> None:
        if self.newest is None or 0 < (seq - self.newest) % MAX_SEQ < _HALF:
            self.newest = seq

    def _heartbeat(self, frame: Frame) -> None:
        uptime = frame.fields[0] if frame.fields else None
        if not isinstance(uptime, int):
            return
        # boot counter: field 9 of 11 or 12; older firmware sends 9 fields, without it
        boot = frame.fields[8] if len(frame.fields) >= _BEAT_FIELDS else None
        if not isinstance(boot, int):
            boot = None
        newest = frame.fields[_BEAT_NEWEST] if len(frame.fields) > _BEAT_NEWEST else None
        known = self.boot if self.boot is not None else self.beat_boot
        if (boot is not None and known is not None and boot != known) or (
            self.uptime is not None and uptime < self.uptime and self.last is not None
        ):
            # restarted, and its hello never reached us: take its count from the next frame
            self._restarted()
            self.last = None
            self.need_resync = True
        if boot is not None:
            self.beat_boot = boot
            if self.last is None:
                self.boot = boot  # the count starts after this heartbeat: it is this boot's
        if (isinstance(newest, int) and 0 < newest <= MAX_SEQ and boot is not None
                and boot == self.boot and self.last is not None):  # fmt: skip
            self._saw(newest)
        self.uptime = uptime

    def _restarted(self) -> None:
        self.reboots += 1
        if self.newest is not None and self._ahead_of_last(self.newest):
            assert self.last is not None
            self.lost_at_reset += (self.newest - self.last) % MAX_SEQ
        self.newest = None
        # the old boot's uptime is no measure for the new one's heartbeats
        self.boot = self.dropped = self.uptime = None
        self.n = None  # the new boot's frames are counted from its first
        self.gap_open = self.need_resync = False

    def _new_boot(self, frame: Frame) -> bool:
        # The seat numbers from 1 again after a reset; its hello says so with a boot counter
        # the host has not seen (a resent hello repeats the counter).
        if frame.kind is not Kind.HELLO or len(frame.fields) < 2:
            return False
        boot = frame.fields[1]
        return isinstance(boot, int) and boot != self.boot
