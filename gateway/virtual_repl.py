"""MicroPython 1.9.2's REPL on a micro:bit v1, played by CPython for a virtual seat.

Requirements:

- A virtual seat whose firmware is not running (it left its loop, failed to boot, or there is
  no main.py) answers on its serial line as the micro:bit does, so that gateway.rig.rawrepl,
  `seatlink flash` (gateway.fleet.flash) and mpremote's exec write, list and check its files
  exactly as on a board: the friendly prompt's control keys, the raw REPL and its framing
  (OK, stdout, 0x04, traceback, 0x04, >), soft and hard reboots.
- Code sent to the raw REPL runs under CPython in a namespace that lasts until a reboot
  (RawRepl keeps `_s` and `_f` there between execs, flash.py its hash routine `_h`), with the
  modules and the file API the micro:bit has, over the seat's filesystem directory.
- Whatever the board would print, this prints the same bytes: output newlines are \\r\\n,
  tracebacks and error messages read as MicroPython 1.9 writes them.
- No input makes feed() raise: anything the code raises, BaseException included, becomes
  the board's traceback on the line.
- One owner drives it from one thread: bytes in through feed(), out through `write` (called
  synchronously, must not raise: a line with nobody listening drops bytes), restarts
  through `reboot` and then reset()/banner()/traceback().

Decisions, from the real firmware (Debian firmware-microbit-micropython 1.0.1, as
gateway.rig boots it under QEMU) driven byte by byte:

- The prompts: Ctrl-C at the prompt answers "\\r\\n>>> " (no KeyboardInterrupt); Ctrl-B
  "\\r\\n" and the banner; Ctrl-A "\\r\\n" and the raw banner, or the banner alone inside the
  raw REPL; Ctrl-C in the raw REPL clears the code silently. 0x05 is an ordinary byte (no
  raw-paste in 1.9: mpremote's request ends in Ctrl-A, it sees the raw banner and falls back).
  Lines typed at the friendly prompt are echoed and dropped, not run: tools use the raw REPL.
- Reboots: Ctrl-D at an empty friendly prompt writes "\\r\\nsoft reboot\\r\\n" and the board
  runs main.py; Ctrl-D with no code in the raw REPL writes "OK\\r\\nsoft reboot\\r\\n" and the
  board stays in the raw REPL *without* running main.py (so `raw` is still true when
  `reboot("soft")` is called: the owner then only calls banner()). machine.reset() from code:
  "OK" and any output before it went out, nothing after; the board comes back in the
  friendly REPL. Every reboot starts a fresh namespace (heap).
- Files: the micro:bit's flat filesystem has no os.stat but os.size, and no module `uos`.
  A missing file is `OSError: file not found` (this port has no errno names, no ENOENT).
  Space is 120 chunks of 126 bytes; a file takes (2 + name bytes + size) // 126 + 1 of them
  (one file of 15,114 bytes named "big" fits, 15,115 does not, 40 files of 300 bytes fill it;
  gateway.rig.board.FS_BYTES is this "about 15,100"). A write past the end raises
  `OSError: 28` and the file is gone; opening a new file with no free chunk raises
  `OSError: no more storage space`. open(name, 'w') removes the old file first.
- Names: the board accepts any name up to 120 bytes ("a/b" and "../x" are plain names to
  it); here a name must also be a plain file name inside the directory (no "/", "\\\\", NUL,
  "", "." or ".."), else OSError. Names over 120 bytes are "file not found", as on the board.
- gc.mem_free() is a constant 9000: CPython has no fixed heap; a bare micro:bit reports
  8,800-9,200 at its REPL, and flash.py soft-resets a board below RAW_HEAP_NEEDED (6000).
- Code runs in feed()'s caller: a long sleep or `while 1:pass` blocks the owner's thread,
  and no Ctrl-C can reach it. CPython accepts syntax MicroPython 1.9 lacks (f-strings).

Not a sandbox: exec'd code is ordinary CPython and can reach the host through its object
graph. open() and os.* keep honest code inside the seat's directory; this is a test and
demo tool, never a security boundary. input(), help(), breakpoint() and exit() are removed
as they would talk to the host's own terminal.
"""

from __future__ import annotations

import builtins
import os
import stat
import struct
import time
import traceback as tb
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["VirtualRepl"]

