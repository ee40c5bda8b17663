"""Every emulated micro:bit has its own board id: written into UICR CUSTOMER[0..1] by the
rig, read there by boards/microbit.py, kept across every kind of reset."""

from __future__ import annotations

import pytest

from gateway.fleet.image_flash import await_hello
from gateway.image import build_image
from gateway.rig import EmulatedBoard, QemuMicrobit, RawRepl, boot_many, firmware_files
from gateway.rig.qemu import board_uid

pytestmark = pytest.mark.hil

# Import the board file and print its UID as the hello sends it (firmware/loop.py: two
# upper-case hex digits a byte). One exec: the import turns Ctrl-C off and re-inits the UART.
READ_UID = "import board\nprint(''.join('%02X' % b for b in board.UID))"
BOARD_FILE = {"board.py": firmware_files()["board.py"]}


def _board_file_uid(board: EmulatedBoard) -> str:
    with board.repl() as repl:
        return repl.exec(READ_UID)[0].strip()


def _uicr(repl: RawRepl) -> str:
    words = repl.eval("[machine.mem32[0x10001080 + 4 * i] & 0xFFFFFFFF for i in range(2)]")
    assert isinstance(words, list)
    return "".join(f"{w:08X}" for w in words)


def test_two_boards_report_different_uids(qemu_available: None) -> None:
    with boot_many(2, files=BOARD_FILE) as boards:
        uids = [board.uid for board in boards]
        assert uids[0] != uids[1]
        assert [_board_file_uid(board) for board in boards] == uids
        for board in boards:
            with board.repl() as repl:
                # the chip's own id (FICR) is the same on every QEMU micro:bit
                assert repl.eval("__import__('machine').unique_id()") == b"\x03\x00\x00\x00xV4\x12"


def test_an_explicit_uid_is_reported_and_survives_every_reset(qemu_available: None) -> None:
    uid = "5EA7C0DE9ABCDEF0"  # the second word's top bit set: a negative mem32 on the board
    with EmulatedBoard(emulator=QemuMicrobit(uid=uid)) as board:
        assert board.uid == uid
        board.install(BOARD_FILE, reset=False)
        assert _board_file_uid(board) == uid
        board.reset()  # QMP system_reset
        assert _board_file_uid(board) == uid
        board.gpio.reset()  # AIRCR SYSRESETREQ over qtest
        assert _board_file_uid(board) == uid
        with board.repl() as repl:
            repl.hard_reset()  # machine.reset() on the board
        assert _board_file_uid(board) == uid
        with board.repl() as repl:
            repl.exec("import machine")
            assert _uicr(repl) == uid


def test_the_seat_firmware_says_the_uid_in_its_hello(qemu_available: None) -> None:
    """End to end: the seat image (firmware frozen in flash) boots with the board file's UID
    and its hello carries it, before and after a reset."""
    uid = "5EA7C0DE00000777"
    board = EmulatedBoard(emulator=QemuMicrobit(uid=uid, firmware_hex=build_image().path))
    try:
        board.start(repl=False)
        assert await_hello(board.serial_url, timeout=20).uid == uid
        board.reset()
        assert await_hello(board.serial_url, timeout=20).uid == uid
    finally:
        board.stop()


def test_erased_uicr_leaves_the_chips_own_id(qemu_available: None) -> None:
    """A real board whose UICR nobody programmed reads all ones there: the board file falls
    back to machine.unique_id() (FICR DEVICEID)."""
    with EmulatedBoard() as board:
        board.install(BOARD_FILE, reset=False)
        with board.repl() as repl:
            repl.exec("import machine\nfor a in (0x10001080, 0x10001084):\n machine.mem32[a] = -1")
            ficr = repl.eval("machine.unique_id()")
            assert isinstance(ficr, bytes)
            assert repl.exec(READ_UID)[0].strip() == ficr.hex().upper()


def test_uid_forms() -> None:
    assert board_uid("5ea7c0de00000001") == "5EA7C0DE00000001"
    assert board_uid(bytes.fromhex("5EA7C0DE00000002")) == "5EA7C0DE00000002"
    first, second = board_uid(), board_uid()
    assert first != second and len(first) == 16 and first == first.upper()
    int(first, 16)
    for bad in ("5EA7", "5EA7C0DE0000000G", b"\x01\x02", "FFFFFFFFFFFFFFFF"):
        with pytest.raises(ValueError):
            board_uid(bad)
