"""Run the seat firmware under CPython: many isolated seats in one process, on a fake clock.

The firmware is written as MicroPython modules that import each other by bare name
(`import seat`, `from tx import L`) and keep their state in module globals. Loading it
with the normal import system would give one seat per process, so `load_firmware`
executes every module's source in its own `types.ModuleType` whose `__builtins__` carry
an `__import__` that resolves firmware names and `board` to this instance's objects. No
firmware module ever enters `sys.modules`, so any number of seats can live side by side.

By default the code executed is exactly what a micro:bit gets (`link_bundle()`: constants
inlined, modules merged into a few files, names shortened, minified), so the tests exercise
the bytes on the board. Tests still reach into it by the names of firmware/ (`fw.tx.L`,
`fw.module("seat").S`): a linked instance translates them through the bundle's symbol map.

`FakeBoard` implements the board interface (see boards/microbit.py) with a fake clock that
advances only in `sleep`, and `SeatSim` runs `loop.run()` in a thread that may only
consume fake time the test grants with `advance(ms)`: tests are deterministic and every
wait has a timeout, so a broken firmware fails a test instead of hanging it.
"""

from __future__ import annotations

import builtins
import hashlib
import linecache
import os
import shutil
import tempfile
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from gateway.bundle import link_bundle, read_firmware_sources
from gateway.linker import Symbol

__all__ = [
    "FakeBoard",
    "FirmwareInstance",
    "GcStub",
    "SeatSim",
    "SeatStopped",
    "SimError",
    "SimTimeout",
    "TICKS_PERIOD",
    "load_firmware",
]

# MicroPython's ticks_ms() wraps at 2**30 on every port we ship (MICROPY_PY_UTIME_TICKS_PERIOD),
# and board.diff() is ticks_diff(): the fake clock wraps the same way so wrap bugs show here.
TICKS_PERIOD = 1 << 30
# Modules on the board that are not firmware: never part of an instance.
_NOT_LOADED = ("board.py", "main.py")
# How long any wait on the loop thread may take in real time before we call it a hang.
DEFAULT_TIMEOUT_S = 10.0
# Code objects by content-keyed file name: immutable, so every seat of one firmware shares them.
_COMPILED: dict[str, types.CodeType] = {}


class SeatStopped(BaseException):
    """Raised inside FakeBoard.sleep to end loop.run(); the loop catches only Exception."""


class SimTimeout(BaseException):
    """A wait between the test and the loop thread took longer than its timeout.

    A BaseException, so that raised in the loop thread the firmware cannot swallow it.
    """


class SimError(RuntimeError):
    """The loop thread died: the firmware, a pass hook or the board raised."""


class LinkedModule:
    """A firmware/ module inside a linked instance, by its readable names: `tx.L` reads the
    short global the linker gave it in whichever on-board file holds it."""

    def __init__(self, inst: FirmwareInstance, name: str) -> None:
        object.__setattr__(self, "_inst", inst)
        object.__setattr__(self, "_name", name)

    def _where(self, attr: str) -> tuple[types.ModuleType, str]:
        inst: FirmwareInstance = object.__getattribute__(self, "_inst")
        name: str = object.__getattribute__(self, "_name")
        sym: Symbol | None = inst.symbols.get(name, {}).get(attr)
        if sym is not None:
            return inst.modules[sym.file], sym.short
        return inst.modules[inst.file_of[name]], attr  # an import such as gc or board

    def __getattr__(self, attr: str) -> Any:
        module, short = self._where(attr)
        return getattr(module, short)

    def __setattr__(self, attr: str, value: object) -> None:
        module, short = self._where(attr)
        setattr(module, short, value)


@dataclass
class FirmwareInstance:
    """One seat's firmware: its own module objects, sharing nothing with other seats.

    `modules` holds what was loaded (on-board files when linked); `module(name)` and
    `fw.<name>` give a firmware/ module by its readable name either way."""

    board: object
    bundled: bool
    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    symbols: dict[str, dict[str, Symbol]] = field(default_factory=dict)
    file_of: dict[str, str] = field(default_factory=dict)

    def module(self, name: str) -> Any:
        if name in self.file_of:
            return LinkedModule(self, name)
        return self.modules[name]

    def __getattr__(self, name: str) -> Any:
        # fw.seat, fw.tx ...: short for fw.module(...) in tests
        if name in self.__dict__.get("file_of", {}) or name in self.__dict__.get("modules", {}):
            return self.module(name)
        raise AttributeError(name)

    def run(self) -> None:
        """The firmware's main loop, as main.py starts it (main.py itself only waits
        300 ms for Ctrl-C on a board and is not loaded here)."""
        self.module("loop").run()


