"""The firmware's own frame code (firmware/frame.py, rx.py, tx.py run under CPython) against
the same vectors and the host codec: both ends must read and write the same bytes."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from seatlink_support import FakeBoard, firmware_constants, load_firmware, load_vectors

from gateway.seatlink.codec import (
    FIELDS_MAX,
    MAX_SEQ,
    NUMBER_MAX,
    SEAT_LINE_MAX,
    Direction,
    Frame,
    FrameError,
    GrammarError,
    Kind,
    SequenceError,
    UnknownKindError,
    crc16,
    decode,
    encode,
)

VECTORS = load_vectors()
TO_SEAT = [v for v in VECTORS if v["direction"] == Direction.HOST_TO_SEAT]
FROM_SEAT = [v for v in VECTORS if v["direction"] == Direction.SEAT_TO_HOST and "frame" in v]
# what this firmware writes: not the frames only older firmware sends (the host still reads them)
WRITTEN = [v for v in FROM_SEAT if not v.get("older_firmware")]
RB = firmware_constants("rx")["RB"][1]  # the seat's line buffer
# The kinds the seat acts on: rx.py handles A, I, Q, Z itself, host.py the commands.
HANDLED = {
    chr(v)
    for module, names in (("rx", ("ACK", "PING", "SYNC", "EXIT")),
                          ("host", ("OFFER", "CANCEL", "CONNECTED", "HOLDCMD", "RELEASED",
                                    "SETSTATE", "SETTINGS", "HELPCMD", "MESSAGE", "AGENT")))
    for name, v in firmware_constants(module).items() if name in names
}  # fmt: skip


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def fw_parse(fw_frame: types.ModuleType, content: bytes) -> tuple[int, list[int]]:
    """frame.parse on a line as rx.feed hands it over: in the seat's buffer, no newline."""
    assert len(content) <= RB
    buf = bytearray(RB)
    buf[: len(content)] = content
    kind = fw_frame.parse(buf, len(content))
    return kind, list(fw_frame.F[: fw_frame.N + 1]) if kind else []


def test_handled_kinds_are_the_host_kinds() -> None:
    assert {k.value for k in Kind if k.from_host} == HANDLED
    assert RB == SEAT_LINE_MAX


@pytest.mark.parametrize("vector", TO_SEAT, ids=ids(TO_SEAT))
def test_firmware_parse_agrees_with_the_vector(
    fw_frame: types.ModuleType, vector: dict[str, Any]
) -> None:
    content = vector["line"].encode("ascii").removesuffix(b"\n")
    error = vector.get("error")
    if len(content) > RB:
        assert error == "oversized"  # rx.feed drops the line whole before parse sees it
        return
    kind, numbers = fw_parse(fw_frame, content)
    if error is None:
        want = vector["frame"]
        assert chr(kind) == want["kind"]
        assert numbers == [want["seq"], *want["fields"]]
    elif error in ("crc", "grammar", "oversized"):
        assert kind == 0
    elif error == "kind":
        assert kind and chr(kind) not in HANDLED  # parsed, then rejected: X error 1
    else:
        assert error == "sequence"
        assert kind and numbers[0] == 0 and chr(kind) not in "AI"  # rx.line: counted bad


# --- the seat's receive path (rx.feed) on every host->seat vector ---------------------------


