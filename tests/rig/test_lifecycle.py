"""Processes: one QEMU per board, distinct ports, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.rig import EmulatedBoard, QemuMicrobit, boot_many

pytestmark = pytest.mark.hil


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_leaves_no_process_and_no_files(qemu_available: None) -> None:
    board = EmulatedBoard()
    board.start()
    pid = board.pid
    assert pid is not None and _alive(pid)
    workdir = Path(board.gpio_address).parent
    assert workdir.is_dir()
    board.stop()
    assert not _alive(pid)  # stopped *and* reaped: not even a zombie
    assert not workdir.exists()
    board.stop()  # twice is fine


def test_emulator_alone_as_context_manager(qemu_available: None) -> None:
    with QemuMicrobit() as emulator:
        pid = emulator.pid
        assert pid is not None and emulator.running
        assert emulator.serial_url.startswith("socket://127.0.0.1:")
    assert not _alive(pid)


def test_boot_many_gives_distinct_boards(qemu_available: None) -> None:
    with boot_many(2) as boards:
        assert len(boards) == 2
        assert len({b.serial_url for b in boards}) == 2
        assert len({b.gpio_address for b in boards}) == 2
        pids = [b.pid for b in boards]
        assert len(set(pids)) == 2
        for index, board in enumerate(boards):
            with board.repl() as repl:
                repl.exec(f"n = {index}")
        for index, board in enumerate(boards):
            with board.repl() as repl:
                assert repl.eval("n") == index
    assert not any(_alive(pid) for pid in pids if pid is not None)
