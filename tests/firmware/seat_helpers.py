"""Test-side helpers for the seat firmware: a minimal host codec and a seat driver.

The codec is written here from firmware/frame.py's description of the wire format, not
imported from gateway/seatlink, so these tests pin down what the seat sends on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.firmware_host import FakeBoard, SeatSim

# board inputs (bitmask): HANGER reads 1 with the headset resting on it
IN_HANGER, IN_READY, IN_WRAP, IN_HELP, IN_ANSWER = 1, 2, 4, 8, 16
# agent states
OUT, READY, NR, RING, TALK, HOLD, ACW = 0, 1, 2, 3, 4, 5, 6
# Not Ready reasons the seat itself sets
NOANS, AWAY, WRAP, SUP = 7, 8, 9, 10
# event codes (E frames, first field)
EV_STATE, EV_ANSWER, EV_RONA, EV_RELEASE, EV_HOLDMAX, EV_HELP, EV_PEND, EV_HOOK, EV_REFUSED = (
    range(1, 10))  # fmt: skip
# why a state changed
BTN, HK, TMR, HOST, KEY, AUTO = 1, 2, 3, 4, 5, 6
# light colours: bit0 red, bit1 green, bit2 blue
OFF, R, G, B, Y, M, W = 0, 1, 2, 4, 3, 5, 7
# slots of tx.L the tests read
L_COUNT, L_BAD, L_DROP, L_RETX, L_ERR = 1, 9, 10, 11, 12
# settings keys (G frames)
K_RING_LIMIT, K_RING_MS, K_MISS_LIMIT, K_ACW_S, K_ACW_STAY_NR = 1, 2, 3, 4, 5
K_HOLD_REMIND_S, K_HOLD_LIMIT_S, K_AWAY_S, K_IDLE_S, K_HEARTBEAT_S = 6, 7, 8, 9, 10
K_DEBOUNCE_MS, K_STEP_MS, K_LONG_MS, K_AUTO_ANSWER_MS = 11, 12, 13, 14
DEFAULTS = [0, 3, 5000, 1, 60, 0, 15, 30, 10, 1800, 5, 30, 2000, 3000, 0]
PASS_MS = 5  # the loop sleeps this long per pass


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, bit by bit (the firmware uses a nibble table)."""
    c = 0xFFFF
    for byte in data:
        c ^= byte << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
            c &= 0xFFFF
    return c


def encode(seq: int, kind: str, *fields: int | str) -> bytes:
    body = " ".join([str(seq), kind, *(str(f) for f in fields)]).encode("ascii")
    return body + b"*%04X\n" % crc16(body)


@dataclass(frozen=True)
class Frame:
    ms: int  # fake time the seat wrote it
    seq: int
    kind: str
    fields: tuple[str, ...]

    @property
    def ints(self) -> tuple[int, ...]:
        """The fields as ints: for frames whose fields are all numbers (not B, H)."""
        return tuple(int(f) for f in self.fields)

    def num(self, i: int) -> int:
        return int(self.fields[i])

    # E frames: code, state, reason, call, a, b
    @property
    def code(self) -> int:
        return int(self.fields[0])


def decode(data: bytes, *, ms: int = 0) -> Frame:
    """One seat frame; AssertionError for anything off the wire format."""
    assert data.endswith(b"\n"), data
    body, star, crc = data[:-1].rpartition(b"*")
    assert star and len(crc) == 4, data
    assert crc == b"%04X" % crc16(body), f"bad CRC in {data!r}"
    parts = body.decode("ascii").split(" ")
    assert parts[0].isdigit() and len(parts) >= 2, data
    assert len(parts[1]) == 1 and parts[1].isupper(), data
    assert all(parts[2:]), f"empty field in {data!r}"
    return Frame(ms, int(parts[0]), parts[1], tuple(parts[2:]))


def light_ok(rgb: int, *, base: int, ph: int, pending: bool, helping: bool, up: bool,
             message: int = 0) -> bool:  # fmt: skip
    """The light may show the state's colour, or an overlay only inside its window of the
    2 s cycle: blue pip (pending change) 0-200 ms, a message's colour (a supervisor's, or red
    for a refused login) 400-900 ms, magenta (help) 1000-1300 ms, white (link down)
    1600-1700 ms. Later overlays win, so inside a window only its colour or a later one is
    allowed."""
    if not up and 1600 <= ph < 1700:
        return rgb == W
    if helping and 1000 <= ph < 1300:
        return rgb == M
    if message and 400 <= ph < 900:
        return rgb == message
    if pending and ph < 200:
        return rgb == B
    return rgb == base


# per state (and the hold rows): on colour, off colour, period, on ms (docs: firmware/light.py)
LIGHT_TABLE = {
    OUT: (OFF, OFF, 1, 0),
    READY: (G, G, 1, 1),
    NR: (B, B, 1, 1),
    RING: (R, OFF, 1000, 500),
    TALK: (R, R, 1, 1),
    HOLD: (Y, OFF, 500, 250),
    ACW: (Y, Y, 1, 1),
    "over": (R, Y, 250, 125),
    "remind": (W, OFF, 200, 100),
}


