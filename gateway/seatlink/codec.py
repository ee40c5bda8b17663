"""Seat link frame codec: the bytes between a seat board and the host.

A frame is one ASCII line, ``body "*" CRC "\\n"`` with ``body = SEQ " " KIND (" " FIELD)*``
and CRC the CRC-16/CCITT-FALSE of the body as four upper-case hex digits.
docs/protocol.md is the specification; firmware/frame.py, tx.py and rx.py are the seat's end.

The host is stricter than the seat where that costs nothing (numbers in canonical form,
sequence numbers in 1..65535) and refuses to *encode* anything the seat would drop, so a
frame that leaves the host is one the seat can read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "FIELDS_MAX",
    "LINE_MAX",
    "MAX_SEQ",
    "NUMBER_MAX",
    "QUEUE_SIZE",
    "SEAT_LINE_MAX",
    "SETTINGS",
    "CrcError",
    "Direction",
    "ErrorCode",
    "EventCode",
    "Field",
    "Frame",
    "FrameError",
    "GrammarError",
    "Kind",
    "OversizedError",
    "Reason",
    "SequenceError",
    "SettingKey",
    "SettingSpec",
    "SnapshotFlag",
    "State",
    "UnknownKindError",
    "Why",
    "crc16",
    "decode",
    "encode",
    "next_ordinal",
    "next_seq",
    "seq_is_new",
    "seq_of_ordinal",
]

MAX_SEQ = 65535  # reliable sequence numbers run 1..MAX_SEQ, then wrap to 1
SEAT_LINE_MAX = 64  # bytes before "\n" the seat keeps (firmware/rx.py RB); longer lines are dropped
FIELDS_MAX = 10  # fields after the kind the seat parses (firmware/frame.py F = seq + 10)
NUMBER_MAX = 99_999_999  # the seat's parser refuses larger numbers
QUEUE_SIZE = 10  # unacked frames the seat keeps (firmware/tx.py SIZE)
# Seat frames are at most 127 bytes before "\n" (firmware/tx.py TB); the host allows more so a
# firmware that grows a frame still decodes, but not unbounded: a line is garbage past this.
LINE_MAX = 255

Field = int | str


class Direction(enum.StrEnum):
    SEAT_TO_HOST = "seat->host"
    HOST_TO_SEAT = "host->seat"


class Kind(enum.StrEnum):
    """Frame kinds: one upper-case letter on the wire."""

    # seat -> host
    HELLO = "B"
    SNAPSHOT = "S"
    EVENT = "E"
    REJECT = "X"
    HEARTBEAT = "H"
    # both ways
    ACK = "A"
    # host -> seat
    OFFER = "O"
    CANCEL = "C"
    CONNECTED = "K"
    HOLD = "P"
    RELEASED = "L"
    SET_STATE = "T"
    SETTINGS = "G"
    HELP = "U"
    MESSAGE = "M"
    AGENT = "N"
    SYNC = "Q"
    PING = "I"
    EXIT = "Z"

    @property
    def sequenced(self) -> bool:
        """Reliable (seq 1..65535, acked, retransmitted) rather than seq 0."""
        return self not in _UNSEQUENCED

    @property
    def from_seat(self) -> bool:
        return self in _SEAT_KINDS

    @property
    def from_host(self) -> bool:
        return self not in _SEAT_KINDS or self is Kind.ACK

    @property
    def carries_text(self) -> bool:
        """Hello and heartbeat carry text tokens (firmware version, board uid and name)."""
        return self is Kind.HELLO or self is Kind.HEARTBEAT

    def sent_by(self, direction: Direction) -> bool:
        return self.from_seat if direction is Direction.SEAT_TO_HOST else self.from_host


_UNSEQUENCED = frozenset({Kind.ACK, Kind.HEARTBEAT, Kind.PING})
_SEAT_KINDS = frozenset(
    {Kind.HELLO, Kind.SNAPSHOT, Kind.EVENT, Kind.REJECT, Kind.HEARTBEAT, Kind.ACK}
)


class State(enum.IntEnum):
    LOGGED_OUT = 0
    READY = 1
    NOT_READY = 2
    RINGING = 3
    TALKING = 4
    HOLD = 5
    ACW = 6


class Reason(enum.IntEnum):
    """Not Ready reasons; 0 on the wire means "no reason"."""

    BREAK = 1
    MEAL = 2
    MEETING = 3
    TRAINING = 4
    RESTROOM = 5
    COACHING = 6
    NO_ANSWER = 7
    AWAY = 8
    WRAP = 9  # stays Not Ready after ACW (setting acw_stay_nr)
    SUPERVISOR = 10


class EventCode(enum.IntEnum):
    STATE = 1  # a = Why
    ANSWERED = 2  # a = ms ringing
    RING_NO_ANSWER = 3  # a = ms ringing, b = consecutive misses
    RELEASED = 4  # a = Why
    HOLD_OVER_LIMIT = 5  # a = ms on hold
    HELP = 6  # a = 1 asked / 0 cleared
    PENDING = 7  # a = pending state or -1 (none), b = its reason
    HOOK = 8  # a = 1 headset lifted off its hanger / 0 put back on it
    LOGIN_REFUSED = 9  # a = 1: nobody is signed in at the seat (host N 0)


class Why(enum.IntEnum):
    """What made a state change or a release (event a field)."""

    BUTTON = 1  # READY or WRAP
    HOOK = 2  # the headset lifted off or put on its hanger
    TIMER = 3
    HOST = 4
    ANSWER_BUTTON = 5  # the headset's call button (or the desk's)
    AUTO_ANSWER = 6  # setting auto_answer_ms, with the headset lifted


class ErrorCode(enum.IntEnum):
    """X (reject) error codes."""

    UNKNOWN = 1
    WRONG_STATE = 2
    OTHER_CALL = 3
    OUT_OF_RANGE = 4
    MISSING = 5
    ALREADY = 6  # what the command asks holds already (L: released here first); a success


class SnapshotFlag(enum.IntFlag):
    NONE = 0
    HELP = 1
    OFF_HOOK = 2
    HOLD_OVER_LIMIT = 4


@dataclass(frozen=True, slots=True)
class SettingSpec:
    key: int
    name: str  # as docs/seat.md names it (the enum member is firmware/cfg.py's name)
    default: int
    minimum: int
    maximum: int
    unit: str
    meaning: str
    source: str  # where the default comes from: seed file and section (shared/seeds, S0..S4)


class SettingKey(enum.IntEnum):
    """G frame keys; the member names are those of firmware/cfg.py."""

    RING_LIMIT = 1
    RING_MS = 2
    MISS_LIMIT = 3
    ACW_S = 4
    ACW_STAY_NR = 5
    HOLD_REMIND_S = 6
    HOLD_LIMIT_S = 7
    AWAY_S = 8
    IDLE_S = 9
    HEARTBEAT_S = 10
    DEBOUNCE_MS = 11
    STEP_MS = 12
    LONG_MS = 13
    AUTO_ANSWER_MS = 14

    @property
    def spec(self) -> SettingSpec:
        return SETTINGS[self]

    @property
    def default(self) -> int:
        return SETTINGS[self].default

    @property
    def minimum(self) -> int:
        return SETTINGS[self].minimum

    @property
    def maximum(self) -> int:
        return SETTINGS[self].maximum

    def accepts(self, value: int) -> bool:
        return self.minimum <= value <= self.maximum


# docs/seat.md names two keys more fully than firmware/cfg.py does
_NAMES = {"IDLE_S": "idle_logout_s", "LONG_MS": "long_press_ms"}


def _spec(
    key: SettingKey, default: int, lo: int, hi: int, unit: str, meaning: str, source: str
) -> tuple[SettingKey, SettingSpec]:
    name = _NAMES.get(key.name, key.name.lower())
    return key, SettingSpec(key, name, default, lo, hi, unit, meaning, source)


# Written out here on purpose, not read from firmware/cfg.py: the gateway must not depend on
# the firmware tree at run time. tests/seatlink/test_settings.py keeps the two in step.
SETTINGS: dict[SettingKey, SettingSpec] = dict(
    [
        _spec(SettingKey.RING_LIMIT, 3, 1, 10, "rings", "rings before ring-no-answer",
              "S2 §二.2 and S4: answer within three rings"),
        _spec(SettingKey.RING_MS, 5000, 1000, 10000, "ms", "one ring cadence period",
              "telephony cadence, CN 1 s on / 4 s off (not a seed rule)"),
        _spec(SettingKey.MISS_LIMIT, 1, 1, 10, "calls",
              "consecutive ring-no-answers before Not Ready (no answer)",
              "RONA practice (architecture.md); not a seed rule"),
        _spec(SettingKey.ACW_S, 60, 0, 600, "s", "after-call work time, 0 = no ACW",
              "S3 1.5: average ACW at most 60 s"),
        _spec(SettingKey.ACW_STAY_NR, 0, 0, 1, "flag",
              "1 = Not Ready (wrap) after ACW instead of Ready",
              "S3 1.4: Not Ready after a call for follow-up work"),
        _spec(SettingKey.HOLD_REMIND_S, 15, 5, 120, "s", "hold reminder pattern period",
              "S3 2.2: report progress every 15 s"),
        _spec(SettingKey.HOLD_LIMIT_S, 30, 5, 600, "s", "hold over-limit alert",
              "S3 1.6: a single hold at most 30 s"),
        _spec(SettingKey.AWAY_S, 10, 0, 600, "s",
              "headset on its hanger while Ready: Not Ready (away), 0 = off",
              "S0 (3): headset hung on the partition when away; grace is a setting"),
        _spec(SettingKey.IDLE_S, 1800, 0, 86400, "s",
              "idle in Not Ready: logged out, 0 = off",
              "S3 1.4: long idle logs the agent out (e.g. 30 min)"),
        _spec(SettingKey.HEARTBEAT_S, 5, 1, 60, "s", "heartbeat period",
              "S2 §四: seat health reporting; period is an engineering choice"),
        _spec(SettingKey.DEBOUNCE_MS, 30, 0, 200, "ms", "input lockout after an edge",
              "engineering (switch bounce), not a seed rule"),
        _spec(SettingKey.STEP_MS, 2000, 300, 5000, "ms",
              "READY pressed again within this steps to the next reason",
              "engineering (button UI), not a seed rule"),
        _spec(SettingKey.LONG_MS, 3000, 1000, 10000, "ms", "READY held this long logs out",
              "engineering (button UI), not a seed rule"),
        _spec(SettingKey.AUTO_ANSWER_MS, 0, 0, 10000, "ms",
              "an offer with the headset lifted answers itself after this, 0 = off",
              "S2 §二.2: the agent answers within three rings; off so the agent does"),
    ]
)  # fmt: skip


# --- errors ---------------------------------------------------------------------------------


class FrameError(ValueError):
    """A line that is not a frame, or a frame that cannot be written."""

    reason: ClassVar[str] = "frame"  # the short name docs/protocol.md and vectors.json use


class CrcError(FrameError):
    reason = "crc"


class GrammarError(FrameError):
    reason = "grammar"


class OversizedError(FrameError):
    """More than the seat takes: line length, field count or number size."""

    reason = "oversized"


class UnknownKindError(FrameError):
    reason = "kind"


class SequenceError(FrameError):
    """Sequence number out of range, or 0 on a reliable kind / non-0 on an unsequenced one."""

    reason = "sequence"


# --- CRC ------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
        table.append(c & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0."""
    c = 0xFFFF
    for byte in bytes(data):
        c = ((c << 8) & 0xFFFF) ^ _CRC_TABLE[(c >> 8) ^ byte]
    return c


