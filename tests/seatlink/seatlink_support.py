"""Helpers for the seat link tests (imported by name: pytest puts this directory on
sys.path; a unique module name, because several test directories have a conftest.py).

The firmware's own code under CPython: frame.py alone, or every module wired to a
stand-in board (FakeBoard) whose serial line is a socket; and a pyserial-like port
(SocketPort) for the host end. Whole-firmware tests run on two variants: the source in
firmware/ (what CPython virtual seats run) and the bundle gateway/bundle.py makes for the
board (constants inlined, minified)."""

from __future__ import annotations

import ast
import importlib
import json
import socket
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

from gateway import firmware_host

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
VECTORS = Path(__file__).resolve().parent / "vectors.json"


def load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="ascii"))["vectors"]
    return vectors


def firmware_constants(module: str) -> dict[str, Any]:
    """Module-level names of firmware/<module>.py bound to literals (ints, tuples, lists),
    and `bytearray(n)` / `[0] * n` buffers as their sizes: read with ast, never run."""
    tree = ast.parse((FIRMWARE / f"{module}.py").read_text(encoding="ascii"))
    found: dict[str, Any] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for name, value in zip(target.elts, node.value.elts, strict=True):
                    if isinstance(name, ast.Name) and isinstance(value, ast.Constant):
                        found[name.id] = value.value
            elif isinstance(target, ast.Name):
                found[target.id] = _literal(node.value)
    return found


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        if node.func.id == "bytearray":
            return ("buffer", ast.literal_eval(node.args[0]))
    try:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return ("buffer", len(ast.literal_eval(node.left)) * ast.literal_eval(node.right))
        return ast.literal_eval(node)
    except ValueError:
        return None  # not a literal (e.g. sized by another constant): not needed here


class FakeBoard:
    """board.py for CPython: the interface of boards/microbit.py, with the serial line a
    socket. `link_up = False` loses everything the seat writes (a pulled cable);
    `lose` counts down seat frames to lose one: lose = 3 loses the third from now."""

    NAME = b"cpython"
    BOOT0 = 0  # no boot count kept: boot 1

    def __init__(self, store: Path, sock: socket.socket | None = None) -> None:
        self.STORE = str(store) + "/"
        self.UID = bytes.fromhex("1234abcd")
        self.sock = sock
        self.pins = 1  # input levels: the headset on its hanger (bit 0), nothing pressed
        self.lights: list[int] = []
        self.kbd_calls: list[int] = []
        self.written = bytearray()
        self.link_up = True
        self.lose = 0
        self.lost: list[bytes] = []
        if sock is not None:
            sock.setblocking(False)

    def now(self) -> int:
        return int(time.monotonic() * 1000)

    def diff(self, a: int, b: int) -> int:
        return a - b

    def sleep(self, ms: int) -> None:
        time.sleep(ms / 1000)

    def mem(self) -> int:
        return 9000

    def kbd(self, c: int) -> None:
        self.kbd_calls.append(c)

    def inputs(self) -> int:
        return self.pins

    def light(self, rgb: int) -> None:
        self.lights.append(rgb)

    def read(self, buf: bytearray) -> int:
        if self.sock is None:
            return 0
        try:
            return self.sock.recv_into(buf)
        except BlockingIOError:
            return 0

    def write(self, buf: bytearray, n: int) -> None:
        data = bytes(buf[:n])
        self.written += data
        if self.lose:
            self.lose -= 1
            if not self.lose:
                self.lost.append(data)
                return
        if not self.link_up:
            self.lost.append(data)
            return
        if self.sock is not None:
            self.sock.setblocking(True)
            self.sock.sendall(data)
            self.sock.setblocking(False)


VARIANTS = ("source", "bundle")


def _all_constants() -> dict[str, int]:
    # The bundle drops the named slots (tx.BAD, seat.ST, ...): tests take them from the source.
    merged: dict[str, int] = {}
    for path in sorted(FIRMWARE.glob("*.py")):
        for name, value in firmware_constants(path.stem).items():
            if name.isupper() and type(value) is int:
                merged[name] = value
    return merged


CONST = _all_constants()


def load_firmware(board: FakeBoard, directory: Path = FIRMWARE) -> types.SimpleNamespace:
    """A fresh copy of the firmware wired to `board`, with `c` the source's named constants.

    From firmware/ the modules are imported for real, then taken out of sys.modules again,
    so every call gets its own firmware state. Any other directory stands for the micro:bit
    bundle, which is linked (modules merged, names shortened): it is loaded by
    gateway.firmware_host and its modules are reached by their firmware/ names."""
    if directory != FIRMWARE:
        inst = firmware_host.load_firmware(board=board)
        views = {name: inst.module(name) for name in inst.file_of}
        return types.SimpleNamespace(board=board, c=CONST, variant="bundle", **views)
    module_names = sorted(p.stem for p in directory.glob("*.py") if p.stem != "main")
    names = [*module_names, "board"]
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.modules["board"] = board  # type: ignore[assignment]
    sys.path.insert(0, str(directory))
    try:
        modules = {name: importlib.import_module(name) for name in module_names}
    finally:
        sys.path.remove(str(directory))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return types.SimpleNamespace(board=board, c=CONST, variant="source", **modules)


class RunningSeat:
    """The firmware's main loop in a thread, as on a board."""

    def __init__(self, fw: types.SimpleNamespace) -> None:
        self.fw = fw
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="seat", daemon=True)

    def _run(self) -> None:
        try:
            self.fw.loop.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> RunningSeat:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.fw.tx.L[CONST["QUIT"]] = 1
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "the seat loop did not stop"
        if self.error is not None:
            raise self.error

    @property
    def counters(self) -> dict[str, int]:
        names = ("BAD", "DROP", "RETX", "ERR", "COUNT", "SEQ", "RXSEQ")
        return {name.lower(): self.fw.tx.L[CONST[name]] for name in names}


class SocketPort:
    """The part of pyserial's Serial the session uses, over one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.timeout: float | None = None

    def read(self, size: int = 1) -> bytes:
        self.sock.settimeout(self.timeout)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            return b""

    def write(self, data: bytes) -> int:
        self.sock.settimeout(None)
        self.sock.sendall(data)
        return len(data)

    @property
    def in_waiting(self) -> int:
        self.sock.settimeout(0)
        try:
            return len(self.sock.recv(65536, socket.MSG_PEEK))
        except BlockingIOError:
            return 0