def state_colour(st: int, t: int, *, over: bool = False, remind_ms: int = 15000) -> int:
    row: int | str = st
    if st == HOLD:
        if over:
            row = "over"
        elif t >= remind_ms and t % remind_ms < 1000:
            row = "remind"
    on, off, period, on_ms = LIGHT_TABLE[row]
    return on if t % period < on_ms else off


class Seat:
    """A seat under test: SeatSim plus a scripted host (sequence numbers, acks)."""

    def __init__(self, *, bundled: bool = True, board: FakeBoard | None = None) -> None:
        self.sim = SeatSim(bundled=bundled, board=board)
        self.board = self.sim.board
        self.host_seq = 0
        self.auto_ack = True  # a host that acks every seat frame each second
        self.check_errors = True
        self._decoded: list[Frame] = []
        self._seen_seqs: set[int] = set()
        self._newest_seq = 0  # the last sequence number the seat used (resends aside)

    def start(self) -> Seat:
        self.sim.start()
        return self

    def close(self) -> None:
        self.sim.close()

    # --- time --------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.sim.elapsed

    def advance(self, ms: int) -> None:
        """Advance fake time; with auto_ack the host acks what it has before each second,
        so nothing it sent is left unread when a test turns auto_ack off."""
        while ms > 0:
            step = min(ms, 1000) if self.auto_ack else ms
            if self.auto_ack:
                self.ack_all()
            self.sim.advance(step)
            ms -= step
            self._check_errors()

    def _check_errors(self) -> None:
        if self.check_errors:
            err = self.sim.L[L_ERR]
            assert err == 0, f"the loop caught {err} exception(s) by {self.now} ms (L[ERR])"

    # --- inputs --------------------------------------------------------------------------
    def press(self, bits: int, ms: int = 50) -> None:
        self.board.press(bits)
        self.advance(ms)

    def release(self, bits: int, ms: int = 50) -> None:
        self.board.release(bits)
        self.advance(ms)

    def tap(self, bits: int, *, hold_ms: int = 50, after_ms: int = 50) -> None:
        """Press then release; both are past the 30 ms debounce lockout."""
        self.press(bits, hold_ms)
        self.release(bits, after_ms)

    def hook(self, off: bool) -> None:
        """off: the agent lifts the headset off its hanger; else hangs it back."""
        (self.release if off else self.press)(IN_HANGER)

    # --- host --------------------------------------------------------------------------
    def send(self, kind: str, *fields: int | str, seq: int | None = None, ms: int = 20) -> int:
        """A numbered host frame (next sequence unless seq given); its seq."""
        if seq is None:
            self.host_seq += 1
            seq = self.host_seq
        self.board.feed(encode(seq, kind, *fields))
        self.advance(ms)
        return seq

    def ack(self, seq: int) -> None:
        self.board.feed(encode(0, "A", seq))

    def go_silent(self) -> None:
        """The host acks all it has seen, then says nothing more (no acks, no pings)."""
        self.ack_all()
        self.sim.advance(20)
        self.auto_ack = False
        assert self.sim.L[L_COUNT] == 0 and self.board.rx_pending == 0

    def ack_all(self) -> None:
        self.frames()
        if self._newest_seq:
            self.ack(self._newest_seq)

    def login(self) -> None:
        self.tap(IN_READY)
        assert self.state == READY, self.state

    # --- what the seat did -------------------------------------------------------------
    def frames(self, since: int = 0) -> list[Frame]:
        written = self.board.frames
        for t, d in written[len(self._decoded) :]:
            f = decode(d, ms=t)
            self._decoded.append(f)
            if f.seq and f.seq not in self._seen_seqs:
                self._seen_seqs.add(f.seq)
                self._newest_seq = f.seq
        return [f for f in self._decoded if f.ms >= since]

    def events(self, since: int = 0) -> list[Frame]:
        """E frames, each sequence number once (resends dropped)."""
        seen: set[int] = set()
        out = []
        for f in self.frames(since):
            if f.kind == "E" and f.seq not in seen:
                seen.add(f.seq)
                out.append(f)
        return out

    def event_fields(self, since: int = 0) -> list[tuple[int, ...]]:
        return [f.ints for f in self.events(since)]

    def of_kind(self, kind: str, since: int = 0) -> list[Frame]:
        return [f for f in self.frames(since) if f.kind == kind]

    def heartbeat(self) -> Frame:
        """Ask for a heartbeat (host ping) and return it."""
        t = self.now
        self.board.feed(encode(0, "I"))
        self.sim.advance(20)
        beats = self.of_kind("H", since=t)
        assert beats, "no heartbeat after a ping"
        return beats[0]

    @property
    def state(self) -> int:
        return self.sim.S[0]

    @property
    def reason(self) -> int:
        return self.sim.S[1]

    def light_at(self, ms: int) -> int | None:
        return self.board.light_at(ms)

    def lights_between(self, t0: int, t1: int, step: int = PASS_MS) -> list[tuple[int, int | None]]:
        return [(t, self.board.light_at(t)) for t in range(t0, t1, step)]


def state_events(frames: Iterable[Frame]) -> list[tuple[int, int, int]]:
    """(state, reason, why) of every STATE event."""
    states = [f for f in frames if f.kind == "E" and f.code == EV_STATE]
    return [(f.ints[1], f.ints[2], f.ints[4]) for f in states]
