"""Fixtures for the seat link tests (helpers: seatlink_support.py)."""

from __future__ import annotations

import importlib.util
import socket
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from seatlink_support import (
    FIRMWARE,
    VARIANTS,
    FakeBoard,
    RunningSeat,
    SocketPort,
    load_firmware,
)


@pytest.fixture(scope="session")
def fw_frame() -> types.ModuleType:
    """firmware/frame.py, imported from its path (it imports nothing)."""
    spec = importlib.util.spec_from_file_location("seatlink_fw_frame", FIRMWARE / "frame.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gateway.bundle import firmware_bundle

    directory = tmp_path_factory.mktemp("bundle")
    for file in firmware_bundle(board="microbit"):
        if file.name not in ("board.py", "main.py"):  # the stand-in board replaces board.py
            (directory / file.name).write_bytes(file.data)
    return directory


@pytest.fixture(params=VARIANTS)
def firmware_dir(request: pytest.FixtureRequest, bundle_dir: Path) -> Path:
    return FIRMWARE if request.param == "source" else bundle_dir


@pytest.fixture
def socket_pair() -> Iterator[tuple[SocketPort, socket.socket]]:
    """(host end as a pyserial-like port, seat end as a socket)."""
    host, seat = socket.socketpair()
    try:
        yield SocketPort(host), seat
    finally:
        host.close()
        seat.close()


@pytest.fixture
def seat(
    socket_pair: tuple[SocketPort, socket.socket], tmp_path: Path, firmware_dir: Path
) -> Iterator[tuple[SocketPort, RunningSeat]]:
    """The real firmware running on a stand-in board, and the host's port to it."""
    port, sock = socket_pair
    running = RunningSeat(load_firmware(FakeBoard(tmp_path, sock), firmware_dir)).start()
    try:
        yield port, running
    finally:
        running.stop()