CTRL_A, CTRL_B, CTRL_C, CTRL_D = 1, 2, 3, 4
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
FS_CHUNKS = 120
CHUNK_DATA = 126
NAME_MAX = 120
MEM_FREE = 9000  # see the module docstring: above flash.RAW_HEAP_NEEDED, like a bare board
TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap at 2**30
# Built-in exceptions MicroPython 1.9 knows: a CPython one prints as its nearest base here.
MP_EXCEPTIONS = frozenset({
    "BaseException", "ArithmeticError", "AssertionError", "AttributeError", "EOFError",
    "Exception", "GeneratorExit", "ImportError", "IndentationError", "IndexError",
    "KeyboardInterrupt", "KeyError", "LookupError", "MemoryError", "NameError",
    "NotImplementedError", "OSError", "OverflowError", "RuntimeError", "StopIteration",
    "SyntaxError", "SystemExit", "TypeError", "ValueError", "ZeroDivisionError",
})  # fmt: skip
MP_INDENT_MESSAGES = ("unexpected indent", "unindent does not match any outer indentation level")
SCRIPT_NAMES = {"main.py": "__main__"}  # the micro:bit runs main.py under this name
HOST_ONLY = ("input", "help", "breakpoint", "exit", "quit", "copyright", "credits", "license")


class _Uname(NamedTuple):
    sysname: str
    nodename: str
    release: str
    version: str
    machine: str

    def __repr__(self) -> str:  # MicroPython's attrtuple: no class name
        return "(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self, strict=True)) + ")"


UNAME = _Uname(
    "microbit",
    "microbit",
    "1.0.1",
    "micro:bit v1.0.1+b0bf4a9 on 2017-09-01; MicroPython v1.9.2-34-gd64154c73 on 2017-09-01",
    "virtual micro:bit (seatlink farm)",
)


class _HardReset(BaseException):
    """machine.reset(): unwinds the running code; the board is gone mid-exec."""


