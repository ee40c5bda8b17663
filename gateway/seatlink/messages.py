"""Typed seat link messages.

Seat -> host: parse_message(frame) gives a Hello, Snapshot, Event, Reject, Heartbeat or Ack,
checked field by field against what firmware/tx.py writes. Host -> seat: one builder per
command, each returning a Command (kind + numeric fields) that a session numbers and sends.
docs/protocol.md describes every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from gateway.seatlink.codec import (
    FIELDS_MAX,
    MAX_SEQ,
    NUMBER_MAX,
    ErrorCode,
    EventCode,
    Field,
    Frame,
    FrameError,
    Kind,
    Reason,
    SettingKey,
    SnapshotFlag,
    State,
    Why,
    encode,
)

__all__ = [
    "EXIT_MAGIC",
    "MESSAGE_COLOURS",
    "MESSAGE_MAX_S",
    "PROTOCOL_VERSION",
    "Ack",
    "Command",
    "Event",
    "Heartbeat",
    "Hello",
    "MessageError",
    "Reject",
    "SeatMessage",
    "Snapshot",
    "ack",
    "cancel",
    "connected",
    "exit_to_repl",
    "agent_signed_in",
    "help_flag",
    "message",
    "hold",
    "offer",
    "parse_message",
    "ping",
    "released",
    "set_state",
    "settings",
    "sync",
]

PROTOCOL_VERSION = 1  # first field of the hello frame
EXIT_MAGIC = 24231  # Z frame field: a stray Z cannot stop a seat by accident (firmware/rx.py)


class MessageError(FrameError):
    """A well-formed frame whose fields are not a valid message of its kind."""

    reason = "message"


_E = TypeVar("_E", bound=int)


def _fields(frame: Frame, kind: Kind, count: int) -> tuple[Field, ...]:
    if frame.kind is not kind:
        raise MessageError(f"expected a {kind.value} frame, got {frame.kind.value}")
    if len(frame.fields) != count:
        raise MessageError(f"{kind.value} frame has {len(frame.fields)} fields, expected {count}")
    return frame.fields


def _int(frame: Frame, i: int, name: str, *, lo: int = 0, hi: int | None = None) -> int:
    value = frame.fields[i]
    if not isinstance(value, int):
        raise MessageError(f"{frame.kind.value} frame: {name} is text {value!r}, not a number")
    if value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise MessageError(f"{frame.kind.value} frame: {name} {value} is not {span}")
    return value


def _text(frame: Frame, i: int) -> str:
    # A text token made only of digits (a board uid can be) decodes as a number.
    return str(frame.fields[i])


def _enum(frame: Frame, i: int, name: str, enum: type[_E]) -> _E:
    value = _int(frame, i, name, lo=-(2**31))
    try:
        return enum(value)
    except ValueError:
        raise MessageError(f"{frame.kind.value} frame: {name} {value} is not a known "
                           f"{enum.__name__}") from None  # fmt: skip


def _reason(frame: Frame, i: int, name: str) -> Reason | None:
    return None if frame.fields[i] == 0 else _enum(frame, i, name, Reason)


# --- seat -> host ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame after boot; the boot counter tells a restart from a retransmission."""

    KIND: ClassVar[Kind] = Kind.HELLO
    seq: int
    protocol: int
    boot: int
    firmware: str
    uid: str
    board: str

    @classmethod
    def from_frame(cls, frame: Frame) -> Hello:
        _fields(frame, cls.KIND, 5)
        return cls(frame.seq, _int(frame, 0, "protocol", lo=1), _int(frame, 1, "boot"),
                   _text(frame, 2), _text(frame, 3), _text(frame, 4))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The seat's whole state, rendered when (re)sent: always current."""

    KIND: ClassVar[Kind] = Kind.SNAPSHOT
    seq: int
    state: State
    reason: Reason | None
    call: int  # 0: no call
    secs: int  # seconds in this state
    flags: SnapshotFlag
    pending_state: State | None
    pending_reason: Reason | None
    misses: int  # consecutive ring-no-answers
    dropped: int  # frames the seat's queue dropped since boot
    # the first seq of the frames its full queue dropped just before it (a collapse), 0:
    # none (a snapshot asked for, or a boot's); None from older firmware, which sends 9 fields
    gone_from: int | None = None

    FIELDS: ClassVar[int] = 10
    OLD_FIELDS: ClassVar[int] = 9  # without gone_from

    @property
    def help(self) -> bool:
        return SnapshotFlag.HELP in self.flags

    @property
    def off_hook(self) -> bool:
        return SnapshotFlag.OFF_HOOK in self.flags

    @property
    def hold_over_limit(self) -> bool:
        return SnapshotFlag.HOLD_OVER_LIMIT in self.flags

    @classmethod
    def from_frame(cls, frame: Frame) -> Snapshot:
        old = len(frame.fields) == cls.OLD_FIELDS
        _fields(frame, cls.KIND, cls.OLD_FIELDS if old else cls.FIELDS)
        pending = _int(frame, 5, "pending state", lo=-1)
        pending_state = None if pending < 0 else _enum(frame, 5, "pending state", State)
        # With nothing pending the seat leaves the last pending reason in place: ignore it.
        pending_reason = None if pending_state is None else _reason(frame, 6, "pending reason")
        return cls(
            frame.seq,
            _enum(frame, 0, "state", State),
            _reason(frame, 1, "reason"),
            _int(frame, 2, "call"),
            _int(frame, 3, "secs"),
            SnapshotFlag(_int(frame, 4, "flags", hi=7)),
            pending_state,
            pending_reason,
            _int(frame, 7, "misses"),
            _int(frame, 8, "dropped"),
            None if old else _int(frame, 9, "first dropped seq", hi=MAX_SEQ),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened; state, reason and call are the seat's when it was queued."""

    KIND: ClassVar[Kind] = Kind.EVENT
    seq: int
    code: EventCode
    state: State
    reason: Reason | None
    call: int
    a: int
    b: int

    @property
    def why(self) -> Why | None:
        """STATE and RELEASED: what caused it."""
        if self.code in (EventCode.STATE, EventCode.RELEASED):
            return Why(self.a)
        return None

    @property
    def ms(self) -> int | None:
        """ANSWERED, RING_NO_ANSWER: ms ringing; HOLD_OVER_LIMIT: ms on hold."""
        timed = (EventCode.ANSWERED, EventCode.RING_NO_ANSWER, EventCode.HOLD_OVER_LIMIT)
        return self.a if self.code in timed else None

    @property
    def misses(self) -> int | None:
        return self.b if self.code is EventCode.RING_NO_ANSWER else None

    @property
    def on(self) -> bool | None:
        """HELP: asked (True) or cleared; HOOK: off hook (True) or on hook."""
        return bool(self.a) if self.code in (EventCode.HELP, EventCode.HOOK) else None

    @property
    def pending_state(self) -> State | None:
        """PENDING: the state that waits for the call to end; None when it was withdrawn."""
        return State(self.a) if self.code is EventCode.PENDING and self.a >= 0 else None

    @property
    def pending_reason(self) -> Reason | None:
        if self.pending_state is None or self.b == 0:
            return None
        return Reason(self.b)

    @classmethod
    def from_frame(cls, frame: Frame) -> Event:
        _fields(frame, cls.KIND, 6)
        code = _enum(frame, 0, "code", EventCode)
        a, b = _int(frame, 4, "a", lo=-(2**31)), _int(frame, 5, "b", lo=-(2**31))
        if code in (EventCode.STATE, EventCode.RELEASED):
            _enum(frame, 4, "why", Why)
        elif code in (EventCode.ANSWERED, EventCode.HOLD_OVER_LIMIT):
            _int(frame, 4, "ms")
        elif code is EventCode.RING_NO_ANSWER:
            _int(frame, 4, "ms")
            _int(frame, 5, "misses", lo=1)
        elif code in (EventCode.HELP, EventCode.HOOK):
            _int(frame, 4, "on", hi=1)
        elif code is EventCode.PENDING and a != -1:
            _enum(frame, 4, "pending state", State)
            _reason(frame, 5, "pending reason")
        return cls(frame.seq, code, _enum(frame, 1, "state", State),
                   _reason(frame, 2, "reason"), _int(frame, 3, "call"), a, b)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reject:
    """A host command the seat acked (it arrived) but did not apply; nothing changed."""

    KIND: ClassVar[Kind] = Kind.REJECT
    seq: int
    command_seq: int
    error: ErrorCode
    field: int  # 1-based field of the command at fault, 0 for none; G: the setting key

    @classmethod
    def from_frame(cls, frame: Frame) -> Reject:
        _fields(frame, cls.KIND, 3)
        return cls(frame.seq, _int(frame, 0, "command seq", lo=1, hi=MAX_SEQ),
                   _enum(frame, 1, "error", ErrorCode), _int(frame, 2, "field"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Seat health, unsequenced; the worst loop time is reset by each heartbeat.

    It also names the board and its boot (as the hello does), so a host that missed the
    hello still learns them, and the newest seq the seat has queued (with the queue depth:
    which frames it holds unacked). Firmware from before that sends the 11-field heartbeat
    without the newest seq (None), or the 9-field one without boot and uid (None too).
    """

    KIND: ClassVar[Kind] = Kind.HEARTBEAT
    uptime_s: int
    free_heap: int
    worst_loop_ms: int
    bad_frames: int
    dropped_frames: int
    queue_depth: int
    retransmits: int
    errors: int
    boot: int | None  # the hello's boot counter; None from older firmware
    firmware: str
    uid: str | None  # the hello's board uid; None from older firmware
    newest_seq: int | None = None  # 0: nothing queued since boot; None from older firmware

    FIELDS: ClassVar[int] = 12
    NO_NEWEST_FIELDS: ClassVar[int] = 11  # without the newest seq
    OLD_FIELDS: ClassVar[int] = 9  # without boot, uid and the newest seq

    @classmethod
    def from_frame(cls, frame: Frame) -> Heartbeat:
        n = len(frame.fields)
        old = n == cls.OLD_FIELDS
        _fields(frame, cls.KIND, n if n in (cls.OLD_FIELDS, cls.NO_NEWEST_FIELDS) else cls.FIELDS)
        return cls(
            uptime_s=_int(frame, 0, "uptime"),
            free_heap=_int(frame, 1, "free heap"),
            worst_loop_ms=_int(frame, 2, "worst loop"),
            bad_frames=_int(frame, 3, "bad frames"),
            dropped_frames=_int(frame, 4, "dropped frames"),
            queue_depth=_int(frame, 5, "queue depth"),
            retransmits=_int(frame, 6, "retransmits"),
            errors=_int(frame, 7, "errors"),
            boot=None if old else _int(frame, 8, "boot"),
            firmware=_text(frame, 8 if old else 9),
            uid=None if old else _text(frame, 10),
            newest_seq=_int(frame, 11, "newest seq", hi=MAX_SEQ) if n == cls.FIELDS else None,
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """Cumulative: every reliable frame up to and including `acked` arrived in order."""

    KIND: ClassVar[Kind] = Kind.ACK
    acked: int

    @classmethod
    def from_frame(cls, frame: Frame) -> Ack:
        _fields(frame, cls.KIND, 1)
        return cls(_int(frame, 0, "acked seq", lo=1, hi=MAX_SEQ))


SeatMessage = Hello | Snapshot | Event | Reject | Heartbeat | Ack

_PARSERS: dict[Kind, type[Hello | Snapshot | Event | Reject | Heartbeat | Ack]] = {
    cls.KIND: cls for cls in (Hello, Snapshot, Event, Reject, Heartbeat, Ack)
}


def parse_message(frame: Frame) -> SeatMessage:
    """The typed message in a seat frame; MessageError if its fields are not valid."""
    try:
        cls = _PARSERS[frame.kind]
    except KeyError:
        raise MessageError(f"{frame.kind.value} is not a frame the seat sends") from None
    return cls.from_frame(frame)


# --- host -> seat ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A host -> seat frame without its sequence number.

    Checked only against what the seat can read (so a test may send out-of-range values on
    purpose); the builders below also check the values the seat would reject.
    """

    kind: Kind
    fields: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.kind.from_host:
            raise ValueError(f"{self.kind.value} is not a frame the host sends")
        # the longest sequence number: a command that fits once fits whatever its seq
        seq = MAX_SEQ if self.kind.sequenced else 0
        encode(seq, self.kind, self.fields)  # raises FrameError if the seat could not read it
        # State.READY and 1 are the same command: keep plain ints, so commands compare,
        # hash and print alike however they were built
        object.__setattr__(self, "fields", tuple(int(v) for v in self.fields))

    @property
    def sequenced(self) -> bool:
        return self.kind.sequenced

    def frame(self, seq: int) -> Frame:
        return Frame(seq, self.kind, self.fields)

    def encode(self, seq: int) -> bytes:
        return encode(seq, self.kind, self.fields)

    @classmethod
    def from_frame(cls, frame: Frame) -> Command:
        return cls(frame.kind, frame.ints())


def _call(call: int) -> int:
    if not 1 <= call <= NUMBER_MAX:
        raise ValueError(f"call id must be 1..{NUMBER_MAX}, not {call}")
    return call


def offer(call: int, *, ring_limit: int | None = None, ring_ms: int | None = None) -> Command:
    """O: ring for call; ring_limit and ring_ms override the seat's settings for this call."""
    fields = [_call(call)]
    if ring_ms is not None and ring_limit is None:
        # the fields are positional on the wire, and the seat's own ring_limit may have been
        # changed by G: the host cannot fill it in for the caller
        raise ValueError("ring_ms needs ring_limit")
    for key, value in ((SettingKey.RING_LIMIT, ring_limit), (SettingKey.RING_MS, ring_ms)):
        if value is not None:
            if not key.accepts(value):
                raise ValueError(f"{key.spec.name} must be {key.minimum}..{key.maximum}")
            fields.append(value)
    return Command(Kind.OFFER, tuple(fields))


def cancel(call: int) -> Command:
    """C: the caller hung up (or the call was routed elsewhere) while ringing."""
    return Command(Kind.CANCEL, (_call(call),))


def connected(call: int) -> Command:
    """K: call answered elsewhere (PBX side) or an outbound call connected from Ready/NR."""
    return Command(Kind.CONNECTED, (_call(call),))


def hold(call: int, *, on: bool = True) -> Command:
    """P: put call on hold (on) or take it off hold."""
    return Command(Kind.HOLD, (_call(call), int(on)))


def released(call: int) -> Command:
    """L: the far end released call."""
    return Command(Kind.RELEASED, (_call(call),))


def set_state(state: State, *, reason: Reason | None = None) -> Command:
    """T: logged out, Ready or Not Ready (with a reason); pending if a call is up."""
    state = State(state)
    if state > State.NOT_READY:
        raise ValueError(f"the host sets only LOGGED_OUT, READY or NOT_READY, not {state.name}")
    if state is State.NOT_READY:
        if reason is None:
            raise ValueError("NOT_READY needs a reason")
        return Command(Kind.SET_STATE, (state, Reason(reason)))
    if reason is not None:
        raise ValueError(f"{state.name} takes no reason")
    return Command(Kind.SET_STATE, (state,))


def settings(values: Mapping[SettingKey, int]) -> Command:
    """G: key value pairs, applied all or nothing."""
    if not values:
        raise ValueError("settings needs at least one key")
    if 2 * len(values) > FIELDS_MAX:
        raise ValueError(f"at most {FIELDS_MAX // 2} settings per frame")
    fields: list[int] = []
    for key, value in values.items():
        key = SettingKey(key)
        if not key.accepts(value):
            raise ValueError(f"{key.spec.name} must be {key.minimum}..{key.maximum}, "
                             f"not {value}")  # fmt: skip
        fields += (key, value)
    return Command(Kind.SETTINGS, tuple(fields))


def help_flag(on: bool) -> Command:
    """U: raise (True) or clear (False, a supervisor answered) the seat's help flag."""
    return Command(Kind.HELP, (int(on),))


def agent_signed_in(signed_in: bool) -> Command:
    """N: an agent is signed in at the seat (True) or nobody is (False). With nobody, the
    seat logs out (pending during a call) and refuses its own login (event 9)."""
    return Command(Kind.AGENT, (int(signed_in),))


# a message's colours: the light's RGB bits as firmware/light.py sets them
MESSAGE_COLOURS = {"red": 1, "green": 2, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6,
                   "white": 7}  # fmt: skip
MESSAGE_MAX_S = 600


def message(colour: str, seconds: int) -> Command:
    """M: flash `colour` over the seat's light for `seconds` (0 ends a message early)."""
    if colour not in MESSAGE_COLOURS:
        raise ValueError(f"colour {colour!r} is not one of {', '.join(MESSAGE_COLOURS)}")
    if not 0 <= seconds <= MESSAGE_MAX_S:
        raise ValueError(f"seconds must be 0..{MESSAGE_MAX_S}, not {seconds}")
    return Command(Kind.MESSAGE, (MESSAGE_COLOURS[colour], seconds))


def sync() -> Command:
    """Q: always accepted; the seat expects this seq + 1 next and queues a snapshot."""
    return Command(Kind.SYNC)


def ping() -> Command:
    """I (seq 0): the seat answers with a heartbeat on its next loop pass."""
    return Command(Kind.PING)


def exit_to_repl() -> Command:
    """Z: leave the firmware for the REPL, e.g. to reflash the board."""
    return Command(Kind.EXIT, (EXIT_MAGIC,))


def ack(seq: int) -> Command:
    """A (seq 0): every seat frame up to seq arrived in order."""
    if not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"ack seq must be 1..{MAX_SEQ}, not {seq}")
    return Command(Kind.ACK, (seq,))