@pytest.mark.parametrize("vector", TO_SEAT, ids=ids(TO_SEAT))
def test_seat_rx_takes_exactly_the_valid_vectors(
    tmp_path: Path, firmware_dir: Path, vector: dict[str, Any]
) -> None:
    fw = load_firmware(FakeBoard(tmp_path), firmware_dir)
    fw.seat.emit = fw.link.enq  # as loop.run wires it
    c, L = fw.c, fw.tx.L
    line = bytearray(vector["line"].encode("ascii"))
    fw.rx.feed(line, len(line))
    written = bytes(fw.board.written)
    error, frame = vector.get("error"), vector.get("frame")
    if error in ("crc", "grammar", "oversized", "sequence"):
        assert (L[c["BAD"]], written, L[c["COUNT"]]) == (1, b"", 0)
        return
    assert L[c["BAD"]] == 0
    if error == "kind":
        seq = int(line.split(b" ")[0])
        assert written == encode(0, Kind.ACK, [seq])  # it arrived in order...
        assert L[c["COUNT"]] == 1 and fw.tx.Q[1] == ord("X") and fw.tx.Q[6] == 1  # ...unknown
        return
    assert frame is not None
    kind = frame["kind"]
    if kind == "A":
        assert written == b""
    elif kind == "I":
        assert written == b"" and L[c["HB"]] >= c["CAP"]  # heartbeat on the next pass
    else:
        assert written == encode(0, Kind.ACK, [frame["seq"]])
        assert L[c["RXSEQ"]] == frame["seq"] % MAX_SEQ + 1
        if kind == "Z":
            assert L[c["QUIT"]] == 1


# --- the seat's transmit path (tx.send) writes the seat->host vectors ------------------------


def render(fw: types.SimpleNamespace, frame: Frame) -> bytes:
    """Put the vector's values where the firmware keeps them, then let tx.send write it."""
    tx, c, L, S, Q = fw.tx, fw.c, fw.tx.L, fw.seat.S, fw.tx.Q
    f = frame.fields
    fw.board.written.clear()
    if frame.kind is Kind.ACK:
        tx.send(-2, f[0])
    elif frame.kind is Kind.HEARTBEAT:
        fw.board.mem = lambda: f[1]
        for slot, value in zip(("SEC", "WORST", "BAD", "DROP", "COUNT", "RETX", "ERR", "BOOT"),
                               (f[0], *f[2:9]), strict=True):  # fmt: skip
            L[c[slot]] = value
        tx.FW, tx.UID = (str(v).encode() for v in f[9:11])
        L[c["SEQ"]] = f[11]
        tx.send(-1, 0)
    else:
        Q[0], Q[1] = frame.seq, ord(frame.kind.value)
        if frame.kind is Kind.EVENT:
            Q[2:8] = f
        elif frame.kind is Kind.REJECT:
            Q[2], Q[6], Q[7] = f
        elif frame.kind is Kind.SNAPSHOT:
            S[c["ST"]], S[c["RS"]], S[c["CALL"]], S[c["T"]] = f[0], f[1], f[2], f[3] * 1000 + 999
            S[c["HELPING"]], S[c["OFFHOOK"]], S[c["OVER"]] = f[4] & 1, f[4] >> 1 & 1, f[4] >> 2
            S[c["PST"]], S[c["PRS"]], S[c["MISS"]], L[c["DROP"]] = f[5:9]
            Q[6] = f[9]  # the first seq its collapse dropped, kept with the queued frame
        elif frame.kind is Kind.HELLO:
            assert f[0] == 1  # the protocol version is written by tx.py, not kept
            L[c["BOOT"]] = f[1]
            tx.FW, tx.UID, fw.board.NAME = (str(v).encode() for v in f[2:5])
        tx.send(0, 0)
    return bytes(fw.board.written)


@pytest.mark.parametrize("vector", WRITTEN, ids=ids(WRITTEN))
def test_seat_tx_writes_the_vector(
    tmp_path: Path, firmware_dir: Path, vector: dict[str, Any]
) -> None:
    fw = load_firmware(FakeBoard(tmp_path), firmware_dir)
    want = vector["frame"]
    frame = Frame(want["seq"], Kind(want["kind"]), tuple(want["fields"]))
    assert render(fw, frame) == vector["line"].encode("ascii")


def test_the_longest_heartbeat_fits_the_seats_buffer(tmp_path: Path, firmware_dir: Path) -> None:
    """Every counter at ten digits (2**30 - 1, MicroPython's small-int limit), a PSRAM-sized
    heap and a 16-digit uid: the seat still writes the whole frame, and the host reads it."""
    fw = load_firmware(FakeBoard(tmp_path), firmware_dir)
    big = 2**30 - 1
    frame = Frame(0, Kind.HEARTBEAT, (big, 8_000_000, 2**29 - 1, big, big, 10, big, big, big,
                                      "0.1.0", "0123456789ABCDEF", 65535))  # fmt: skip
    line = render(fw, frame)
    assert line.endswith(b"\n") and len(line) - 1 <= len(fw.tx.TB) - 1
    assert decode(line, direction=Direction.SEAT_TO_HOST) == frame