class _Module(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        # as MicroPython words it; os.stat in particular must fail as on the board
        raise AttributeError(f"'module' object has no attribute '{attr}'")


def _module(name: str, **attrs: object) -> types.ModuleType:
    mod = _Module(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


class _Mem32:
    """machine.mem32 of a micro:bit whose UICR nobody programmed: the words read as the port
    reads them, signed, so erased is -1 (what the board file and flash look at for a board
    id). A virtual board has no other memory to read."""

    UICR = range(0x10001000, 0x10001100)

    def __getitem__(self, address: int) -> int:
        if address in self.UICR and address % 4 == 0:
            return -1
        raise ValueError(f"virtual board: no memory to read at 0x{address:08x}")


def _uname() -> _Uname:
    return UNAME


def _const(value: object) -> object:
    return value


def _ticks_ms() -> int:
    return int(time.monotonic() * 1000) % TICKS_PERIOD


def _ticks_us() -> int:
    return int(time.monotonic() * 1_000_000) % TICKS_PERIOD


def _ticks_add(ticks: int, delta: int) -> int:
    return (ticks + delta) % TICKS_PERIOD


def _ticks_diff(end: int, start: int) -> int:
    half = TICKS_PERIOD // 2
    return (end - start + half) % TICKS_PERIOD - half


def _chunks(name: str, size: int) -> int:
    """Chunks a file takes: the first holds its header (end offset, name length, name), and
    a full last chunk gets the next allocated at once (measured at the boundary)."""
    return (2 + len(name.encode("utf-8")) + size) // CHUNK_DATA + 1


class VirtualRepl:
    """MicroPython 1.9.2's REPL on a micro:bit v1, as far as the friendly and raw REPL go, for a
    virtual seat: code sent to it runs under CPython, with os, machine, gc, utime, micropython
    and open() over the seat's filesystem directory `fs`. A test and demo tool, not a security
    boundary: see the module docstring."""

    BANNER = "MicroPython v1.9.2-34-gd64154c73 on 2017-09-01; micro:bit v1.0.1 with nRF51822"

    def __init__(
        self,
        *,
        fs: Path,
        uid: bytes,
        write: Callable[[bytes], None],
        reboot: Callable[[str], None],
    ) -> None:
        """`write`: bytes to the serial line; `reboot(kind)`: "soft" or "hard", called after
        the board's last words; the owner restarts the board, then calls banner() (no
        main.py, or it ended), traceback() (it raised) or feed() again."""
        self._fs = Path(fs)
        self._uid = bytes(uid)
        self._write = write
        self._reboot = reboot
        self._raw = False
        self._typed = bytearray()  # the raw REPL's code, or the friendly prompt's line
        self._resetting = False  # machine.reset() was called by the running code
        self._ns: dict[str, Any] = {}
        self._modules: dict[str, types.ModuleType] = {}
        self._fresh_heap()
        self._friendly = f'{self.BANNER}\r\nType "help()" for more information.\r\n>>> '.encode()

    @property
    def raw(self) -> bool:
        """In the raw REPL (also right after a soft reboot from it: the board stays there)."""
        return self._raw

    def reset(self) -> None:
        """The board restarted (power, reset, the owner's boot): a fresh heap and the friendly
        REPL. Writes nothing."""
        self._raw = False
        self._typed.clear()
        self._fresh_heap()

    def banner(self) -> None:
        """What the board prints on reaching its REPL (main.py ended or absent): the banner
        and ">>> ", or in the raw REPL the raw banner."""
        self._write(RAW_BANNER if self._raw else self._friendly)

    def traceback(self, exc: BaseException, *, at: str = "main.py") -> None:
        """`exc` raised while the board ran `at`, as MicroPython prints it, then the prompt.
        The host does not know the line in `at` itself: it is shown as line 1."""
        self._write(_traceback_text(exc, script=SCRIPT_NAMES.get(at, at)))
        self.banner()

    def feed(self, data: bytes) -> None:
        """Bytes arriving on the serial line."""
        for byte in data:
            if self._raw_byte(byte) if self._raw else self._friendly_byte(byte):
                return  # rebooted: bytes still arriving are lost, as on the board

    # --- the two REPLs ---------------------------------------------------------------------

    def _friendly_byte(self, byte: int) -> bool:
        if byte == CTRL_A:
            self._raw = True
            self._typed.clear()
            self._write(b"\r\n" + RAW_BANNER)
        elif byte == CTRL_B:
            self._typed.clear()
            self._write(b"\r\n" + self._friendly)
        elif byte in (CTRL_C, 0x0D):
            # Ctrl-C drops the line; Enter would run it on the board (not here, see above)
            self._typed.clear()
            self._write(b"\r\n>>> ")
        elif byte == CTRL_D:
            if not self._typed:  # readline ignores Ctrl-D on a line with text
                self._write(b"\r\nsoft reboot\r\n")
                return self._rebooted("soft")
        elif 0x20 <= byte <= 0x7E:  # readline echoes printable ASCII, ignores the rest
            self._typed.append(byte)
            self._write(bytes((byte,)))
        return False

    def _raw_byte(self, byte: int) -> bool:
        if byte == CTRL_A:
            self._typed.clear()
            self._write(RAW_BANNER)
        elif byte == CTRL_B:
            self._raw = False
            self._typed.clear()
            self._write(b"\r\n" + self._friendly)
        elif byte == CTRL_C:
            self._typed.clear()
        elif byte == CTRL_D:
            code = bytes(self._typed)
            self._typed.clear()
            self._write(b"OK")
            if not code:
                self._write(b"\r\nsoft reboot\r\n")
                return self._rebooted("soft")
            err = self._run(code)
            if err is None:
                self._raw = False  # a hard reset comes back in the friendly REPL
                return self._rebooted("hard")
            self._write(b"\x04" + err + b"\x04>")
        else:
            self._typed.append(byte)
        return False

    def _rebooted(self, kind: str) -> bool:
        self._typed.clear()
        self._fresh_heap()
        self._reboot(kind)
        return True

    # --- running code ----------------------------------------------------------------------

    def _run(self, code: bytes) -> bytes | None:
        """Run `code`, its output written as it goes; the traceback (b"" if none), or None
        when it called machine.reset()."""
        self._resetting = False
        try:
            # dont_inherit: this module's `from __future__` must not reach the board's code
            compiled = compile(code, "<stdin>", "exec", dont_inherit=True)
        except ValueError:  # a NUL byte in the source (CPython 3.11)
            return _traceback_text(SyntaxError("invalid syntax", ("<stdin>", 1, 1, "")))
        except Exception as exc:  # SyntaxError; RecursionError, MemoryError on deep nesting
            return _traceback_text(exc)
        try:
            exec(compiled, self._ns)
        except _HardReset:
            pass
        except SystemExit:  # the board ends the code silently
            pass
        except BaseException as exc:  # the code's own KeyboardInterrupt and the like too
            if not self._resetting:
                return _traceback_text(exc)
        return None if self._resetting else b""

    def _out(self, text: str) -> None:
        if not self._resetting:  # the board reset mid-exec: nothing more comes out
            self._write(text.replace("\n", "\r\n").encode("utf-8", "replace"))

    def _print(
        self, *args: object, sep: str | None = " ", end: str | None = "\n", file: Any = None
    ) -> None:
        text = (" " if sep is None else sep).join(map(str, args)) + ("\n" if end is None else end)
        if file is None:
            self._out(text)
        else:
            file.write(text)

    def _import(
        self,
        name: str,
        globals: object = None,
        locals: object = None,
        fromlist: object = (),
        level: int = 0,
    ) -> types.ModuleType:
        module = self._modules.get(name) if level == 0 else None
        if module is None:
            raise ImportError(f"no module named '{name}'")
        return module

    def _machine_reset(self) -> None:
        self._resetting = True
        raise _HardReset

    def _fresh_heap(self) -> None:
        utime = _module(
            "utime",
            sleep=time.sleep,
            sleep_ms=lambda ms: time.sleep(ms / 1000),
            sleep_us=lambda us: time.sleep(us / 1_000_000),
            ticks_ms=_ticks_ms,
            ticks_us=_ticks_us,
            ticks_add=_ticks_add,
            ticks_diff=_ticks_diff,
        )
        ustruct = _module("ustruct", pack=struct.pack, unpack=struct.unpack,
                          calcsize=struct.calcsize)  # fmt: skip
        self._modules = {
            "os": _module(
                "os", listdir=self._listdir, remove=self._remove, size=self._size, uname=_uname
            ),
            "machine": _module("machine", unique_id=lambda: self._uid, reset=self._machine_reset,
                               mem32=_Mem32()),  # fmt: skip
            "ustruct": ustruct,
            "struct": ustruct,  # the same module on the board
            "gc": _module("gc", collect=lambda: None, mem_free=lambda: MEM_FREE),
            "utime": utime,
            "time": utime,  # the same module on the board
            "micropython": _module("micropython", const=_const, kbd_intr=lambda char: None),
        }
        env = dict(vars(builtins))
        for name in HOST_ONLY:
            env.pop(name, None)
        env.update(print=self._print, open=self._open, __import__=self._import)
        self._ns = {"__builtins__": env, "__name__": "__main__"}

    # --- the filesystem --------------------------------------------------------------------

    def _path(self, name: object) -> Path:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str):
            raise TypeError(f"can't convert '{type(name).__name__}' object to str implicitly")
        if len(name.encode("utf-8")) > NAME_MAX:
            raise OSError("file not found")
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise OSError(f"virtual board: {name!r} is not a plain file name in its directory")
        return self._fs / name

    def _is_file(self, path: Path) -> bool:
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)  # no symlinks: stay in the directory
        except OSError:
            return False

    def _existing(self, name: object) -> Path:
        path = self._path(name)
        if not self._is_file(path):
            raise OSError("file not found")
        return path

    def _listdir(self) -> list[str]:
        return sorted(p.name for p in self._fs.iterdir() if self._is_file(p))

    def _remove(self, name: object) -> None:
        self._existing(name).unlink()

    def _size(self, name: object) -> int:
        return self._existing(name).stat().st_size

    def _used_chunks(self, *, but: str) -> int:
        files = [p for p in self._fs.iterdir() if p.name != but and self._is_file(p)]
        return sum(_chunks(p.name, p.stat().st_size) for p in files)

    def _open(self, name: object, mode: str = "r", /) -> _BoardFile:
        if mode not in ("r", "rb", "rt", "w", "wb", "wt"):
            raise ValueError("illegal mode")
        binary = mode.endswith("b")
        if mode[0] == "r":
            return _BoardFile(self, self._existing(name), writing=False, binary=binary)
        path = self._path(name)
        if os.path.lexists(path) and not self._is_file(path):
            raise OSError("file not found")
        if self._is_file(path):
            path.unlink()  # the board frees the old file before it looks for space
        if self._used_chunks(but=path.name) + _chunks(path.name, 0) > FS_CHUNKS:
            raise OSError("no more storage space")
        path.write_bytes(b"")
        return _BoardFile(self, path, writing=True, binary=binary)

    def _room(self, path: Path, size: int) -> bool:
        return self._used_chunks(but=path.name) + _chunks(path.name, size) <= FS_CHUNKS