def _module_name(file_name: str) -> str:
    return file_name.removesuffix(".py")


def firmware_sources(*, bundled: bool = True, target: str = "microbit") -> dict[str, str]:
    """Module name -> source text of every module an instance loads: the on-board files of
    the linked bundle, or the readable modules of firmware/.

    `target` names the board whose bundle is used: constants are inlined across all
    bundled files, the board file included, so the bytes depend on it.
    """
    if bundled:
        return link_bundle(board=target).module_sources()
    return {_module_name(name): text for name, text in read_firmware_sources(target).items()
            if name not in _NOT_LOADED}


def load_firmware(
    *,
    board: object,
    bundled: bool = True,
    target: str = "microbit",
    extra_modules: Mapping[str, object] | None = None,
    sources: Mapping[str, str] | None = None,
) -> FirmwareInstance:
    """Execute every firmware module for one seat, importing `board` as the given object.

    bundled: run the exact bytes `firmware_bundle(board=target)` installs on a board;
        False: the readable source in firmware/.
    extra_modules: names that resolve to the given objects instead of real imports
        (e.g. a cheaper `gc` for long simulations).
    sources: module name -> source, instead of the bundle (for tests of the loader).
    """
    linked = None
    if sources is None:
        if bundled:
            linked = link_bundle(board=target)
            sources = linked.module_sources()
        else:
            sources = firmware_sources(bundled=False, target=target)
    srcs = dict(sources)
    inst = FirmwareInstance(board=board, bundled=bundled, sources=srcs)
    if linked is not None:
        inst.symbols = linked.symbols
        inst.file_of = linked.file_of
    overrides: dict[str, object] = {"board": board, **(extra_modules or {})}
    fw_builtins = dict(vars(builtins))
    kind = "bundled" if bundled else "source"

    def load(name: str) -> types.ModuleType:
        mod = inst.modules.get(name)
        if mod is not None:
            return mod  # loaded, or loading: a cyclic import sees the partial module as usual
        mod = types.ModuleType(name)
        text = srcs[name]
        # Tracebacks from firmware code show its lines although no such file exists; keyed
        # by content, so a thousand seats of the same firmware share one cache entry.
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        filename = f"<firmware {kind} {digest}>/{name}.py"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        mod.__dict__["__builtins__"] = fw_builtins
        mod.__file__ = filename
        inst.modules[name] = mod
        code = _COMPILED.get(filename)
        if code is None:
            code = _COMPILED[filename] = compile(text, filename, "exec")
        try:
            exec(code, mod.__dict__)
        except BaseException:
            del inst.modules[name]
            raise
        return mod

    def fw_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> object:
        if level == 0:
            if name in overrides:
                return overrides[name]
            if name in srcs:
                return load(name)
        return builtins.__import__(name, globals, locals, fromlist or (), level)

    fw_builtins["__import__"] = fw_import
    # main.py's import chain starts at loop; load the rest too in case one is not reached.
    for name in ["loop", *sorted(srcs)]:
        if name in srcs:
            load(name)
    return inst


class _Clock:
    """Fake milliseconds, granted by the test and consumed by the loop thread in sleep()."""

    def __init__(self, *, start_ms: int, timeout_s: float) -> None:
        self.ms = start_ms
        self.timeout_s = timeout_s
        self.cv = threading.Condition()
        self.budget = 0  # granted, not yet slept
        self.want = 0  # what the blocked sleeper asks for; 0 when not blocked
        self.stopping = False
        self.finished = False

    def sleep(self, ms: int) -> None:
        with self.cv:
            while self.budget < ms and not self.stopping:
                self.want = ms
                self.cv.notify_all()
                if not self.cv.wait(self.timeout_s):
                    self.want = 0
                    raise SimTimeout(f"sleep({ms}) waited {self.timeout_s} s for advance()")
            self.want = 0
            if self.stopping:
                raise SeatStopped()
            self.budget -= ms
            self.ms += ms

    def quiescent(self) -> bool:
        # the sleeper cannot go on with what it has, or the loop is over
        return self.finished or (self.want > 0 and self.budget < self.want)

    def grant_and_wait(self, ms: int) -> None:
        with self.cv:
            self.budget += ms
            self.cv.notify_all()
            if not self.cv.wait_for(self.quiescent, self.timeout_s):
                raise SimTimeout(f"loop did not reach its next sleep within {self.timeout_s} s")

    def wait_quiescent(self) -> None:
        with self.cv:
            if not self.cv.wait_for(self.quiescent, self.timeout_s):
                raise SimTimeout(f"loop did not reach its first sleep within {self.timeout_s} s")

    def stop(self) -> None:
        with self.cv:
            self.stopping = True
            self.cv.notify_all()

    def finish(self) -> None:
        with self.cv:
            self.finished = True
            self.cv.notify_all()


