"""A farm of virtual seats: hundreds of real firmware bundles in one process, each on a
serial link of its own (a TCP port for pyserial's socket://, or a pseudo-terminal), for load
tests and the demo without QEMU.

    with SeatFarm(256, load_hz=10) as farm:
        for seat in farm.seats:
            print(seat.uid, seat.url)      # 5EA70001 socket://127.0.0.1:40123 ...

Every seat runs the exact bundle a micro:bit gets (as gateway.virtual_seat does), on host
time. Only the way its main loop is driven differs: a thread per seat (VirtualSeat) costs
about 1.5 cores for 256 idle seats, almost all of it in thread wake-ups and GIL hand-overs,
while one pass of the loop itself takes a few microseconds. So the loop function of the
bundle is compiled once more with its `board.sleep(ms)` turned into `yield ms` (nothing
else changes), and one scheduler thread steps every seat's generator every `pass_ms`,
seats spread over the period in 1 ms slots. The firmware measures every pass with
board.now(), so a late pass is a longer dt, as on a busy board.

The serial line behaves like a cable: while nobody is connected the seat's output is
discarded (the firmware runs on and keeps resending its unacked queue); a gateway that
connects again finds the same firmware instance, mid-stream; a new connection replaces the
old one. Output that does not fit the kernel's buffer (a gateway that stopped reading) is
discarded too, like a UART overrun: the line may then show a cut frame, which the host
counts as garbage. Each seat's cable can be pulled and put back (unplug, replug: same url)
and its line made noisy (set_noise: bit flips per byte, per direction) while the farm runs.

Every seat is a board with a filesystem (its store directory) holding the firmware as a
micro:bit's does: the farm writes this checkout's micro:bit set there at start, as if the
board had been flashed, and each boot loads the parts fw0, fw1, ... from it as main.py does
(main.py itself is not run: it only loads the parts, and a board needs one to boot). A seat
whose firmware left its loop (a Z frame), failed to load or is missing serves MicroPython's
REPL on its link (gateway.virtual_repl), so `seatlink flash` and the gateway's remote update
write and check its files exactly as on a board, and a reset boots what they wrote.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import random
import re
import select
import socket
import tempfile
import threading
import time
import tty
import types
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.bundle import FIRMWARE_DIR, PART_PREFIX, constants, firmware_bundle, link_bundle
from gateway.firmware_host import FirmwareInstance, GcStub, load_firmware
from gateway.linker import NAMESPACE
from gateway.rig.link_faults import TO_GATEWAY, TO_SEAT, flip_bits
from gateway.rig.thread_calls import ThreadCalls
from gateway.seatlink.codec import SettingKey
from gateway.virtual_repl import VirtualRepl
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_HELP, IN_READY, IN_WRAP, RealtimeBoard

__all__ = ["TO_GATEWAY", "TO_SEAT", "FarmBoard", "FarmSeat", "SeatFarm", "SeatStatus",
           "TraceKey", "firmware_stepper"]

# firmware/tx.py: the index in L of the frames a full queue dropped
_TX_DROP = constants({"tx.py": (FIRMWARE_DIR / "tx.py").read_text()})["DROP"]
_INPUTS = frozenset({IN_HANGER, IN_READY, IN_WRAP, IN_HELP, IN_ANSWER})
_RELIABLE_KINDS = frozenset(b"BSEX")
_HELLO = ord("B")
_SLOT_S = 0.001  # seats are spread over the pass period in slots of this length
_PTY_CHECK_S = 0.02  # how often unconnected pseudo-terminals are checked for a reader
_TRACE_TAIL_MAX = 256  # a partial line longer than any frame is not a frame: forget it
_CTRL_C_WINDOW_S = 0.3  # main.py sleeps this long before loading: Ctrl-C lands in the REPL
_MAIN_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(\)\s*")  # the last part: the main loop

TraceKey = tuple[str, int, int]
"""(uid, boot, seq) of a reliable seat frame."""

_T = TypeVar("_T")
_Handler = Callable[[int], None]


class _NoFirmware(Exception):
    """No main.py on the board: MicroPython boots to its REPL."""


# --- the firmware's loop as a generator ------------------------------------------------------

_STEPPERS: dict[tuple[str, str], types.CodeType] = {}


class _SleepToYield(ast.NodeTransformer):
    def __init__(self, board_names: set[str]) -> None:
        self.board_names = board_names
        self.found = 0

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr == "sleep" and isinstance(f.value, ast.Name)
                and f.value.id in self.board_names and len(node.args) == 1
                and not node.keywords):  # fmt: skip
            self.found += 1
            return ast.copy_location(ast.Yield(value=node.args[0]), node)
        return node


def firmware_stepper(fw: FirmwareInstance, *,
                     loop: str | None = None) -> Generator[int, None, None]:
    """The firmware's main loop (loop.run) as a generator: each next() runs one pass, up to
    the board.sleep(ms) that ends it, and returns ms. The first next() boots the seat.

    The loop's code object is compiled from the instance's own source, so it runs with the
    instance's globals: the same code as loop.run but for the sleep, shared by all seats.
    `loop`: the loop function's name in a linked instance (default: from its symbol map).
    """
    if loop is not None:
        module_name, function_name = NAMESPACE, loop
    elif fw.file_of:
        sym = fw.symbols["loop"]["run"]
        module_name, function_name = sym.file, sym.short
    else:
        module_name, function_name = "loop", "run"
    module = fw.modules[module_name]
    filename = str(module.__file__)
    key = (filename, function_name)
    code = _STEPPERS.get(key)
    if code is None:
        tree = ast.parse(fw.sources[module_name], filename=filename)
        defs = [n for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.name == function_name]
        if len(defs) != 1:
            raise RuntimeError(f"firmware: no single {function_name}() in {module_name}")
        names = {n for n, v in vars(module).items() if v is fw.board}
        transformer = _SleepToYield(names)
        fn = transformer.visit(defs[0])
        if not transformer.found:
            raise RuntimeError("firmware: the main loop never calls board.sleep(ms), so it "
                               "cannot be stepped")  # fmt: skip
        code = compile(ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[])),
                       filename, "exec")  # fmt: skip
        _STEPPERS[key] = code
    namespace: dict[str, Any] = {}
    exec(code, vars(module), namespace)  # defines the function, with the module's globals
    gen: Generator[int, None, None] = namespace[function_name]()
    return gen


# --- serial links ----------------------------------------------------------------------------


class _Poller:
    """The scheduler's epoll, with a handler per file descriptor."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, _Handler] = {}

    def register(self, fd: int, mask: int, handler: _Handler) -> None:
        self.epoll.register(fd, mask)
        self.handlers[fd] = handler

    def unregister(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.epoll.unregister(fd)
            except (OSError, ValueError):
                pass  # closed already: the kernel dropped it from the set

    def close(self) -> None:
        self.handlers.clear()
        self.epoll.close()


# Edge-triggered: a seat reads at most 16 bytes a pass, so input may wait for several passes;
# level-triggered readiness would wake the scheduler again and again meanwhile.
_CONN_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET


class _Link:
    """One seat's end of its serial line, with a cable that can be pulled and line noise.
    Used from the scheduler thread only.

    noise: per direction (TO_SEAT: what the seat reads, TO_GATEWAY: what it writes), the
    probability per byte of one random bit flipped, as gateway.rig.link_faults.FaultyLink
    does; corrupted: the bytes so damaged on their way (delivered ones only)."""

    url: str

    def __init__(self, name: str) -> None:
        self.rx_ready = False  # input may be waiting (edge-triggered readiness)
        self.connections = 0  # readers that came, the current one included
        self.rx_bytes = 0
        self.tx_bytes = 0  # delivered to a reader
        self.discarded = 0  # written while nobody read, or past a full buffer
        self.plugged = True
        self.noise = {TO_SEAT: 0.0, TO_GATEWAY: 0.0}
        self.corrupted = {TO_SEAT: 0, TO_GATEWAY: 0}
        # a generator per direction and seat: a given byte stream is damaged the same way
        self._rng = {d: random.Random(f"{name}/{d}") for d in (TO_SEAT, TO_GATEWAY)}

    @property
    def connected(self) -> bool:
        """A reader is on the line and the cable is in: bytes pass."""
        raise NotImplementedError

    def read(self, buf: bytearray) -> int | None:
        n = self._read(buf)
        if n and self.noise[TO_SEAT]:
            self.corrupted[TO_SEAT] += len(flip_bits(memoryview(buf)[:n], self.noise[TO_SEAT],
                                                     self._rng[TO_SEAT]))  # fmt: skip
        return n

    def write(self, data: bytes) -> None:
        hit: list[int] = []
        if self.noise[TO_GATEWAY] and self.connected:
            damaged = bytearray(data)
            hit = flip_bits(damaged, self.noise[TO_GATEWAY], self._rng[TO_GATEWAY])
            data = bytes(damaged)
        sent = self._write(data) if self.connected else 0
        if hit:
            self.corrupted[TO_GATEWAY] += sum(1 for i in hit if i < sent)
        self.tx_bytes += sent
        self.discarded += len(data) - sent

    def unplug(self) -> None:
        """Pull the cable: the host's side sees it (see the subclasses), the seat's output
        goes nowhere and nothing comes in until replug()."""
        raise NotImplementedError

    def replug(self) -> None:
        """Plug it back in, on the same url. Raises OSError if that cannot be done (the link
        then stays unplugged)."""
        raise NotImplementedError

    def _read(self, buf: bytearray) -> int | None:
        raise NotImplementedError

    def _write(self, data: bytes) -> int:
        """Bytes of data sent (called while connected)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TcpLink(_Link):
    """A listening socket taking one connection at a time, the newest. Unplugged, it closes
    the connection (the host reads EOF) and the listening socket (connections are refused)
    until replugged on the same port."""

    def __init__(self, host: str, poller: _Poller, name: str) -> None:
        super().__init__(name)
        self._poller = poller
        self.host = host
        self.listener: socket.socket | None = None
        self._listen(0)
        assert self.listener is not None
        self.port: int = self.listener.getsockname()[1]
        self.url = f"socket://{host}:{self.port}"
        self.conn: socket.socket | None = None

    def _listen(self, port: int) -> None:
        # create_server sets SO_REUSEADDR: the port is free again at once after unplug()
        listener = socket.create_server((self.host, port), backlog=4)
        listener.setblocking(False)
        self.listener = listener
        self._poller.register(listener.fileno(), select.EPOLLIN, self._accept)

    @property
    def connected(self) -> bool:
        return self.conn is not None

    def unplug(self) -> None:
        self.plugged = False
        self._drop()
        listener, self.listener = self.listener, None
        if listener is not None:
            self._poller.unregister(listener.fileno())
            listener.close()

    def replug(self) -> None:
        if self.listener is None:
            self._listen(self.port)
        self.plugged = True

    def _accept(self, events: int) -> None:
        if self.listener is None:
            return
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        self._drop()
        conn.setblocking(False)
        # frames are small and latency is what the trace measures: no Nagle delay
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        self.connections += 1
        self.rx_ready = True
        self._poller.register(conn.fileno(), _CONN_EVENTS, self._readable)

    def _readable(self, events: int) -> None:
        self.rx_ready = True  # EOF and errors show up in read()

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        self.rx_ready = False
        if conn is not None:
            self._poller.unregister(conn.fileno())
            # unread input would turn the close into a reset: the host should read EOF
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            conn.close()

    def _read(self, buf: bytearray) -> int | None:
        conn = self.conn
        if conn is None or not self.rx_ready:
            return None
        try:
            n = conn.recv_into(buf)
        except BlockingIOError:
            self.rx_ready = False
            return None
        except OSError:
            self._drop()
            return None
        if n == 0:  # the gateway hung up
            self._drop()
            return None
        if n < len(buf):
            self.rx_ready = False
        self.rx_bytes += n
        return n

    def _write(self, data: bytes) -> int:
        conn = self.conn
        if conn is not None:
            try:
                return conn.send(data)
            except BlockingIOError:
                pass
            except OSError:
                self._drop()
        return 0

    def close(self) -> None:
        self.unplug()


class _PtyLink(_Link):
    """A pseudo-terminal, raw and without echo; the reader opens the slave by its path.

    Nobody holds the slave open on the farm's side, so "connected" is what the master sees:
    POLLHUP while no process has the slave open. Unconnected masters are checked every
    _PTY_CHECK_S (a hung-up master is always ready, so it cannot stay in the epoll set).

    Unplugged, the device stays (as a USB-serial adapter whose cable to the board was
    pulled): the host keeps it open, but nothing passes either way; what it writes is read
    and dropped."""

    def __init__(self, poller: _Poller, hung: select.poll, name: str) -> None:
        super().__init__(name)
        self._poller = poller
        self._hung = hung
        self.master, slave = os.openpty()
        try:
            tty.setraw(slave)  # termios settings belong to the terminal: they outlive this fd
            self.url = os.ttyname(slave)
        finally:
            os.close(slave)
        os.set_blocking(self.master, False)
        self._connected = False
        hung.register(self.master, select.POLLIN)

    @property
    def connected(self) -> bool:
        return self._connected and self.plugged

    @property
    def opened(self) -> bool:
        """A process has the slave open, cable in or not."""
        return self._connected

    def unplug(self) -> None:
        self.plugged = False

    def replug(self) -> None:
        self.plugged = True

    def reader_came(self) -> None:
        """The slave has a reader now (the scheduler's check found no hang-up)."""
        self._hung.unregister(self.master)
        self._connected = True
        self.connections += 1
        self.rx_ready = True
        self._poller.register(self.master, _CONN_EVENTS, self._event)

    def _event(self, events: int) -> None:
        if events & (select.EPOLLHUP | select.EPOLLERR):
            self._reader_gone()
        else:
            self.rx_ready = True

    def _reader_gone(self) -> None:
        if self._connected:
            self._connected = False
            self.rx_ready = False
            self._poller.unregister(self.master)
            self._hung.register(self.master, select.POLLIN)

    def _read(self, buf: bytearray) -> int | None:
        if not self._connected or not self.rx_ready:
            return None
        try:
            n = os.readv(self.master, [buf])
        except BlockingIOError:
            self.rx_ready = False
            return None
        except OSError:  # EIO: the last reader closed the slave
            self._reader_gone()
            return None
        if n < len(buf):
            self.rx_ready = False
        if not self.plugged:
            return None  # the cable is out: the host's bytes go nowhere
        self.rx_bytes += n
        return n or None

    def _write(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            pass
        except OSError:
            self._reader_gone()
        return 0

    def close(self) -> None:
        if self._connected:
            self._poller.unregister(self.master)
        else:
            self._hung.unregister(self.master)
        os.close(self.master)


# --- boards and seats ------------------------------------------------------------------------


class FarmBoard(RealtimeBoard):
    """RealtimeBoard on a farm link, with an optional trace of first writes.

    trace: (uid, boot, seq) -> time.time() of the first write of every reliable frame (B, S,
    E, X), resends left out. A frame is new when its seq is ahead of the newest one written
    since the last hello with a new boot counter, modulo the wrap as docs/protocol.md
    compares seqs (1..32767 ahead; a resend is behind or equal), so a seq reused after the
    wrap at 65535 is new again, and so is the snapshot that follows a queue overflow whose
    dropped frames were never written (a jump in seq). Written whole by the firmware, a
    frame costs one find and one int()."""

    def __init__(self, *, link: _Link, uid: bytes, store: Path,
                 trace: dict[TraceKey, float] | None = None,
                 name: bytes = RealtimeBoard.NAME) -> None:  # fmt: skip
        super().__init__(link=None, uid=uid, store=store)
        self.NAME = name  # the board name its hello sends
        self.uid = uid.hex().upper()
        self.serial = link
        self.trace = trace
        self._trace_boot = 0
        self._newest = 0
        self._tail = b""
        self._tail_t = 0.0

    def read(self, buf: bytearray) -> int | None:
        return self.serial.read(buf)

    def write(self, buf: bytes | bytearray, n: int) -> None:
        data = bytes(buf[:n])
        if self.trace is not None:
            self._trace_write(data)
        self.serial.write(data)

    def _trace_write(self, data: bytes) -> None:
        t = time.time()
        if not self._tail and data.find(b"\n") == len(data) - 1:
            self._note(data, t)  # the usual case: one whole frame
            return
        # a frame written in pieces was first written when its first piece was
        start = self._tail_t if self._tail else t
        lines = (self._tail + data).split(b"\n")
        tail = lines.pop()
        for line in lines:
            self._note(line, start)
            start = t
        self._tail = tail if len(tail) <= _TRACE_TAIL_MAX else b""
        self._tail_t = start

    def _note(self, line: bytes, t: float) -> None:
        sp = line.find(b" ")
        if sp < 1 or len(line) < sp + 2 or line[sp + 1] not in _RELIABLE_KINDS:
            return
        try:
            seq = int(line[:sp])
            if line[sp + 1] == _HELLO:  # "seq B protocol boot ...": a new boot starts a count
                boot = int(line[sp + 3:].split(b" ", 2)[1])
                if boot != self._trace_boot:
                    self._trace_boot, self._newest = boot, 0
        except (ValueError, IndexError):
            return
        if seq == 0 or (self._newest and not 0 < (seq - self._newest) % 65535 < 32768):
            return  # not a frame, or a resend
        self._newest = seq
        assert self.trace is not None
        self.trace[(self.uid, self._trace_boot, seq)] = t


class FarmSeat:
    """One seat of a farm: its uid (as the hello reports it), its link's url, its board
    (`board.bits` are the desk's inputs, gateway.virtual_seat's IN_*: bit 0 HANGER, 1 while
    the headset rests on it, as it does when the farm starts; the buttons READY 1, WRAP 2,
    HELP 3 and ANSWER 4, 1 while pressed) and counters.

    With a load generator running, the farm's thread flips bit 3 of board.bits: a test
    that sets other bits meanwhile may lose one of those flips (read-modify-write)."""

    def __init__(self, index: int, uid: bytes, link: _Link, store: Path,
                 trace: dict[TraceKey, float] | None,
                 board_name: bytes = RealtimeBoard.NAME) -> None:  # fmt: skip
        self.index = index
        self.uid = uid.hex().upper()
        self.url = link.url
        self.link = link
        self.store = store
        self.board = FarmBoard(link=link, uid=uid, store=store, trace=trace, name=board_name)
        self.boot = 0  # the boot counter of the running firmware (its hello's)
        self.boots = 0  # boots in this farm: 1 + resets
        self.firmware: FirmwareInstance | None = None
        self.error: BaseException | None = None
        self.exited = False  # the firmware took a Z and left its loop
        self.boot_failure: str | None = None  # why the files on it did not boot, if they did not
        self.repl = VirtualRepl(fs=store, uid=uid, write=link.write, reboot=self._reboot)
        self.reboot_at: float | None = None  # a reset from the REPL boots at this time
        self.pressed = 0  # HELP presses by the load generator: help events the seat made
        self.passes = 0
        self._gen: Generator[int, None, None] | None = None
        self._cfg: list[int] = []
        # load generator state
        self._next_press: float | None = None  # None: not pressing (paused, or no host yet)
        self._help_down = False
        self._pending = False  # HELP's last change is not surely taken by the firmware yet
        self._edge_t = -1e9  # start of the pass that took the last change
        self._prev_t = -1e9  # start of this seat's previous pass

    def _reboot(self, kind: str) -> None:
        # Called from the REPL while it runs code: the farm boots the seat after main.py's
        # Ctrl-C window, between passes. A soft reboot from the raw REPL stays there
        # without running main.py (MicroPython 1.9 does; mpremote exec relies on it).
        if kind == "soft" and self.repl.raw:
            self.repl.banner()
            return
        self.reboot_at = time.monotonic() + _CTRL_C_WINDOW_S

    @property
    def at_repl(self) -> bool:
        """No firmware runs: the link is the REPL's (a Z, a failed load, no main.py)."""
        return self._gen is None and self.reboot_at is None

    @property
    def connected(self) -> bool:
        """A gateway (or any reader) is on the link."""
        return self.link.connected

    @property
    def connections(self) -> int:
        return self.link.connections

    @property
    def discarded(self) -> int:
        """Bytes the firmware wrote that reached nobody."""
        return self.link.discarded

    @property
    def running(self) -> bool:
        return self._gen is not None

    @property
    def dropped(self) -> int:
        """Frames this boot's full queue dropped unacked (its health's seat_dropped_frames):
        the gateway did not ack for SIZE frames' time."""
        fw = self.firmware
        if fw is None:
            return 0
        return int(fw.module("tx").L[_TX_DROP])

    @property
    def plugged(self) -> bool:
        """The link's cable is in (SeatFarm.unplug, replug)."""
        return self.link.plugged

    @property
    def noise(self) -> dict[str, float]:
        """The link's noise per direction (SeatFarm.set_noise)."""
        return dict(self.link.noise)

    @property
    def corrupted(self) -> dict[str, int]:
        """Bytes the link's noise damaged, per direction (TO_SEAT, TO_GATEWAY)."""
        return dict(self.link.corrupted)

    @property
    def pressing(self) -> bool:
        """The load generator presses this seat (load on; with load_after_connect, once a
        host has connected)."""
        return self._next_press is not None

    def __repr__(self) -> str:
        return f"FarmSeat({self.index}, uid={self.uid}, url={self.url}, boot={self.boot})"


@dataclass(frozen=True)
class SeatStatus:
    """One seat at one moment (SeatFarm.status)."""

    index: int
    uid: str
    url: str
    boot: int  # the running firmware's boot counter
    running: bool  # the firmware runs (else the link serves the REPL)
    plugged: bool  # the link's cable is in
    connected: bool  # a host is on the link, cable in
    connections: int  # hosts that came
    noise: dict[str, float]  # per direction (TO_SEAT, TO_GATEWAY): bit flip probability
    corrupted: dict[str, int]  # per direction: bytes the noise damaged
    pressing: bool  # the load generator presses it
    pressed: int  # HELP presses so far
    dropped: int  # frames this boot's full queue dropped
    discarded: int  # bytes written that reached nobody
    inputs: int = IN_HANGER  # the desk's input bits (gateway.virtual_seat's IN_*)

    @property
    def on_hanger(self) -> bool:
        """The headset rests on its hanger (else the agent wears it)."""
        return bool(self.inputs & IN_HANGER)


# --- the farm --------------------------------------------------------------------------------


class SeatFarm:
    """`count` virtual seats with uids first_uid, first_uid + 1, ... (4 bytes, 8 past 2**32).

    host: where the TCP links listen (ignored with pty=True: each seat gets a pseudo-terminal
        whose slave path is its url).
    load_hz: each seat presses HELP about this often a second (one help event, code 6, per
        press; it may be changed while the farm runs: 0 stops the presses, a button held
        down is let go, and a load set again starts with phases spread anew), phases spread
        over the period. A press and its release each wait out the firmware's debounce
        lockout (its live debounce_ms setting), so the rate tops out near
        1 / (2 * (debounce_ms + 2 * pass_ms)): about 12/s with the defaults.
    load_after_connect: a seat starts pressing only once a host has connected to its link
        (so a test's seats do not fill their queues before its gateway is there); it may be
        changed while the farm runs and counts for seats not pressing yet.
    trace: record first writes (first_writes(), write_trace()).
    store_dir: where each seat keeps its file store (boot counter), in a directory named by
        its uid: with the same dir, a new farm's seats boot with the next counters.
        None: a temporary directory, removed at stop().
    pass_ms: the period of the seats' loop passes (the firmware's own sleep is 5 ms).
    board_name: the board name the seats' hello sends (default "virtual"; "microbit" plays
        micro:bit v1 seats, which a remote update must refuse).

    A seat whose firmware raises stops alone (seat.error); stop() then raises RuntimeError.

    One seat at a time, while the farm runs: reset() (a board reset), unplug() and replug()
    (its cable, same url), set_noise() (bit flips on its line), status(), and the agent's
    hands at the desk: set_input() (the headset on or off its hanger) and press() (READY,
    WRAP, HELP, ANSWER).
    """

    def __init__(self, count: int, *, host: str = "127.0.0.1", first_uid: int = 0x5EA70001,
                 load_hz: float = 0.0, pty: bool = False, trace: bool = False,
                 store_dir: Path | None = None, pass_ms: int = 5, board_name: str = "virtual",
                 load_after_connect: bool = False) -> None:  # fmt: skip
        if count < 1:
            raise ValueError("a farm needs at least one seat")
        if load_hz < 0 or pass_ms < 1:
            raise ValueError("load_hz must be >= 0 and pass_ms >= 1")
        self.count = count
        self.host = host
        self.load_hz = load_hz
        self.load_after_connect = load_after_connect
        self.pty = pty
        self.pass_ms = pass_ms
        self.board_name = board_name.encode("ascii")
        self._trace: dict[TraceKey, float] | None = {} if trace else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="seatlink-farm-")
            store_dir = Path(self._tmp.name)
        self.store_dir = store_dir
        bundle = link_bundle()
        self._symbols, self._file_of = bundle.symbols, bundle.file_of
        self._factory = {f.name: f.data for f in firmware_bundle(board="microbit")}
        self._gc = GcStub()  # a real gc.collect() per heartbeat walks the whole process heap
        self._poller = _Poller()
        self._hung = select.poll()
        self._calls = ThreadCalls()
        self._poller.register(self._calls.waker.fileno(), select.EPOLLIN,
                              lambda events: self._calls.drain())  # fmt: skip
        self._stopping = False
        self._closed = False
        self._rx_buf = bytearray(4096)
        self._thread: threading.Thread | None = None
        self.fatal: BaseException | None = None  # the scheduler itself died (a bug)
        self.seats: list[FarmSeat] = []
        self._ptys: dict[int, _PtyLink] = {}
        try:
            for i in range(count):
                uid_n = first_uid + i
                uid = uid_n.to_bytes(4 if uid_n < 1 << 32 else 8, "big")
                link: _Link
                if pty:
                    pl = _PtyLink(self._poller, self._hung, uid.hex())
                    self._ptys[pl.master] = pl
                    link = pl
                else:
                    link = _TcpLink(host, self._poller, uid.hex())
                store = store_dir / uid.hex().upper()
                store.mkdir(parents=True, exist_ok=True)
                self._flash(store)
                self.seats.append(FarmSeat(i, uid, link, store, self._trace,
                                           self.board_name))  # fmt: skip
        except BaseException:
            self._close()
            raise

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SeatFarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SeatFarm:
        """Boot every seat (its first pass: boot counter, hello queued) and start stepping."""
        if self._thread is not None or self._closed:
            raise RuntimeError("a farm starts once")
        for seat in self.seats:
            self._boot(seat)
        self._thread = threading.Thread(target=self._main, name="seat-farm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop every seat and close every link; idempotent. Raises RuntimeError if a seat's
        firmware (or the scheduler) failed meanwhile."""
        self._stopping = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._calls.wake()
            thread.join(timeout=10)
            if thread.is_alive():
                raise RuntimeError("the seat farm's scheduler did not stop within 10 s")
        self._close()
        failed = [s for s in self.seats if s.error is not None]
        if self.fatal is not None:
            raise RuntimeError("the seat farm's scheduler failed") from self.fatal
        if failed:
            raise RuntimeError(f"{len(failed)} seat(s) failed, first {failed[0]!r}: "
                               f"{failed[0].error!r}") from failed[0].error  # fmt: skip

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for seat in self.seats:
            if seat._gen is not None:
                seat._gen.close()
                seat._gen = None
            seat.board.stopping.set()
            seat.link.close()
        self._poller.close()
        self._calls.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- for tests and tools ---------------------------------------------------------------

    @property
    def pressed(self) -> list[int]:
        """HELP presses per seat by the load generator: the help events each seat made."""
        return [s.pressed for s in self.seats]

    def reset(self, index: int, *, timeout: float = 5.0) -> int:
        """A board reset: the seat's firmware stops where it is and a new instance boots from
        the same file store (boot counter + 1, a new hello and snapshot). The link is not
        touched, as with a USB-serial adapter whose board resets behind it: a connected
        gateway stays connected and sees the new hello. Returns the new boot counter."""
        seat = self._seat(index)

        def do() -> int:
            if seat._gen is not None:
                seat._gen.close()
                seat._gen = None
            seat.board.bits &= ~IN_HELP  # the load generator's finger lets go too
            seat._help_down = seat._pending = False
            seat._edge_t = -1e9  # a fresh firmware has no lockout running
            seat.error, seat.exited = None, False
            self._boot(seat)
            return seat.boot

        return self._call(do, timeout)

    def unplug(self, index: int) -> bool:
        """Pull seat `index`'s cable: a host connected over TCP reads EOF and new connections
        are refused until replug(); on a pseudo-terminal the device stays open but nothing
        passes. The seat runs on with its host gone: what it writes goes nowhere, its
        frames wait unacked in its queue (and overflow, as on a board, if that lasts).
        Returns False if it was unplugged already."""
        link = self._seat(index).link

        def do() -> bool:
            was = link.plugged
            link.unplug()
            return was

        return self._call(do)

    def replug(self, index: int) -> bool:
        """Plug seat `index`'s cable back in, on the same url (a gateway reconnects by
        itself). Returns False if it was plugged already. Raises OSError if the port was
        taken meanwhile (the seat then stays unplugged)."""
        link = self._seat(index).link

        def do() -> bool:
            was = link.plugged
            link.replug()
            return not was

        return self._call(do)

    def set_noise(self, index: int, p: float, direction: str | None = None) -> dict[str, float]:
        """Line noise on seat `index`'s link: each byte gets one random bit flipped with
        probability p (0 clears it), in `direction` TO_SEAT (what the seat reads) or
        TO_GATEWAY (what it writes), or both (None). Returns the noise now set per
        direction; the damaged bytes are counted in status().corrupted."""
        if not 0.0 <= p <= 1.0:  # also refuses NaN
            raise ValueError(f"noise is a probability per byte, 0..1, not {p}")
        p = float(p)  # set_noise(i, 0) reads back as 0.0, as the defaults
        if direction not in (None, TO_SEAT, TO_GATEWAY):
            raise ValueError(f"direction is {TO_SEAT!r}, {TO_GATEWAY!r} or None (both), "
                             f"not {direction!r}")  # fmt: skip
        link = self._seat(index).link

        def do() -> dict[str, float]:
            for d in (TO_SEAT, TO_GATEWAY) if direction is None else (direction,):
                link.noise[d] = p
            return dict(link.noise)

        return self._call(do)

    def status(self, index: int) -> SeatStatus:
        """Seat `index` as the scheduler sees it between two passes."""
        seat = self._seat(index)

        def do() -> SeatStatus:
            link = seat.link
            return SeatStatus(index=seat.index, uid=seat.uid, url=seat.url, boot=seat.boot,
                              running=seat.running, plugged=link.plugged,
                              connected=link.connected, connections=link.connections,
                              noise=dict(link.noise), corrupted=dict(link.corrupted),
                              pressing=seat.pressing, pressed=seat.pressed,
                              dropped=seat.dropped, discarded=link.discarded,
                              inputs=seat.board.bits)  # fmt: skip

        return self._call(do)

    def set_input(self, index: int, bit: int, level: bool) -> bool:
        """The desk's input `bit` (gateway.virtual_seat's IN_*) of seat `index` at `level`:
        IN_HANGER True puts the headset on its hanger, False lifts it; a button True holds
        it down. Set on the scheduler thread, between passes, so the load generator's HELP
        presses are not lost. Returns False if it was at that level already."""
        if bit not in _INPUTS:
            raise ValueError(f"no input bit {bit}: one of {sorted(_INPUTS)}")
        board = self._seat(index).board

        def do() -> bool:
            was = bool(board.bits & bit)
            if level:
                board.bits |= bit
            else:
                board.bits &= ~bit
            return was != level

        return self._call(do)

    def press(self, index: int, bit: int, hold_s: float = 0.1) -> None:
        """A button of seat `index` pressed for `hold_s` and let go, then as long again
        before returning: longer than the firmware's debounce lockout (30 ms), so each press
        and the next are taken. Blocks the caller meanwhile."""
        if bit == IN_HANGER:
            raise ValueError("the hanger is not a button: set_input() lifts or hangs it")
        if not 0 < hold_s <= 60:
            raise ValueError(f"a press is held for more than 0 and at most 60 s, not {hold_s}")
        self.set_input(index, bit, True)
        try:
            time.sleep(hold_s)
        finally:
            self.set_input(index, bit, False)
        time.sleep(min(hold_s, 0.1))

    def first_writes(self) -> dict[TraceKey, float]:
        """(uid, boot, seq) -> time.time() of the first write of that reliable seat frame,
        whether or not a gateway was connected to take it (trace=True)."""
        if self._trace is None:
            raise RuntimeError("the farm was started without trace=True")
        return self._call(self._trace.copy) if self._thread else self._trace.copy()

    def write_trace(self, path: Path) -> int:
        """first_writes() as CSV (uid,boot,seq,t); returns the number of frames."""
        rows = sorted(self.first_writes().items(), key=lambda kv: kv[1])
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["uid", "boot", "seq", "t"])
            for (uid, boot, seq), t in rows:
                out.writerow([uid, boot, seq, f"{t:.6f}"])
        return len(rows)

    def seat_map(self) -> dict[str, list[dict[str, str]]]:
        """{"seats": [{"uid", "url"}, ...]}: what a gateway config needs to reach each seat."""
        return {"seats": [{"uid": s.uid, "url": s.url} for s in self.seats]}

    def write_map(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.seat_map(), indent=1) + "\n")
        tmp.replace(path)  # readers never see half a map

    # --- the scheduler thread --------------------------------------------------------------

    def _flash(self, store: Path) -> None:
        """This checkout's micro:bit firmware onto a seat's filesystem, as `seatlink flash`
        leaves it: stale parts of another set removed, other files (the boot counter) kept."""
        for old in store.glob(PART_PREFIX + "*"):
            if old.name not in self._factory:
                old.unlink()
        for name, data in self._factory.items():
            path = store / name
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)

    def _boot(self, seat: FarmSeat) -> None:
        seat.reboot_at = None
        seat.boots += 1
        seat.repl.reset()
        try:
            source, loop = self._load_parts(seat.store)
        except _NoFirmware:
            seat.boot_failure = "no main.py: the board boots to the REPL"
            seat.repl.banner()
            return
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            seat.boot_failure = f"{type(exc).__name__}: {exc}"
            seat.repl.traceback(exc)
            return
        try:
            fw = load_firmware(board=seat.board, sources={NAMESPACE: source},
                               extra_modules={"gc": self._gc})  # fmt: skip
            fw.symbols, fw.file_of = self._symbols, self._file_of
            gen = firmware_stepper(fw, loop=loop)
        except Exception as exc:  # what the board would print: the seat stays at the REPL
            seat.boot_failure = f"{type(exc).__name__}: {exc}"
            seat.repl.traceback(exc)
            return
        seat.boot_failure = None
        seat.firmware = fw
        try:
            seat._cfg = fw.module("cfg").V
        except (KeyError, AttributeError):  # another firmware's names: no load generator
            seat._cfg = [0] * (max(SettingKey) + 1)
        seat._gen = gen
        self._step(seat)  # boot(): the counter is written, hello and snapshot queued
        try:
            seat.boot = int((seat.store / "boot").read_text())
        except (OSError, ValueError):
            seat.boot = 0

    @staticmethod
    def _load_parts(store: Path) -> tuple[str, str]:
        """What main.py runs, as (the parts but the last, the main loop's name): the parts
        fw0, fw1, ... up to the first missing one. The last part calls the main loop; the
        farm steps that function itself."""
        if not (store / "main.py").is_file():
            raise _NoFirmware
        parts: list[str] = []
        while (path := store / f"{PART_PREFIX}{len(parts)}").is_file():
            parts.append(path.read_text(encoding="utf-8"))
        if not parts:
            raise ValueError("main.py found no firmware part fw0")
        call = _MAIN_CALL.fullmatch(parts[-1])
        if call is None:
            raise ValueError(f"the last part, {PART_PREFIX}{len(parts) - 1}, does not start "
                             "a main loop: a virtual board runs seat firmware only")  # fmt: skip
        return "".join(parts[:-1]), call.group(1)

    def _seat(self, index: int) -> FarmSeat:
        if not 0 <= index < len(self.seats):
            raise IndexError(f"no seat {index}: the seats are 0..{len(self.seats) - 1}")
        return self.seats[index]

    def _call(self, fn: Callable[[], _T], timeout: float = 5.0) -> _T:
        """Run fn on the scheduler thread, between passes, and return its result."""
        if self._closed:
            raise RuntimeError("the farm is stopped")
        return self._calls.call(fn, thread=self._thread, timeout=timeout)

    def _main(self) -> None:
        try:
            self._schedule()
        except BaseException as exc:  # a bug in the farm: reported by stop()
            self.fatal = exc
        finally:
            self._calls.cancel_all()

    def _schedule(self) -> None:
        period = self.pass_ms / 1000
        nslots = max(1, min(len(self.seats), round(period / _SLOT_S)))
        slots: list[list[FarmSeat]] = [[] for _ in range(nslots)]
        for seat in self.seats:
            slots[seat.index % nslots].append(seat)
        slot_s = period / nslots
        handlers, epoll = self._poller.handlers, self._poller.epoll
        k = 0
        next_t = time.monotonic()
        next_pty = next_t
        while not self._stopping:
            wait = next_t - time.monotonic()
            for fd, events in epoll.poll(wait if wait > 0 else 0):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(events)
            now = time.monotonic()
            if self._ptys and now >= next_pty:
                self._check_ptys()
                next_pty = now + _PTY_CHECK_S
            self._calls.run()
            while now >= next_t and not self._stopping:
                for seat in slots[k]:
                    if seat._gen is not None:
                        hz = self.load_hz  # read once: a test may set it meanwhile
                        if (hz or seat._next_press is not None or seat._help_down
                                or seat._pending):  # fmt: skip
                            self._press(seat, hz)
                        self._step(seat)
                    elif seat.link.rx_ready or seat.reboot_at is not None:
                        self._serve_repl(seat, now)
                k = (k + 1) % nslots
                next_t += slot_s
                if next_t < now - period:
                    next_t = now  # fell behind by a whole period: longer passes, no burst

    def _step(self, seat: FarmSeat) -> None:
        gen = seat._gen
        if gen is None:
            return
        try:
            next(gen)
            seat.passes += 1
        except StopIteration:  # a Z frame: the firmware left for the REPL
            seat._gen = None
            seat.exited = True
            seat.repl.banner()
        except BaseException as exc:  # this seat stops; the others run on
            seat._gen = None
            seat.error = exc
            seat.repl.traceback(exc)

    def _serve_repl(self, seat: FarmSeat, now: float) -> None:
        buf = self._rx_buf
        while (n := seat.link.read(buf)) is not None:
            data = bytes(buf[:n])
            if seat.reboot_at is None:
                seat.repl.feed(data)
            elif b"\x03" in data:  # in main.py's first 0.3 s: no firmware loaded
                seat.reboot_at = None
                seat.repl.reset()
                seat.repl.traceback(KeyboardInterrupt(), at="main.py")
        if seat.reboot_at is not None and now >= seat.reboot_at:
            self._boot(seat)

    def _press(self, seat: FarmSeat, hz: float) -> None:
        # Called just before the seat's pass. The firmware's debounce (agent.poll) is a
        # lockout: the pass that takes an edge starts debounce_ms of summed pass times during
        # which levels are not looked at; the first pass after that takes whatever level is
        # there. A level that flips back within the lockout is never seen, so the generator
        # changes HELP only once its last change is surely taken, reckoning the lockout from
        # the pass times as the firmware does (+2 ms for board.now()'s whole milliseconds).
        # A slow farm then presses less often instead of losing presses.
        # With hz 0 (paused) the finger is let go the same way and no press follows; a load
        # set again starts a new phase, as does a seat whose host comes (load_after_connect).
        now = time.monotonic()
        if not hz:
            seat._next_press = None
        elif seat._next_press is None and (seat.link.connections
                                           or not self.load_after_connect):  # fmt: skip
            seat._next_press = now + (1 + seat.index / self.count) / hz
        if not seat._pending:
            if seat._help_down:
                seat.board.bits &= ~IN_HELP
                seat._help_down = False
                seat._pending = True
            elif seat._next_press is not None and now >= seat._next_press:
                seat.board.bits |= IN_HELP
                seat._help_down = True
                seat._pending = True
                seat.pressed += 1
                period = 1 / hz
                seat._next_press += period
                if seat._next_press < now - period:
                    seat._next_press = now  # too slow to keep up: no burst of presses
        if seat._pending and (seat._prev_t - seat._edge_t
                              >= (seat._cfg[SettingKey.DEBOUNCE_MS] + 2) / 1000):
            seat._pending = False  # this pass takes it
            seat._edge_t = now
        seat._prev_t = now

    def _check_ptys(self) -> None:
        hung = {fd for fd, events in self._hung.poll(0) if events & select.POLLHUP}
        for fd, link in self._ptys.items():
            if not link.opened and fd not in hung:
                link.reader_came()
