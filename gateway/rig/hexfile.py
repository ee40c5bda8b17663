"""Intel HEX images for the micro:bit v1's nRF51822: read and checked whole, written back.

A micro:bit v1 takes its firmware as one image through its USB interface chip (DAPLink:
a .hex copied onto its MICROBIT drive; or CMSIS-DAP). `read_image` is what decides whether a
file is such an image, for `seatlink flash --image` before it touches a board and for the
emulated DAPLink drive (gateway.rig.drive) before it flashes one:

- every line is a record `:LLAAAATT<data>CC` in hex digits, its length and checksum right;
- record types 00 (data), 01 (end of file, last), 02/04 (segment / linear address), 03/05
  (start address); the Universal Hex's block records (0A-0E) are refused;
- every data byte lands in the nRF51822's flash (256 KB at 0) or its UICR (256 bytes at
  0x10001000), no byte twice;
- the image is whole: it sets the vector table at address 0 (initial stack pointer and
  reset handler), which a full flash has just erased.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FLASH", "UICR", "HexError", "HexImage", "read_image", "read_image_file", "write_hex"]

FLASH = range(0x0000_0000, 0x0004_0000)  # nRF51822 on the micro:bit v1: 256 KB
UICR = range(0x1000_1000, 0x1000_1100)
MAX_FILE_BYTES = 4 * 1024 * 1024  # a full 256 KB image is ~720 KB of hex
_DATA, _EOF, _SEGMENT, _START_SEGMENT, _LINEAR, _START_LINEAR = range(6)
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")


class HexError(ValueError):
    """Not an Intel HEX image for a micro:bit v1; the message names the line at fault."""


@dataclass(frozen=True)
class HexImage:
    """The bytes an image sets, by address, in runs of consecutive addresses."""

    runs: Mapping[int, bytes]  # start address -> bytes, sorted, none touching another
    start: int | None  # the start address record's, if any

    @property
    def flash_bytes(self) -> int:
        return sum(len(d) for a, d in self.runs.items() if a in FLASH)

    @property
    def uicr_bytes(self) -> int:
        return sum(len(d) for a, d in self.runs.items() if a in UICR)

    @property
    def flash_end(self) -> int:
        """One past the highest flash address set."""
        return max((a + len(d) for a, d in self.runs.items() if a in FLASH), default=0)

    def read(self, address: int, size: int) -> bytes | None:
        """`size` bytes from `address` if the image sets every one of them."""
        for start, data in self.runs.items():
            if start <= address and address + size <= start + len(data):
                return data[address - start : address - start + size]
        return None

    def patched(self, address: int, data: bytes) -> HexImage:
        """A copy with `data` at `address` (every byte of which the image sets)."""
        for start, run in self.runs.items():
            if start <= address and address + len(data) <= start + len(run):
                at = address - start
                runs = dict(self.runs)
                runs[start] = run[:at] + data + run[at + len(data) :]
                return HexImage(runs, self.start)
        raise ValueError(f"the image sets no {len(data)} bytes at {address:#x}")

    def find(self, needle: bytes) -> int | None:
        """The address of the first run holding `needle` whole."""
        for start, data in self.runs.items():
            at = data.find(needle)
            if at >= 0:
                return start + at
        return None


def read_image_file(path: Path) -> HexImage:
    """`read_image` of a file, with the file's name in every error."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise HexError(f"{path}: {size} bytes; a micro:bit v1 image in Intel HEX is under "
                           f"{MAX_FILE_BYTES // (1024 * 1024)} MB")  # fmt: skip
        data = path.read_bytes()
    except OSError as exc:
        raise HexError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        return read_image(data)
    except HexError as exc:
        raise HexError(f"{path}: {exc}") from None