# --- frames ---------------------------------------------------------------------------------

_SEQ_RE = re.compile(rb"(?:0|[1-9][0-9]*)")
_INT_RE = re.compile(rb"(?:0|-?[1-9][0-9]*)")
_TEXT_RE = re.compile(rb"[!-)+-~]+")  # visible ASCII except '*', which ends the body
_CRC_RE = re.compile(rb"[0-9A-F]{4}")
_KIND_RE = re.compile(rb"[A-Z]")


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    kind: Kind
    fields: tuple[Field, ...] = ()

    def encode(self) -> bytes:
        return encode(self.seq, self.kind, self.fields)

    def ints(self) -> tuple[int, ...]:
        """The fields, all of which must be numbers."""
        out = []
        for i, value in enumerate(self.fields, 1):
            if not isinstance(value, int):
                raise GrammarError(f"{self.kind.value} frame: field {i} is text, not a number")
            out.append(value)
        return tuple(out)


def next_seq(seq: int) -> int:
    """The reliable sequence number after seq: 1..65535, then 1 again (0 is never used)."""
    return seq % MAX_SEQ + 1


def seq_is_new(seq: int, last: int) -> bool:
    """Whether reliable `seq` comes after `last` (modulo the wrap): up to half the sequence
    space ahead counts as new, anything else as seen already."""
    return 0 < (seq - last) % MAX_SEQ < MAX_SEQ // 2


