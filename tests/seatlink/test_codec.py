"""The host codec against the shared vectors, and its round trips (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from seatlink_support import load_vectors

from gateway.seatlink.codec import (
    FIELDS_MAX,
    MAX_SEQ,
    NUMBER_MAX,
    SEAT_LINE_MAX,
    CrcError,
    Direction,
    Field,
    Frame,
    FrameError,
    GrammarError,
    Kind,
    OversizedError,
    SequenceError,
    UnknownKindError,
    crc16,
    decode,
    encode,
    next_seq,
)

VECTORS = load_vectors()
VALID = [v for v in VECTORS if "frame" in v]
INVALID = [v for v in VECTORS if "error" in v]
ERRORS: dict[str, type[FrameError]] = {
    e.reason: e for e in (CrcError, GrammarError, OversizedError, UnknownKindError, SequenceError)
}


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def test_vectors_cover_every_kind_and_error() -> None:
    assert {v["frame"]["kind"] for v in VALID} == {k.value for k in Kind}
    assert {v["error"] for v in INVALID} == set(ERRORS)
    assert len(VECTORS) >= 12
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)


def test_crc_check_value() -> None:
    # the catalogued check value of CRC-16/CCITT-FALSE
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


@pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
def test_valid_vector_decodes(vector: dict[str, Any]) -> None:
    line = vector["line"].encode("ascii")
    frame = decode(line, direction=Direction(vector["direction"]))
    want = vector["frame"]
    assert frame == Frame(want["seq"], Kind(want["kind"]), tuple(want["fields"]))
    assert decode(line) == frame  # the direction only narrows what is accepted


@pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
def test_valid_vector_encodes_to_its_bytes(vector: dict[str, Any]) -> None:
    want = vector["frame"]
    line = encode(want["seq"], want["kind"], want["fields"])
    # the one vector with a CR shows what is tolerated, not what is written
    assert line == vector["line"].replace("\r\n", "\n").encode("ascii")


@pytest.mark.parametrize("vector", INVALID, ids=ids(INVALID))
def test_invalid_vector_is_refused_for_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(ERRORS[vector["error"]]) as caught:
        decode(vector["line"].encode("ascii"), direction=Direction(vector["direction"]))
    assert type(caught.value).reason == vector["error"]
    assert str(caught.value)  # a message that says what is wrong


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        (b"1 Q*723C\n", CrcError, "expected 723B"),
        (b"1 Q\n", GrammarError, "CRC"),
        (b"1 Q*723B\x00\n", GrammarError, "0x00"),
        (encode(0, "A", [1]).replace(b" A ", b" W "), CrcError, "CRC"),
        (b"0 W 1*%04X\n" % crc16(b"0 W 1"), UnknownKindError, "W"),
        (b"3 T 1 x*%04X\n" % crc16(b"3 T 1 x"), GrammarError, "field 2"),
        (b"0 S 1*%04X\n" % crc16(b"0 S 1"), SequenceError, "1..65535"),
        (b"65536 S 1*%04X\n" % crc16(b"65536 S 1"), SequenceError, "65536"),
        (b"01 Q*%04X\n" % crc16(b"01 Q"), GrammarError, "01"),
        (b"1 Q -0*%04X\n" % crc16(b"1 Q -0"), GrammarError, "-0"),
        (b"x" * 300 + b"\n", OversizedError, "300"),
    ],
)
def test_decode_errors_say_what_is_wrong(line: bytes, error: type[FrameError], words: str) -> None:
    with pytest.raises(error, match=words):
        decode(line)


def test_direction_narrows_kinds() -> None:
    offer = encode(2, Kind.OFFER, [1])
    decode(offer, direction=Direction.HOST_TO_SEAT)
    with pytest.raises(UnknownKindError, match="seat->host"):
        decode(offer, direction=Direction.SEAT_TO_HOST)
    ack = encode(0, Kind.ACK, [5])
    assert decode(ack, direction=Direction.SEAT_TO_HOST) == decode(ack)


def test_host_kinds_get_the_seat_limits_without_a_direction() -> None:
    # a line of 65 bytes to the seat is refused whoever asks: the seat would drop it
    body = b"65535 O " + b"99999999 " * 5 + b"9999999"
    line = body + b"*%04X\n" % crc16(body)
    assert len(line) - 1 > SEAT_LINE_MAX
    with pytest.raises(OversizedError):
        decode(line)


@pytest.mark.parametrize(
    ("seq", "kind", "fields", "error"),
    [
        (1, "W", [], UnknownKindError),
        (1, "q", [], UnknownKindError),
        (0, Kind.OFFER, [1], SequenceError),
        (65536, Kind.OFFER, [1], SequenceError),
        (3, Kind.PING, [], SequenceError),
        (1, Kind.OFFER, [-1], GrammarError),
        (1, Kind.OFFER, ["x"], GrammarError),
        (1, Kind.EVENT, ["x", 1], GrammarError),
        (1, Kind.HELLO, ["two words"], GrammarError),
        (1, Kind.HELLO, ["a*b"], GrammarError),
        (1, Kind.HELLO, [""], GrammarError),
        (1, Kind.HELLO, ["12"], GrammarError),  # would come back as a number
        (1, Kind.HELLO, ["caf\u00e9"], GrammarError),
        (1, Kind.OFFER, [True], GrammarError),
        (1, Kind.OFFER, [1.5], GrammarError),
        (1, Kind.OFFER, [NUMBER_MAX + 1], OversizedError),
        (1, Kind.SETTINGS, [1] * (FIELDS_MAX + 1), OversizedError),
        (MAX_SEQ, Kind.OFFER, [NUMBER_MAX] * 6, OversizedError),
    ],
)
def test_encode_refuses_what_the_receiver_would_drop(
    seq: int, kind: Kind | str, fields: list[Any], error: type[FrameError]
) -> None:
    with pytest.raises(error):
        encode(seq, kind, fields)


def test_encode_writes_negative_numbers_and_text_for_the_seat_kinds() -> None:
    assert encode(4, Kind.EVENT, [7, 4, 0, 1, -1, 0]).startswith(b"4 E 7 4 0 1 -1 0*")
    assert encode(1, Kind.HELLO, [1, 1, "0.1.0", "0012", "x"]).startswith(b"1 B 1 1 0.1.0 0012 x*")


def test_seq_wraps_to_one() -> None:
    assert next_seq(1) == 2
    assert next_seq(MAX_SEQ) == 1


def test_kind_properties() -> None:
    assert {k for k in Kind if not k.sequenced} == {Kind.ACK, Kind.HEARTBEAT, Kind.PING}
    assert {k for k in Kind if k.from_seat and k.from_host} == {Kind.ACK}
    assert {k for k in Kind if k.carries_text} == {Kind.HELLO, Kind.HEARTBEAT}
    assert all(k.from_seat or k.from_host for k in Kind)


# --- round trips --------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="*"),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.lstrip("-").isdigit())


def _seq(kind: Kind) -> st.SearchStrategy[int]:
    return st.integers(1, MAX_SEQ) if kind.sequenced else st.just(0)


@st.composite
def host_frames(draw: st.DrawFn) -> Frame:
    kind = draw(st.sampled_from([k for k in Kind if k.from_host]))
    fields = draw(st.lists(st.integers(0, NUMBER_MAX), max_size=FIELDS_MAX))
    frame = Frame(draw(_seq(kind)), kind, tuple(fields))
    body = len(" ".join(map(str, (frame.seq, kind.value, *fields))))
    assume(body + 5 <= SEAT_LINE_MAX)
    return frame


@st.composite
def seat_frames(draw: st.DrawFn) -> Frame:
    # A is the host's frame too: encode holds it to the seat's limits (host_frames has it)
    kind = draw(st.sampled_from([k for k in Kind if k.from_seat and not k.from_host]))
    number = st.integers(-(2**31), 2**40)
    field: st.SearchStrategy[Field] = st.one_of(number, _TEXT) if kind.carries_text else number
    return Frame(draw(_seq(kind)), kind, tuple(draw(st.lists(field, max_size=12))))


@given(host_frames())
def test_host_frames_round_trip(frame: Frame) -> None:
    line = frame.encode()
    assert len(line) - 1 <= SEAT_LINE_MAX
    assert decode(line, direction=Direction.HOST_TO_SEAT) == frame


@given(seat_frames())
def test_seat_frames_round_trip(frame: Frame) -> None:
    assert decode(frame.encode(), direction=Direction.SEAT_TO_HOST) == frame


@given(st.one_of(host_frames(), seat_frames()), st.data())
def test_any_one_byte_change_is_caught(frame: Frame, data: st.DataObject) -> None:
    # CRC-16 catches every burst of up to 16 bits, so every one-byte change before the
    # newline; the newline itself is framing, not content
    line = bytearray(frame.encode())
    at = data.draw(st.integers(0, len(line) - 2))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != line[at]))
    line[at] = new
    with pytest.raises(FrameError):
        decode(bytes(line))


@given(st.binary(max_size=80))
def test_decode_raises_only_frame_errors(junk: bytes) -> None:
    try:
        decode(junk)
    except FrameError:
        pass