class _BoardFile:
    """A file as the micro:bit's open() gives it. Reads and writes go straight to the host
    file, which stays closed in between: a reboot just drops these objects."""

    def __init__(self, repl: VirtualRepl, path: Path, *, writing: bool, binary: bool) -> None:
        self._repl, self._path, self._writing, self._binary = repl, path, writing, binary
        self._pos = 0
        self._open = True
        self._lost = False  # the filesystem filled up: the board dropped this file

    def name(self) -> str:  # a method on the board, not an attribute
        return self._path.name

    def writable(self) -> bool:
        return self._writing

    def _check(self, *, writing: bool) -> None:
        if not self._open:
            raise ValueError("I/O operation on closed file")
        if writing != self._writing:
            raise OSError(9)  # EBADF, printed as "OSError: 9"

    def _take(self, size: int, *, line: bool) -> bytes:
        self._check(writing=False)
        try:
            with self._path.open("rb") as f:
                f.seek(self._pos)
                data = f.readline(size) if line else f.read(size)
        except OSError:
            data = b""  # removed while open: reads as the end
        self._pos += len(data)
        return data

    def _give(self, data: bytes) -> bytes | str:
        return data if self._binary else data.decode("utf-8", "replace")

    def read(self, size: int = -1) -> bytes | str:
        return self._give(self._take(size, line=False))

    def readline(self, size: int = -1) -> bytes | str:
        return self._give(self._take(size, line=True))

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self._take(len(buf), line=False)
        buf[: len(data)] = data
        return len(data)

    def write(self, data: object) -> int:
        self._check(writing=True)
        if isinstance(data, str):
            raw = data.encode("utf-8")
        elif isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
        else:
            raise TypeError("object with buffer protocol required")
        if self._lost:
            raise OSError(28)
        size = self._path.stat().st_size if self._repl._is_file(self._path) else 0
        if not self._repl._room(self._path, size + len(raw)):
            self._lost = True
            self._path.unlink(missing_ok=True)
            raise OSError(28)  # ENOSPC, printed as "OSError: 28"
        with self._path.open("ab") as f:
            f.write(raw)
        return len(raw)

    def close(self) -> None:
        self._open = False

    def __enter__(self) -> _BoardFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _board_code(filename: str) -> bool:
    """Frames of code compiled from strings or board files ("<stdin>", "<string>", main.py,
    the farm's "<firmware ...>/x.py"); not this host's modules, which have a directory."""
    if filename.startswith("<"):
        return not filename.startswith("<frozen")
    return "/" not in filename and "\\" not in filename


