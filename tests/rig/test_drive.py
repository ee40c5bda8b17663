"""A whole image onto an emulated micro:bit v1, as DAPLink takes it: the Intel HEX checks,
`QemuMicrobit.flash_image` (a new QEMU on the same serial port: firmware, files and RAM
replaced), and the board's drive directory (gateway.rig.drive) that flashes a .hex copied
into it, refuses a bad one with FAIL.TXT, and leaves the board as it was then."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial

from gateway.rig import EmulatedBoard, RawRepl
from gateway.rig.drive import DETAILS, FAIL, HTM
from gateway.rig.hexfile import HexError, read_image, read_image_file, write_hex
from gateway.rig.qemu import find_firmware_hex
from tests.rig.image_support import dated_image

STOCK = "micro:bit v1.0.1+unknown on 2023-02-24; MicroPython v1.9.2-34-gd64154c73 on 2017-09-01"


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def _uname_and_files(url: str) -> tuple[str, list[str]]:
    with RawRepl.open(url) as repl:
        repl.enter_raw(deadline=5)
        out, _ = repl.exec("import os\nprint(repr((os.uname()[3], os.listdir())))")
    version, files = eval(out)  # noqa: S307 - the board's own repr of a tuple of str
    return str(version), list(files)


# --- Intel HEX -------------------------------------------------------------------------------


def test_the_stock_image_reads_and_writes_back_byte_for_byte(qemu_available: None) -> None:
    raw = find_firmware_hex().read_bytes()
    image = read_image(raw)
    assert image.flash_bytes > 200_000 and image.uicr_bytes > 0
    assert write_hex(image) == raw


def _record(kind: int, address: int, data: bytes) -> bytes:
    body = bytes([len(data)]) + address.to_bytes(2, "big") + bytes([kind]) + data
    return b":" + (body + bytes([(-sum(body)) & 0xFF])).hex().upper().encode() + b"\n"


VECTORS = _record(0, 0, bytes(range(16)))
EOF_RECORD = b":00000001FF\n"


@pytest.mark.parametrize(("text", "reason"), [
    (VECTORS + EOF_RECORD, None),
    (VECTORS.replace(b"\n", b"\r\n") + EOF_RECORD, None),
    (VECTORS[:-3] + b"00\n" + EOF_RECORD, "line 1: checksum 00, the record's is"),
    (VECTORS, "no end-of-file record"),
    (VECTORS[: len(VECTORS) // 2], "not an even number of hex digits"),
    (b"hello\n", "line 1: not an Intel HEX record"),
    (VECTORS + _record(4, 0, b"\x00\x04") + _record(0, 0, b"\x01") + EOF_RECORD,
     "address 0x00040000 is outside the nRF51822's flash"),
    (VECTORS + _record(4, 0, b"\x10\x00") + _record(0, 0x1100, b"\x01") + EOF_RECORD,
     "address 0x10001100 is outside"),
    (VECTORS + _record(0, 8, b"\x01") + EOF_RECORD, "address 0x00000008 is set twice"),
    (_record(0, 0x100, b"\x01") + EOF_RECORD, "not a whole image"),
    (_record(0x0A, 0, b"\x99\x00\xc0\xde") + EOF_RECORD, "Universal Hex"),
    (VECTORS + EOF_RECORD + VECTORS, "data after the end-of-file record"),
    (EOF_RECORD, "no data records"),
])  # fmt: skip
def test_a_file_that_is_not_an_nrf51_image_is_refused(text: bytes, reason: str | None) -> None:
    if reason is None:
        assert read_image(text).read(0, 16) == bytes(range(16))
        return
    with pytest.raises(HexError, match=reason):
        read_image(text)


# --- the emulated board --------------------------------------------------------------------


def test_a_hex_copied_to_the_drive_replaces_everything_on_the_board(
        board: EmulatedBoard, tmp_path: Path) -> None:  # fmt: skip
    new = dated_image(tmp_path / "new.hex", "2099-12-31")
    with board.repl() as repl:
        repl.write_file("keep.py", b"x = 1\n")
    url, pid = board.serial_url, board.pid
    assert _uname_and_files(url) == (STOCK, ["keep.py"])
    drive = board.open_drive(parent=tmp_path, name="MICROBIT")
    assert drive.path == tmp_path / "MICROBIT"
    assert sorted(p.name for p in drive.path.iterdir()) == [DETAILS, HTM]
    assert f"Serial: {url}" in (drive.path / DETAILS).read_text()
    listener = RawRepl.open(url)  # a client connected across the flash, as a gateway's link
    try:
        shutil.copyfile(new, drive.path / "seat.hex")
        _wait(lambda: (drive.path / DETAILS).exists() and not (drive.path / "seat.hex").exists()
              and drive.flashes == 1, 30, "the drive to come back")  # fmt: skip
        assert not (drive.path / FAIL).exists()
        assert board.pid != pid and board.running and board.serial_url == url
        assert board.gpio.light() == 0  # the rig's GPIO is on the new process
        # the old connection is gone (as a USB serial port across a DAPLink flash): the
        # client opens the same URL again
        _wait(lambda: _dropped(listener), 5, "the old connection to drop")
    finally:
        listener.close()
    # the new image runs, and the filesystem is empty: a full flash erased it
    assert _uname_and_files(url) == (STOCK.replace("2017-09-01", "2099-12-31"), [])
    # the board keeps its id (UICR CUSTOMER[0..1], where the rig writes it) across the flash
    uid = getattr(board.emulator, "uid", None)
    if uid is not None:
        with RawRepl.open(url) as repl:
            repl.enter_raw(deadline=5)
            out, _ = repl.exec("import machine\nprint('%08X%08X' % (machine.mem32[0x10001080] "
                               "& 0xFFFFFFFF, machine.mem32[0x10001084] & 0xFFFFFFFF))")
        assert out.strip() == uid

    # a damaged file: FAIL.TXT says why, the board is left as it was
    with board.repl() as repl:
        repl.write_file("after.py", b"y = 2\n")
    pid = board.pid
    damaged = bytearray(new.read_bytes())
    damaged[1000] = ord("0") if damaged[1000] != ord("0") else ord("1")
    (drive.path / "bad.hex").write_bytes(bytes(damaged))
    _wait(lambda: (drive.path / FAIL).exists() and (drive.path / DETAILS).exists(), 30,
          "FAIL.TXT")  # fmt: skip
    assert "checksum" in (drive.path / FAIL).read_text()
    assert not (drive.path / "bad.hex").exists() and drive.failures == 1
    assert board.pid == pid
    assert _uname_and_files(url)[1] == ["after.py"]

    # a file cut short is taken once it stops growing, and refused
    cut = b"".join(new.read_bytes().splitlines(keepends=True)[:300])
    (drive.path / "cut.hex").write_bytes(cut)
    _wait(lambda: drive.failures == 2 and (drive.path / DETAILS).exists(), 30, "cut refused")
    assert "no end-of-file record" in (drive.path / FAIL).read_text()
    assert board.pid == pid

    board.stop()
    assert not drive.path.exists()  # the drive goes with the board


def _dropped(repl: RawRepl) -> bool:
    try:
        repl.port.read(1)
    except serial.SerialException as exc:
        return "disconnected" in str(exc)
    return False


def test_flash_image_refuses_a_bad_file_before_touching_the_board(
        board: EmulatedBoard, tmp_path: Path) -> None:  # fmt: skip
    bad = tmp_path / "bad.hex"
    bad.write_bytes(b":0400000500000000F7\n")
    pid = board.pid
    with pytest.raises(HexError, match="no end-of-file record"):
        board.flash_image(bad)
    with pytest.raises(HexError, match="cannot read it"):
        board.flash_image(tmp_path / "missing.hex")
    assert board.pid == pid and board.running
    image = read_image_file(find_firmware_hex())
    assert image.start is not None