PassHook = Callable[["FakeBoard"], None]


class GcStub:
    """Stands in for `gc` in simulated seats: the firmware calls gc.collect() at boot and
    for every heartbeat, which under CPython changes nothing the firmware can see but walks
    the whole process heap (~13 ms inside a pytest run, so minutes of fake time cost seconds
    of real time). It counts the calls instead."""

    def __init__(self) -> None:
        self.collects = 0

    def collect(self) -> None:
        self.collects += 1

    def mem_free(self) -> int:
        return 6144

    def mem_alloc(self) -> int:
        return 2048


class FakeBoard:
    """The board interface of boards/*.py, in memory, on a fake millisecond clock.

    Inputs: set `levels` (bit0 HANGER: 1 = the headset rests on it, bit1 READY, bit2 WRAP,
    bit3 HELP, bit4 ANSWER: 1 = pressed) or use press()/release(). A new board's headset is
    on its hanger (`levels` 1). Light: `lights` holds (ms, rgb) for every light() call. Serial:
    feed() bytes for read(), `frames` holds (ms, bytes) for every write() and `tx` all of
    them. Files go under a temporary directory (STORE); close() removes it.
    """

    PINS: dict[str, int] = {
        "hanger": 0, "ready": 1, "wrap": 2, "help": 8, "answer": 12,
        "red": 13, "green": 14, "blue": 15,
    }  # fmt: skip

    def __init__(
        self,
        *,
        name: bytes = b"fake",
        uid: bytes = bytes.fromhex("5eed00c0ffee0001"),
        start_ms: int = 0,
        mem_free: int = 6144,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        store_dir: str | None = None,
        boot0: int = 0,
    ) -> None:
        self.NAME = name
        self.UID = uid
        self.BOOT0 = boot0  # the count a board with none kept starts from (boards/*.py)
        self._own_dir = store_dir is None
        self.store_dir = store_dir if store_dir is not None else tempfile.mkdtemp(prefix="seat-")
        self.STORE = os.path.join(self.store_dir, "")
        self.clock = _Clock(start_ms=start_ms, timeout_s=timeout_s)
        self.levels = 1  # the headset on its hanger, nothing pressed
        self.lights: list[tuple[int, int]] = []
        self.frames: list[tuple[int, bytes]] = []
        self.tx = bytearray()
        self.kbd_calls: list[int] = []
        self.resets = 0
        self.mem_free = mem_free
        self.passes = 0
        self.pass_hook: PassHook | None = None
        self._rx = bytearray()
        self._rx_lock = threading.Lock()

    # --- the board interface -----------------------------------------------------------
    @property
    def ms(self) -> int:
        """Fake milliseconds since the clock's epoch, unwrapped."""
        return self.clock.ms

    def now(self) -> int:
        return self.clock.ms % TICKS_PERIOD

    def diff(self, a: int, b: int) -> int:
        # utime.ticks_diff: the signed distance on the wrapping ticks circle
        half = TICKS_PERIOD // 2
        return ((a - b + half) % TICKS_PERIOD) - half

    def sleep(self, ms: int) -> None:
        # The end of a loop pass: the hook sees the state the pass left, then time moves.
        self.passes += 1
        if self.pass_hook is not None:
            self.pass_hook(self)
        self.clock.sleep(ms)

    def reset(self) -> None:
        self.resets += 1

    def mem(self) -> int:
        return self.mem_free

    def kbd(self, x: int) -> None:
        self.kbd_calls.append(x)

    def inputs(self) -> int:
        return self.levels

    def light(self, rgb: int) -> None:
        self.lights.append((self.clock.ms, rgb))

    def read(self, buf: bytearray) -> int | None:
        with self._rx_lock:
            n = min(len(buf), len(self._rx))
            if not n:
                return None
            buf[:n] = self._rx[:n]
            del self._rx[:n]
        return n

    def write(self, buf: bytes | bytearray, n: int) -> None:
        data = bytes(buf[:n])
        self.tx += data
        if data.strip():  # the line break a boot starts with is not a frame
            self.frames.append((self.clock.ms, data))

    # --- for tests ---------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes the host sends; read() hands them out len(buf) at a time."""
        with self._rx_lock:
            self._rx += data

    @property
    def rx_pending(self) -> int:
        with self._rx_lock:
            return len(self._rx)

    def press(self, bits: int) -> None:
        self.levels |= bits

    def release(self, bits: int) -> None:
        self.levels &= ~bits

    @property
    def current_light(self) -> int | None:
        return self.lights[-1][1] if self.lights else None

    def light_at(self, ms: int) -> int | None:
        """The light's colour at fake time ms (the last light() call at or before it)."""
        c: int | None = None
        for t, rgb in self.lights:
            if t > ms:
                break
            c = rgb
        return c

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)