def _exception_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        if isinstance(exc, IndentationError) and exc.msg in MP_INDENT_MESSAGES:
            return f"IndentationError: {exc.msg}"
        return "SyntaxError: invalid syntax"  # MicroPython 1.9 never says more
    cls = type(exc)
    name = cls.__name__
    if cls.__module__ == "builtins":  # FileNotFoundError -> OSError, RecursionError -> ...
        name = next((c.__name__ for c in cls.__mro__ if c.__name__ in MP_EXCEPTIONS), "Exception")
    try:
        # MicroPython prints the args, never CPython's own str(): OSError(2, 'x') is
        # "(2, 'x')", KeyError('a') is "a"
        args = exc.args
        text = "" if not args else str(args[0]) if len(args) == 1 else repr(args)
    except Exception:
        text = "?"
    return f"{name}: {text}"


def _traceback_text(exc: BaseException, *, script: str | None = None) -> bytes:
    lines = ["Traceback (most recent call last):"]
    frames = []
    for frame, line in tb.walk_tb(exc.__traceback__):
        file = frame.f_code.co_filename
        if _board_code(file):
            frames.append((SCRIPT_NAMES.get(file, file), line, frame.f_code.co_name))
    if script is not None and (not frames or frames[0][0] != script):
        lines.append(f'  File "{script}", line 1, in <module>')
    lines += [f'  File "{file}", line {line}, in {where}' for file, line, where in frames]
    if isinstance(exc, SyntaxError):
        lines.append(f'  File "{exc.filename or "<stdin>"}", line {exc.lineno or 1}')
    lines.append(_exception_line(exc))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")
