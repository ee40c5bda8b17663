"""Boot emulated seat boards (QEMU micro:bits) on the seat image, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from gateway.image import ImageError
from gateway.rig import EmulatorError, ReplError, boot_many

_POLL_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--boards", dest="n", type=int, default=1, metavar="N",
        help="how many boards to boot (default 1)",
    )  # fmt: skip
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--bare", "--no-install", dest="bare", action="store_true",
        help="boot Debian's MicroPython without the firmware, at its REPL",
    )  # fmt: skip
    what.add_argument(
        "--image", type=Path, metavar="HEX",
        help="boot this image (default: the seat image of this checkout, built when missing)",
    )  # fmt: skip
    parser.add_argument(
        "--drives", type=Path, metavar="DIR",
        help="put the boards' DAPLink drives in DIR (MICROBIT, MICROBIT1, ...; default: a "
             "temporary directory each)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Print one JSON line per board ({"board", "serial", "gpio", "pid", "uid", "drive"}), then
    keep the boards up until SIGINT/SIGTERM. The rig lets go of each board's qtest socket
    first, so one client (e.g. gateway.rig.Gpio.connect) can take it. `uid` is the id the
    board's hello reports, its own and kept across resets. `drive` acts as the
    board's DAPLink drive: a .hex copied there is flashed onto the board (gateway.rig.drive);
    the serial URL stays, its QEMU process (pid) is a new one."""
    if args.n < 1:
        print("seatlink emulate: -n must be at least 1", file=sys.stderr)
        return 2
    if args.drives is not None and not args.drives.is_dir():
        print(f"seatlink emulate: --drives: no directory {args.drives}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.image is not None and not args.image.is_file():
            print(f"seatlink emulate: --image: no file {args.image}", file=sys.stderr)
            return 2
        boards = boot_many(args.n, firmware=not args.bare, firmware_hex=args.image)
        with boards:
            for index, board in enumerate(boards):
                board.release_gpio()
                drive = board.open_drive(parent=args.drives,
                                         name=f"MICROBIT{index or ''}")  # fmt: skip
                line = {
                    "board": index,
                    "serial": board.serial_url,
                    "gpio": board.gpio_address,
                    "pid": board.pid,
                    "uid": board.uid,
                    "drive": str(drive.path),
                }
                print(json.dumps(line), flush=True)
            while all(board.running for board in boards):
                time.sleep(_POLL_S)
            dead = [i for i, board in enumerate(boards) if not board.running]
            print(f"seatlink emulate: board(s) {dead} stopped by themselves", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except (EmulatorError, ReplError, ImageError, OSError) as exc:
        print(f"seatlink emulate: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same way out as Ctrl-C, so `with boards` stops every QEMU.
    raise KeyboardInterrupt
