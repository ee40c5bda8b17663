"""Run a farm of virtual seats (the real firmware under CPython), one serial link each."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from gateway.virtual_farm import SeatFarm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--count", type=int, default=1, metavar="N",
                        help="how many seats (default 1)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the seats' TCP links listen on (default 127.0.0.1)")
    parser.add_argument("--first-uid", type=lambda s: int(s, 16), default=0x5EA70001,
                        metavar="HEX", help="uid of the first seat, hex (default 5EA70001)")
    parser.add_argument("--load-hz", type=float, default=0.0, metavar="HZ",
                        help="each seat presses HELP this often a second (one event each)")
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


def run(args: argparse.Namespace) -> int:
    """Print "uid url" per seat, then run the seats until SIGINT/SIGTERM."""
    if args.count < 1:
        print("seatlink seats: --count must be at least 1", file=sys.stderr)
        return 2
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        farm = SeatFarm(args.count, host=args.host, first_uid=args.first_uid,
                        load_hz=args.load_hz, pty=args.pty, trace=args.trace is not None,
                        store_dir=args.store, pass_ms=args.pass_ms)  # fmt: skip
        with farm:
            for seat in farm.seats:
                print(f"{seat.uid} {seat.url}", flush=True)
            if args.map is not None:
                farm.write_map(args.map)
            while not done.wait(0.5):
                failed = [s for s in farm.seats if s.error is not None]
                if failed or farm.fatal is not None:
                    break  # stop() names what failed
            if args.trace is not None:
                n = farm.write_trace(args.trace)
                print(f"seatlink seats: {n} first writes in {args.trace}", file=sys.stderr)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"seatlink seats: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
