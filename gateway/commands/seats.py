"""Run virtual seats (the real firmware under CPython), one serial link each; commands on stdin."""

from __future__ import annotations

import argparse
import math
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from gateway.virtual_farm import TO_GATEWAY, TO_SEAT, SeatFarm, SeatStatus
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_READY, IN_WRAP

_POLL_S = 0.5  # how often the farm is checked for a failed seat (and a signal noticed)

HELP = ("ok commands: status [SEAT] | reset SEAT | unplug SEAT | replug SEAT | "
        "noise SEAT P [both|to-seat|to-gateway] | load [HZ] | lift SEAT | hang SEAT | "
        "answer SEAT | ready SEAT [MS] | wrap SEAT | quit | help "
        "(SEAT: its index from 0, or its uid)")  # fmt: skip
_PRESS_MS = 100  # a button press: longer than the firmware's 30 ms debounce
_LONG_MS_MAX = 10_000  # the firmware's long press is at most 10 s (setting long_press_ms)

_DIRECTIONS = {"both": None, "to-seat": TO_SEAT, "to_seat": TO_SEAT,
               "to-gateway": TO_GATEWAY, "to_gateway": TO_GATEWAY}  # fmt: skip


DESCRIPTION = """\
Run N virtual seats, each the real firmware on its own serial link (a TCP port for
socket:// URLs, or a pseudo-terminal), and print one "UID URL" line per seat (seat 0
first). Ctrl-C or SIGTERM stops them.

While they run, stdin takes one command a line; each answers one line on stdout, starting
"ok" or "error:" (bad input changes nothing). Without a stdin (/dev/null, closed, at its
end, a background job) the seats just run."""