class SeatSim:
    """One seat's firmware running loop.run() in a thread, on a FakeBoard's fake clock.

    The loop thread runs only on fake time the test grants: `advance(ms)` returns once the
    loop has run every pass in those ms and is blocked in its next sleep, so between calls
    the test may read and change anything without races.
    """

    def __init__(
        self,
        *,
        board: FakeBoard | None = None,
        bundled: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        real_gc: bool = False,
        extra_modules: Mapping[str, object] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        """real_gc: let the firmware's gc.collect() run for real (slow: see GcStub)."""
        self.gc = GcStub()
        modules: dict[str, object] = {} if real_gc else {"gc": self.gc}
        modules.update(extra_modules or {})
        self.board = board if board is not None else FakeBoard(timeout_s=timeout_s)
        if self.board.clock.stopping or self.board.clock.finished:
            raise RuntimeError("this FakeBoard's clock has stopped: give each boot a new board")
        self.board.clock.timeout_s = timeout_s
        self.timeout_s = timeout_s
        self.fw = load_firmware(
            board=self.board, bundled=bundled, extra_modules=modules, sources=sources
        )
        self.start_ms = self.board.ms
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> SeatSim:
        """Boot: runs until the loop's first sleep (the first pass runs at fake time 0)."""
        if self._thread is not None:
            raise RuntimeError("SeatSim already started")
        self._thread = threading.Thread(target=self._main, name="seat-loop", daemon=True)
        self._thread.start()
        self.board.clock.wait_quiescent()
        self._check()
        return self

    def _main(self) -> None:
        try:
            self.fw.run()
        except SeatStopped:
            pass
        except BaseException as e:  # reported to the test thread by _check()
            self.error = e
        finally:
            self.board.clock.finish()

    def advance(self, ms: int) -> None:
        """Let fake time move on by ms: exactly the loop passes that fit in it run."""
        if ms < 0:
            raise ValueError("time runs forward only")
        if self._thread is None:
            raise RuntimeError("SeatSim not started")
        self._check()
        self.board.clock.grant_and_wait(ms)
        self._check()

    def advance_until(self, done: Callable[[], bool], *, max_ms: int, step_ms: int = 5) -> int:
        """Advance step_ms at a time until done() holds; fake ms advanced. Raises
        AssertionError when max_ms pass first."""
        waited = 0
        while not done():
            if waited >= max_ms:
                raise AssertionError(f"condition not met within {max_ms} ms of fake time")
            self.advance(step_ms)
            waited += step_ms
        return waited

    def stop(self) -> None:
        """End the loop thread (sleep raises SeatStopped); idempotent."""
        t = self._thread
        if t is None:
            return
        self.board.clock.stop()
        t.join(self.timeout_s)
        if t.is_alive():
            raise SimTimeout(f"loop thread did not stop within {self.timeout_s} s")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.board.close()

    def __enter__(self) -> SeatSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> None:
        if self.error is not None:
            raise SimError(f"seat loop died: {self.error!r}") from self.error

    # --- state -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.board.clock.finished

    @property
    def elapsed(self) -> int:
        """Fake ms since boot."""
        return self.board.ms - self.start_ms

    @property
    def S(self) -> list[int]:
        return cast(list[int], self.fw.module("seat").S)

    @property
    def L(self) -> list[int]:
        return cast(list[int], self.fw.module("tx").L)

    @property
    def V(self) -> list[int]:
        return cast(list[int], self.fw.module("cfg").V)

    def attr(self, module: str, name: str) -> Any:
        return getattr(self.fw.module(module), name)