# The ordinal n of a reliable frame counts the frames of one boot without wrapping (1, 2, ...
# past 65535): its seq is what n is modulo the wrap, so n names a frame where seq, after
# 65535 frames, names two.


def seq_of_ordinal(n: int) -> int:
    """The seq that the frame numbered `n` (1, 2, ...) of its boot carries."""
    if n < 1:
        raise ValueError(f"ordinal {n} is not 1 or more")
    return (n - 1) % MAX_SEQ + 1


def next_ordinal(n: int, seq: int) -> int:
    """The ordinal of reliable `seq` taken as new after the frame numbered `n` (0: none taken
    yet): n plus how far seq is ahead of n's seq, 1..65535. Only for a seq that is new: a
    repeat of n's own seq would count a whole wrap."""
    if not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"seq {seq} is not a reliable sequence number (1..{MAX_SEQ})")
    if n < 0:
        raise ValueError(f"ordinal {n} is negative")
    return n + (seq - n - 1) % MAX_SEQ + 1


def _kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise UnknownKindError(f"unknown frame kind {kind!r}") from None


def _check_seq(seq: int, kind: Kind) -> None:
    if kind.sequenced:
        if not 1 <= seq <= MAX_SEQ:
            raise SequenceError(f"{kind.value} frames are reliable: seq must be 1..{MAX_SEQ}, "
                                f"not {seq}")  # fmt: skip
    elif seq != 0:
        raise SequenceError(f"{kind.value} frames are unsequenced: seq must be 0, not {seq}")


