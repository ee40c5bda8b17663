"""The Asterisk Manager Interface wire protocol, without I/O (sans-IO).

On connect Asterisk sends one banner line (`Asterisk Call Manager/5.0.1`), then messages:
lines `Key: Value` each ended by CRLF, a message ended by an empty line. A message is a
response to an action (it has `Response:` and echoes the action's `ActionID:`) or an event
(`Event:`). Keys may repeat (`ChanVariable`, `Variable`), so a message keeps its pairs in
order. The parser takes bytes in whatever chunks the socket gives and never raises on what
the peer sends, except for a first line that is no AMI banner: what it cannot read it
counts (`ParserStats`) and skips.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

BANNER = re.compile(r"^Asterisk Call Manager/(\d+(?:\.\d+)*)\s*$")
MAX_MESSAGE = 64 * 1024  # bytes; Asterisk's own are a few KB (events with every channel var)
MAX_BANNER = 256
FieldValue = str | list[str]  # a list repeats its key


class AmiProtocolError(ValueError):
    """The peer does not speak AMI (its first line is no AMI banner)."""


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: its `Key: Value` pairs in the order they came."""

    pairs: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> Literal["response", "event", "junk"]:
        if self.get("Response") is not None:
            return "response"
        if self.get("Event") is not None:
            return "event"
        return "junk"

    @property
    def name(self) -> str:
        """The event's name or the response's status (`Success`, `Error`, ...)."""
        return self.get("Event") or self.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of `key`, whatever its case (Asterisk writes `Uniqueid`, some
        versions `UniqueID`)."""
        wanted = key.lower()
        for k, v in self.pairs:
            if k.lower() == wanted:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        wanted = key.lower()
        return [v for k, v in self.pairs if k.lower() == wanted]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def as_dict(self) -> dict[str, str]:
        """First value per key (for logs and asserts; repeats are in `pairs`)."""
        out: dict[str, str] = {}
        for k, v in self.pairs:
            out.setdefault(k, v)
        return out

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> AmiMessage:
        return cls(tuple(fields.items()))


@dataclass
class ParserStats:
    messages: int = 0  # responses and events returned
    malformed_lines: int = 0  # lines without a colon or with an empty key
    junk: int = 0  # messages with neither Response nor Event
    oversized: int = 0  # messages over max_message bytes, skipped whole


@dataclass
class AmiParser:
    """`feed(chunk)` returns the messages the chunk completed; `banner` once it came."""

    max_message: int = MAX_MESSAGE
    banner: str | None = None
    version: str | None = None
    stats: ParserStats = field(default_factory=ParserStats)
    _buf: bytearray = field(default_factory=bytearray)
    _pairs: list[tuple[str, str]] = field(default_factory=list)
    _size: int = 0
    _skipping: bool = False  # inside an oversized message: drop lines until its empty line

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buf += data
        out: list[AmiMessage] = []
        if self.banner is None and not self._read_banner():
            return out
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            self._line(line.removesuffix(b"\r"), out)
        if len(self._buf) + self._size > self.max_message:
            # a line that never ends: drop what we have, the rest of it is skipped with the
            # message it belongs to
            self._buf.clear()
            self._oversized()
        return out

    def _read_banner(self) -> bool:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > MAX_BANNER:
                raise AmiProtocolError(f"not an AMI peer: {len(self._buf)} bytes and no "
                                       "banner line")  # fmt: skip
            return False
        line = bytes(self._buf[:end]).removesuffix(b"\r").decode("utf-8", "replace")
        match = BANNER.match(line)
        if match is None:
            raise AmiProtocolError(f"not an AMI peer: its first line is {line[:80]!r}, not "
                                   "'Asterisk Call Manager/x.y'")  # fmt: skip
        del self._buf[: end + 1]
        self.banner, self.version = line.strip(), match.group(1)
        return True

    def _line(self, line: bytes, out: list[AmiMessage]) -> None:
        if not line.strip():
            if self._skipping:
                self._skipping = False
            elif self._pairs:
                message = AmiMessage(tuple(self._pairs))
                if message.kind == "junk":
                    self.stats.junk += 1
                else:
                    self.stats.messages += 1
                    out.append(message)
            self._pairs = []
            self._size = 0
            return
        if self._skipping:
            return
        self._size += len(line) + 2
        if self._size > self.max_message:
            self._oversized()
            return
        key, colon, value = line.decode("utf-8", "replace").partition(":")
        key = key.strip()
        if not colon or not key:
            self.stats.malformed_lines += 1
            return
        self._pairs.append((key, value.strip()))

    def _oversized(self) -> None:
        if not self._skipping:
            self.stats.oversized += 1
        self._skipping = True
        self._pairs = []
        self._size = 0


def encode_action(name: str, *, action_id: str, **fields: FieldValue) -> bytes:
    """One action on the wire. A list value repeats its key (`Variable`). ValueError for a
    CR or LF anywhere (it would end the line early and let a value inject headers or a
    whole action) and for a key that is not a header name."""
    lines = [("Action", name), ("ActionID", action_id)]
    for key, value in fields.items():
        for one in [value] if isinstance(value, str) else value:
            lines.append((key, one))
    out = []
    for key, value in lines:
        if not key or any(c in key for c in ":\r\n ") or not key.isprintable():
            raise ValueError(f"AMI header name {key!r} is not a header name")
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI header {key}: a value may not hold CR or LF (header "
                             f"injection): {value!r}")  # fmt: skip
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode()
