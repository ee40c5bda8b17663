"""The firmware as files (the bundle), as boards that keep their firmware as files get it; the
micro:bit v1 gets the image instead (tests/image, hil_tests)."""

from __future__ import annotations

from gateway.rig import firmware_files


def test_firmware_files_include_the_board_file() -> None:
    files = firmware_files()
    assert "main.py" in files and "board.py" in files
    # the firmware's parts are executed by main.py, never imported: no .py suffix
    parts = [name for name in files if not name.endswith(".py")]
    assert parts == [f"fw{i}" for i in range(len(parts))] and len(parts) > 1