def _seat_reads(kind: Kind, direction: Direction | None) -> bool:
    # The seat's limits apply to whatever goes to the seat; an A frame with no direction given
    # is taken as the host's, the stricter of the two.
    return direction is Direction.HOST_TO_SEAT or (direction is None and kind.from_host)


def _check_fields(kind: Kind, fields: Sequence[Field], *, to_seat: bool) -> None:
    if to_seat and len(fields) > FIELDS_MAX:
        raise OversizedError(f"{len(fields)} fields: the seat reads at most {FIELDS_MAX}")
    for i, value in enumerate(fields, 1):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise GrammarError(f"field {i} is {type(value).__name__}, not int or str")
        if isinstance(value, str):
            if to_seat or not kind.carries_text:
                raise GrammarError(f"field {i}: {kind.value} frames carry numbers only, "
                                   f"not text {value!r}")  # fmt: skip
            raw = value.encode("ascii", "replace")
            if not _TEXT_RE.fullmatch(raw) or not value.isascii():
                raise GrammarError(f"field {i}: text must be visible ASCII without '*' or "
                                   f"spaces, not {value!r}")  # fmt: skip
            if _INT_RE.fullmatch(raw):
                # it would come back as a number: keep decode(encode(x)) == x
                raise GrammarError(f"field {i}: text {value!r} reads as a number")
        elif to_seat and value < 0:
            raise GrammarError(f"field {i}: the seat reads unsigned numbers only, not {value}")
        elif to_seat and value > NUMBER_MAX:
            raise OversizedError(f"field {i}: {value} is more than the seat reads ({NUMBER_MAX})")