# --- the firmware's helpers against the host's ------------------------------------------------


@given(st.binary(max_size=96))
def test_firmware_crc_is_crc16(fw_frame: types.ModuleType, data: bytes) -> None:
    assert fw_frame.crc(data, len(data)) == crc16(data)


@given(st.integers(-(2**31), 2**40))
def test_firmware_num_writes_what_str_does(fw_frame: types.ModuleType, value: int) -> None:
    buf = bytearray(24)
    end = fw_frame.num(buf, 3, value)
    assert bytes(buf[3:end]) == str(value).encode()


@st.composite
def host_lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([k for k in Kind if k.from_host]))
    seq = draw(st.integers(1, MAX_SEQ)) if kind.sequenced else 0
    fields = draw(st.lists(st.integers(0, NUMBER_MAX), max_size=FIELDS_MAX))
    try:
        return encode(seq, kind, fields)
    except FrameError:
        return encode(seq, kind, fields[:2])  # too long for the seat: fewer fields


@given(host_lines())
def test_firmware_parses_every_frame_the_host_writes(
    fw_frame: types.ModuleType, line: bytes
) -> None:
    frame = decode(line)
    kind, numbers = fw_parse(fw_frame, line[:-1])
    assert chr(kind) == frame.kind.value
    assert numbers == [frame.seq, *frame.fields]


# Bodies from a small alphabet, given the right CRC: all that is left to differ is grammar.
_BODY = st.text(alphabet="0123456789 -AQTZWqx", min_size=1, max_size=40)


@given(_BODY)
def test_host_accepts_nothing_the_seat_refuses(fw_frame: types.ModuleType, body: str) -> None:
    raw = body.encode()
    line = raw + b"*%04X" % crc16(raw)
    if len(line) > RB:
        return
    kind, numbers = fw_parse(fw_frame, line)
    try:
        frame = decode(line, direction=Direction.HOST_TO_SEAT)
    except (SequenceError, UnknownKindError):
        return  # sequence rules and kinds are rx.py's and host.py's business, not parse's
    except GrammarError:
        # the seat is more lenient in exactly one way: numbers with leading zeros
        if kind:
            tokens = [raw.split(b" ")[0], *raw.split(b" ")[2:]]
            assert any(len(t) > 1 and t.startswith(b"0") for t in tokens), body
        return
    assert chr(kind) == frame.kind.value
    assert numbers == [frame.seq, *frame.fields]


def test_the_seat_tolerates_what_the_host_never_writes(fw_frame: types.ModuleType) -> None:
    # docs/protocol.md, "Tolerances": the host refuses these, the seat takes them
    for body, numbers in ((b"01 Q", [1]), (b"65536 T 1", [65536, 1]), (b"7 O 0042", [7, 42])):
        line = body + b"*%04X" % crc16(body)
        assert fw_parse(fw_frame, line)[1] == numbers
        with pytest.raises(FrameError):
            decode(line, direction=Direction.HOST_TO_SEAT)


@pytest.mark.parametrize("acked", [0, 500])
def test_seat_ignores_an_ack_for_what_it_never_sent(
    tmp_path: Path, firmware_dir: Path, acked: int
) -> None:
    fw = load_firmware(FakeBoard(tmp_path), firmware_dir)
    L, c = fw.tx.L, fw.c
    if acked == 0:
        L[c["SEQ"]] = 40000  # so the next frames are 40001 and 40002
    fw.link.enq(0, 0, 0, ord("B"))  # as at boot: hello and snapshot
    fw.link.enq(0, 0, 0, ord("S"))
    line = bytearray(encode(0, Kind.ACK, [acked]))
    fw.rx.feed(line, len(line))
    assert L[c["COUNT"]] == 2
