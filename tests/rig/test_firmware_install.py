"""The project's firmware goes onto an emulated board intact."""

from __future__ import annotations

import time

import pytest

from gateway.rig import EmulatedBoard, firmware_files

pytestmark = pytest.mark.hil


def test_firmware_files_include_the_board_file() -> None:
    files = firmware_files()
    assert "main.py" in files and "board.py" in files
    # the firmware's parts are executed by main.py, never imported: no .py suffix
    parts = [name for name in files if not name.endswith(".py")]
    assert parts == [f"fw{i}" for i in range(len(parts))] and len(parts) > 1


def test_install_firmware(board: EmulatedBoard) -> None:
    board.install_firmware()
    time.sleep(0.5)  # let main.py boot and take the UART
    # The firmware disables Ctrl-C after boot: repl() resets and catches main.py early.
    with board.repl() as repl:
        assert sorted(repl.list_files()) == sorted(firmware_files())