def encode(seq: int, kind: Kind | str, fields: Sequence[Field] = ()) -> bytes:
    """One frame as it goes on the wire, "\\n" included.

    Refuses (FrameError) anything the receiver would not take; for kinds the host sends
    that includes every seat limit: 64 bytes before "\\n", 10 fields, unsigned numbers up
    to 99999999, no text.
    """
    k = _kind(kind)
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise GrammarError(f"seq must be an int, not {type(seq).__name__}")
    _check_seq(seq, k)
    to_seat = _seat_reads(k, None)
    _check_fields(k, fields, to_seat=to_seat)
    body = " ".join([str(seq), k.value, *(str(v) for v in fields)]).encode("ascii")
    line = b"%s*%04X" % (body, crc16(body))
    limit = SEAT_LINE_MAX if to_seat else LINE_MAX
    if len(line) > limit:
        raise OversizedError(f"frame is {len(line)} bytes before the newline, more than "
                             f"{limit}{' (the seat drops it)' if to_seat else ''}")  # fmt: skip
    return line + b"\n"


def decode(line: bytes | bytearray, *, direction: Direction | None = None) -> Frame:
    """The frame in one line (its "\\n" and a "\\r" before it are optional).

    direction, when given, also rejects kinds that side never sends (UnknownKindError) and,
    for host->seat, applies the seat's limits. Raises a FrameError subclass naming the fault.
    """
    data = bytes(line)
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):  # the seat tolerates a CR before the LF; so does the host
        data = data[:-1]
    to_seat = direction is Direction.HOST_TO_SEAT
    limit = SEAT_LINE_MAX if to_seat else LINE_MAX
    if len(data) > limit:
        raise OversizedError(f"line is {len(data)} bytes before the newline, more than {limit}")
    for i, byte in enumerate(data):
        if not 0x20 <= byte <= 0x7E:
            raise GrammarError(f"byte 0x{byte:02X} at offset {i}: frames are printable ASCII")
    if len(data) < 8 or data[-5] != 0x2A:
        raise GrammarError("no '*' and four CRC digits at the end of the line")
    body, crc_text = data[:-5], data[-4:]
    if not _CRC_RE.fullmatch(crc_text):
        raise GrammarError(f"CRC {crc_text.decode()!r} is not four upper-case hex digits")
    expected = crc16(body)
    if int(crc_text, 16) != expected:
        raise CrcError(f"CRC {crc_text.decode()} does not match the body (expected "
                       f"{expected:04X})")  # fmt: skip
    tokens = body.split(b" ")
    if any(not t for t in tokens):
        raise GrammarError("empty token: leading, trailing or double space")
    if len(tokens) < 2:
        raise GrammarError("a frame needs a sequence number and a kind")
    if not _SEQ_RE.fullmatch(tokens[0]):
        raise GrammarError(f"sequence {tokens[0].decode()!r} is not an unsigned decimal")
    if not _KIND_RE.fullmatch(tokens[1]):
        raise GrammarError(f"kind {tokens[1].decode()!r} is not one upper-case letter")
    kind = _kind(tokens[1].decode())
    if direction is not None and not kind.sent_by(direction):
        raise UnknownKindError(f"kind {kind.value} is not sent {direction.value}")
    fields: list[Field] = []
    for i, token in enumerate(tokens[2:], 1):
        if _INT_RE.fullmatch(token):
            fields.append(int(token))
        elif kind.carries_text and not to_seat and _TEXT_RE.fullmatch(token):
            fields.append(token.decode("ascii"))
        else:
            raise GrammarError(f"field {i} {token.decode()!r} is not a decimal number")
    frame = Frame(int(tokens[0]), kind, tuple(fields))
    _check_seq(frame.seq, kind)
    if _seat_reads(kind, direction):
        if len(data) > SEAT_LINE_MAX:
            raise OversizedError(f"line is {len(data)} bytes before the newline, more than "
                                 f"{SEAT_LINE_MAX} (the seat drops it)")  # fmt: skip
        _check_fields(kind, frame.fields, to_seat=True)
    return frame