def read_image(data: bytes) -> HexImage:
    """The image in `data`, checked as the module says; HexError otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise HexError(f"{len(data)} bytes: too large for a micro:bit v1 image")
    memory: dict[int, int] = {}
    base = 0
    start: int | None = None
    ended = 0
    for number, line in _lines(data):
        if ended:
            raise HexError(f"line {number}: data after the end-of-file record (line {ended})")
        kind, address, payload = _record(number, line)
        if kind == _DATA:
            at = base + address
            for i, byte in enumerate(payload):
                where = at + i
                if where not in FLASH and where not in UICR:
                    raise HexError(f"line {number}: address {where:#010x} is outside the "
                                   "nRF51822's flash (0x00000000-0x0003ffff) and UICR "
                                   "(0x10001000-0x100010ff)")  # fmt: skip
                if where in memory:
                    raise HexError(f"line {number}: address {where:#010x} is set twice")
                memory[where] = byte
        elif kind == _EOF:
            ended = number
        elif kind == _SEGMENT:
            base = int.from_bytes(payload, "big") << 4
        elif kind == _LINEAR:
            base = int.from_bytes(payload, "big") << 16
        elif kind == _START_LINEAR:
            start = int.from_bytes(payload, "big")
        elif kind == _START_SEGMENT:
            start = (int.from_bytes(payload[:2], "big") << 4) + int.from_bytes(payload[2:], "big")
    if not ended:
        raise HexError("no end-of-file record (:00000001FF): the file is cut short")
    if not memory:
        raise HexError("no data records: nothing to flash")
    if any(a not in memory for a in range(8)):
        raise HexError("not a whole image: it does not set the vector table at address 0 "
                       "(a full flash erases the board, which would then not start)")  # fmt: skip
    return HexImage(_runs(memory), start)


_LENGTHS = {_EOF: (0,), _SEGMENT: (2,), _LINEAR: (2,), _START_SEGMENT: (4,), _START_LINEAR: (4,)}


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r").strip(b" \t")
        if line:
            yield number, line


def _record(number: int, line: bytes) -> tuple[int, int, bytes]:
    if not line.startswith(b":"):
        raise HexError(f"line {number}: not an Intel HEX record (it must start with ':')")
    digits = line[1:]
    if not digits or any(c not in _HEXDIGITS for c in digits) or len(digits) % 2:
        raise HexError(f"line {number}: not an even number of hex digits after ':'")
    raw = bytes.fromhex(digits.decode("ascii"))
    if len(raw) < 5 or len(raw) != raw[0] + 5:
        raise HexError(f"line {number}: its length byte says {raw[0]} data bytes, the line "
                       f"holds {max(len(raw) - 5, 0)}")  # fmt: skip
    if sum(raw) & 0xFF:
        want = (-sum(raw[:-1])) & 0xFF
        raise HexError(f"line {number}: checksum {raw[-1]:02X}, the record's is {want:02X} "
                       "(damaged)")  # fmt: skip
    kind, address, payload = raw[3], int.from_bytes(raw[1:3], "big"), raw[4:-1]
    if kind in (0x0A, 0x0B, 0x0C, 0x0D, 0x0E):
        raise HexError(f"line {number}: record type {kind:02X} is a Universal Hex block; give "
                       "the micro:bit v1 (nRF51) image on its own")  # fmt: skip
    if kind > _START_LINEAR:
        raise HexError(f"line {number}: unknown record type {kind:02X}")
    if kind in _LENGTHS and len(payload) not in _LENGTHS[kind]:
        raise HexError(f"line {number}: a type {kind:02X} record holds {_LENGTHS[kind][0]} "
                       f"bytes, not {len(payload)}")  # fmt: skip
    return kind, address, payload


def _runs(memory: Mapping[int, int]) -> dict[int, bytes]:
    runs: dict[int, bytes] = {}
    addresses = sorted(memory)
    first = previous = addresses[0]
    for address in addresses[1:] + [-1]:
        if address != previous + 1:
            runs[first] = bytes(memory[a] for a in range(first, previous + 1))
            first = address
        previous = address
    return runs


def write_hex(image: HexImage) -> bytes:
    """The image as Intel HEX: 16 data bytes a record, linear address records as needed."""
    out: list[bytes] = []
    upper = -1
    for start, data in image.runs.items():
        pos = 0
        while pos < len(data):
            address = start + pos
            # 16 bytes a record, and no record across a 64 KB boundary
            size = min(16, len(data) - pos, 0x10000 - (address & 0xFFFF))
            if address >> 16 != upper:
                upper = address >> 16
                out.append(_line(_LINEAR, 0, upper.to_bytes(2, "big")))
            out.append(_line(_DATA, address & 0xFFFF, data[pos : pos + size]))
            pos += size
    if image.start is not None:
        out.append(_line(_START_LINEAR, 0, image.start.to_bytes(4, "big")))
    out.append(_line(_EOF, 0, b""))
    return b"".join(out)


def _line(kind: int, address: int, payload: bytes) -> bytes:
    raw = bytes([len(payload)]) + address.to_bytes(2, "big") + bytes([kind]) + payload
    return b":" + (raw + bytes([(-sum(raw)) & 0xFF])).hex().upper().encode("ascii") + b"\n"