EPILOG = """\
commands on stdin (SEAT: its index from 0, or its uid):
  reset SEAT            a board reset: boot counter + 1, a new hello; the link stays up
  unplug SEAT           pull its cable: the host's connection closes, new ones are refused
                        (a pty stays open, silent); the seat's frames wait in its queue
  replug SEAT           put it back, on the same url: a gateway reconnects by itself
  noise SEAT P [DIR]    flip one bit of each byte with probability P (0..1, 0 clears);
                        DIR: both (default), to-seat or to-gateway
  load [HZ]             HELP presses a second per seat: 0 pauses, more resumes; alone: the
                        load now
  status [SEAT]         one seat, or the whole farm counted
the agent's hands at a seat's desk (its headset starts on its hanger):
  lift SEAT             lift the headset off its hanger (wear it): answers a ringing call
  hang SEAT             put the headset on its hanger: releases a call being talked; Ready
                        with the headset there is Not Ready (away) after away_s
  answer SEAT           press the headset's call button: answers a ringing call, releases
                        a talking one
  ready SEAT [MS]       press READY (for MS ms, default 100; held 3000 logs the seat out)
  wrap SEAT             press WRAP: ends after-call work
  help                  the commands
  quit                  stop, as Ctrl-C

example: seatlink seats -n 16 --load-hz 2 --load-after-connect --map seats.json
details: docs/virtual-seats.md"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.add_argument("-n", "--count", type=int, default=1, metavar="N",
                        help="how many seats (default 1)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the seats' TCP links listen on (default 127.0.0.1)")
    parser.add_argument("--first-uid", type=lambda s: int(s, 16), default=0x5EA70001,
                        metavar="HEX", help="uid of the first seat, hex (default 5EA70001)")
    parser.add_argument("--load-hz", type=float, default=0.0, metavar="HZ",
                        help="each seat presses HELP this often a second (one event each; "
                             "about 12 at most; the 'load' command changes it)")
    parser.add_argument("--load-after-connect", action="store_true",
                        help="a seat starts pressing only once a host has connected to its "
                             "link (its queue does not overflow before the gateway is there)")
    parser.add_argument("--pty", action="store_true",
                        help="a pseudo-terminal per seat instead of a TCP port")
    parser.add_argument("--map", type=Path, metavar="FILE",
                        help='write {"seats": [{"uid", "url"}, ...]} as JSON once listening')
    parser.add_argument("--trace", type=Path, metavar="FILE",
                        help="on exit, write each reliable seat frame's first write time (CSV)")
    parser.add_argument("--store", type=Path, metavar="DIR",
                        help="keep the seats' file stores (boot counters) here between runs")
    parser.add_argument("--pass-ms", type=int, default=5, metavar="MS",
                        help="period of each seat's loop pass (default 5, as the firmware)")


class Console:
    """The line commands of a running farm: run(line) does one and returns its answer, one
    line starting "ok" or "error:" ("" for a blank line or a # comment). Bad input changes
    nothing; nothing a line says raises."""

    def __init__(self, farm: SeatFarm, on_quit: Callable[[], None]) -> None:
        self.farm = farm
        self._on_quit = on_quit

    def run(self, line: str) -> str:
        words = line.split("#", 1)[0].split()
        if not words:
            return ""
        name, args = words[0].lower(), words[1:]
        command = {"help": self._help, "status": self._status, "reset": self._reset,
                   "unplug": self._unplug, "replug": self._replug, "noise": self._noise,
                   "load": self._load, "lift": self._lift, "hang": self._hang,
                   "answer": self._answer, "ready": self._ready, "wrap": self._wrap,
                   "quit": self._quit}.get(name)  # fmt: skip
        if command is None:
            return f"error: unknown command {words[0]!r} ('help' lists them)"
        try:
            return command(args)
        except _Refused as exc:
            return f"error: {exc}"
        except Exception as exc:  # the farm's own failure (stopped, timed out, port taken)
            return f"error: {name}: {type(exc).__name__}: {exc}"

    # --- the commands ------------------------------------------------------------------------

    def _help(self, args: list[str]) -> str:
        return HELP

    def _status(self, args: list[str]) -> str:
        _arity("status", args, 0, 1, "[SEAT]")
        if args:
            return "ok " + _describe(self.farm.status(self._index(args[0])))
        seats = [self.farm.status(i) for i in range(len(self.farm.seats))]
        hz = self.farm.load_hz
        load = f"load {_num(hz)}/s per seat" if hz else "load paused"
        if hz and self.farm.load_after_connect:
            load += " (after connect)"
        return (f"ok {len(seats)} seats, {load}: "
                f"{sum(s.connected for s in seats)} connected, "
                f"{sum(not s.plugged for s in seats)} unplugged, "
                f"{sum(any(s.noise.values()) for s in seats)} noisy, "
                f"{sum(s.pressing for s in seats)} pressing, "
                f"{sum(not s.running for s in seats)} not running (REPL or failed), "
                f"{sum(s.pressed for s in seats)} pressed, "
                f"{sum(s.dropped for s in seats)} dropped, "
                f"{sum(not s.on_hanger for s in seats)} headsets lifted")  # fmt: skip

    def _reset(self, args: list[str]) -> str:
        _arity("reset", args, 1, 1, "SEAT")
        index = self._index(args[0])
        boot = self.farm.reset(index)
        return f"ok {self._name(index)}: reset, boot {boot}"

    def _unplug(self, args: list[str]) -> str:
        _arity("unplug", args, 1, 1, "SEAT")
        index = self._index(args[0])
        done = self.farm.unplug(index)
        return f"ok {self._name(index)}: unplugged{'' if done else ' already'}"

    def _replug(self, args: list[str]) -> str:
        _arity("replug", args, 1, 1, "SEAT")
        index = self._index(args[0])
        done = self.farm.replug(index)
        return (f"ok {self._name(index)}: plugged in{'' if done else ' already'} at "
                f"{self.farm.seats[index].url}")  # fmt: skip

    def _noise(self, args: list[str]) -> str:
        _arity("noise", args, 2, 3, "SEAT P [both|to-seat|to-gateway]")
        index = self._index(args[0])
        try:
            p = float(args[1])
        except ValueError:
            p = math.nan
        if not 0.0 <= p <= 1.0:
            raise _Refused(f"bad probability {args[1]!r}: a number from 0 to 1 (per byte)")
        word = args[2].lower() if len(args) > 2 else "both"
        if word not in _DIRECTIONS:
            raise _Refused(f"bad direction {args[2]!r}: both, to-seat or to-gateway")
        noise = self.farm.set_noise(index, p, _DIRECTIONS[word])
        corrupted = self.farm.status(index).corrupted
        return (f"ok {self._name(index)}: noise {_pairs(noise)} "
                f"(corrupted so far: {_pairs(corrupted)})")  # fmt: skip

    def _load(self, args: list[str]) -> str:
        _arity("load", args, 0, 1, "[HZ]")
        if args:
            try:
                hz = float(args[0])
            except ValueError:
                hz = math.nan
            if not (math.isfinite(hz) and hz >= 0):
                raise _Refused(f"bad load {args[0]!r}: presses a second per seat, 0 or more "
                               "(0 pauses)")  # fmt: skip
            self.farm.load_hz = hz
        hz = self.farm.load_hz
        if not hz:
            return "ok load paused"
        after = ", each seat once a host has connected" if self.farm.load_after_connect else ""
        return f"ok load {_num(hz)} presses/s per seat{after}"

    def _lift(self, args: list[str]) -> str:
        _arity("lift", args, 1, 1, "SEAT")
        index = self._index(args[0])
        done = self.farm.set_input(index, IN_HANGER, False)
        return f"ok {self._name(index)}: headset lifted{'' if done else ' already'}"

    def _hang(self, args: list[str]) -> str:
        _arity("hang", args, 1, 1, "SEAT")
        index = self._index(args[0])
        done = self.farm.set_input(index, IN_HANGER, True)
        return f"ok {self._name(index)}: headset on its hanger{'' if done else ' already'}"

    def _answer(self, args: list[str]) -> str:
        _arity("answer", args, 1, 1, "SEAT")
        index = self._index(args[0])
        self.farm.press(index, IN_ANSWER, _PRESS_MS / 1000)
        return f"ok {self._name(index)}: ANSWER pressed"

    def _ready(self, args: list[str]) -> str:
        _arity("ready", args, 1, 2, "SEAT [MS]")
        index = self._index(args[0])
        ms = _PRESS_MS
        if len(args) > 1:
            ms = int(args[1]) if args[1].isdigit() else 0
            if not 1 <= ms <= _LONG_MS_MAX + 1000:
                raise _Refused(f"bad press length {args[1]!r}: milliseconds, 1 to "
                               f"{_LONG_MS_MAX + 1000}")  # fmt: skip
        self.farm.press(index, IN_READY, ms / 1000)
        held = "" if len(args) < 2 else f" for {ms} ms"
        return f"ok {self._name(index)}: READY pressed{held}"

    def _wrap(self, args: list[str]) -> str:
        _arity("wrap", args, 1, 1, "SEAT")
        index = self._index(args[0])
        self.farm.press(index, IN_WRAP, _PRESS_MS / 1000)
        return f"ok {self._name(index)}: WRAP pressed"

    def _quit(self, args: list[str]) -> str:
        _arity("quit", args, 0, 0, "")
        self._on_quit()
        return "ok stopping"

    # --- helpers -----------------------------------------------------------------------------

    def _index(self, word: str) -> int:
        seats = self.farm.seats
        if word.isdigit() and int(word) < len(seats):
            return int(word)
        for seat in seats:
            if seat.uid == word.upper():
                return seat.index
        raise _Refused(f"no seat {word!r}: the seats are 0..{len(seats) - 1} "
                       f"(or their uids, {seats[0].uid}...)")  # fmt: skip

    def _name(self, index: int) -> str:
        return f"seat {index} {self.farm.seats[index].uid}"


class _Refused(ValueError):
    """Bad input: answered with an error, nothing done."""


def _arity(name: str, args: list[str], least: int, most: int, usage: str) -> None:
    if not least <= len(args) <= most:
        raise _Refused(f"usage: {name} {usage}".rstrip())


def _num(x: float) -> str:
    return f"{x:g}"


def _pairs(d: dict[str, float] | dict[str, int]) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in d.items())


def _describe(s: SeatStatus) -> str:
    link = "unplugged" if not s.plugged else "connected" if s.connected else "no host"
    hosts = f"{s.connections} connection{'' if s.connections == 1 else 's'} so far"
    return (f"seat {s.index} {s.uid} {s.url}: boot {s.boot}, "
            f"{'running' if s.running else 'not running (REPL or failed)'}, {link}, {hosts}, "
            f"noise {_pairs(s.noise)}, "
            f"corrupted {_pairs(s.corrupted)}, {'pressing' if s.pressing else 'not pressing'}, "
            f"{s.pressed} pressed, {s.dropped} dropped, "
            f"headset {'on its hanger' if s.on_hanger else 'lifted'}")  # fmt: skip


def _foreground(fd: int) -> bool:
    """fd may be read now: not a terminal, or a terminal this process has the foreground of
    (a background job reading its terminal would be stopped by SIGTTIN)."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # not a terminal
        return True


def _stdin_fd() -> int | None:
    """stdin's file descriptor, None when there is none. Called before the farm opens its
    sockets: with fd 0 closed at start, one of them could take that number."""
    if sys.stdin is None:  # fd 0 was closed when Python started
        return None
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (OSError, ValueError):
        return None
    return fd


def run(args: argparse.Namespace) -> int:
    """Print "uid url" per seat, then run the seats, taking commands on stdin, until
    SIGINT/SIGTERM or quit."""
    if args.count < 1:
        print("seatlink seats: --count must be at least 1", file=sys.stderr)
        return 2
    if not (math.isfinite(args.load_hz) and args.load_hz >= 0):
        print("seatlink seats: --load-hz must be 0 or more", file=sys.stderr)
        return 2
    stdin = _stdin_fd()
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    # a read of the terminal from the background fails (EIO) instead of stopping the process
    previous_ttin = signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    try:
        farm = SeatFarm(args.count, host=args.host, first_uid=args.first_uid,
                        load_hz=args.load_hz, load_after_connect=args.load_after_connect,
                        pty=args.pty, trace=args.trace is not None, store_dir=args.store,
                        pass_ms=args.pass_ms)  # fmt: skip
        with farm:
            for seat in farm.seats:
                print(f"{seat.uid} {seat.url}", flush=True)
            if args.map is not None:
                farm.write_map(args.map)
            _serve(farm, Console(farm, done.set), done, stdin)
            if args.trace is not None:
                n = farm.write_trace(args.trace)
                print(f"seatlink seats: {n} first writes in {args.trace}", file=sys.stderr)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"seatlink seats: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGTTIN, previous_ttin)
    return 0


def _serve(farm: SeatFarm, console: Console, done: threading.Event, fd: int | None) -> None:
    """Answer the command lines on fd (stdin) until done, a seat fails or the scheduler dies.
    At the end of the input (or with none) the seats run on without commands."""
    if fd is not None and os.isatty(fd) and _foreground(fd):
        print("seatlink seats: commands on stdin, 'help' lists them", file=sys.stderr)
    pending = b""
    while not done.is_set():
        if farm.fatal is not None or any(s.error is not None for s in farm.seats):
            return  # stop() names what failed
        if fd is None or not _foreground(fd):
            done.wait(_POLL_S)
            continue
        try:
            readable, _, _ = select.select([fd], [], [], _POLL_S)
            data = os.read(fd, 4096) if readable else None
        except OSError:  # EIO: moved to the background between the check and the read
            done.wait(_POLL_S)
            continue
        if data is None:
            continue
        if not data:
            fd = None  # end of input: no more commands
            data = b"\n" if pending else b""
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if done.is_set():
                break  # after a quit
            answer = console.run(line.decode("utf-8", "replace"))
            if answer:
                try:
                    print(answer, flush=True)
                except BrokenPipeError:
                    pass  # nobody reads the answers any more: the seats run on
