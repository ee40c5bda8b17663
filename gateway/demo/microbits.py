"""The demo's emulated micro:bits: micro:bit v1 boards in QEMU booting the seat image (the
firmware frozen into MicroPython 1.9.2, gateway.image), with the agent robot at them
(`python -m gateway.demo.microbits --hex IMAGE --seat s025 --seat s026 --map FILE ...`).

Each board speaks the seat protocol on its own `socket://` URL, where the edge gateway's
link reaches it, and reports the board id it is given (`--first-uid`, one more per board).
Its hello is awaited before the map is written: the firmware is then in its loop (the agent's
first READY press would be lost during the 0.3 s main.py waits at boot), and the map's uid is
the one the board reports.
The robot is gateway.demo.agents.Robot, as at the virtual seats: it acts through each
board's input pins (GpioInputs: the HANGER, READY, WRAP, HELP and ANSWER bits driven over
qtest). Each board's headset is put on its hanger once the board runs (an unwired hanger pin
reads 0, a worn headset), until the agent signed in there puts it on.

Once every board runs, the map (`{"seats": [{"seat", "uid", "url", "pid", "board",
"firmware"}]}`) is written; the process then runs until SIGTERM or SIGINT, and stops every
QEMU it started (its own children, by their processes; each also has a parent-death signal,
gateway.rig.spawn). A board whose QEMU ends on its own ends this process with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from gateway.contract.topics import Topics
from gateway.demo.agents import Robot
from gateway.demo.desks import serve
from gateway.rig.board import EmulatedBoard
from gateway.rig.emulator import EmulatorError
from gateway.rig.gpio import Gpio
from gateway.rig.qemu import QemuMicrobit
from gateway.rig.qtest import QtestError
from gateway.seatlink.codec import FrameError, Kind, decode
from gateway.seatlink.messages import Hello
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_HELP, IN_READY, IN_WRAP

FIRST_UID = 0x5EA7DE0000000001  # the demo's emulated boards: 16 hex digits, as a micro:bit's
# firmware/agent.py's input bits, by the pins' names in boards/microbit.py
INPUT_PINS = {IN_HANGER: "hanger", IN_READY: "ready", IN_WRAP: "wrap", IN_HELP: "help",
              IN_ANSWER: "answer"}  # fmt: skip


class GpioInputs:
    """An emulated board's inputs as the robot's `bits` (gateway.virtual_seat's IN_HANGER,
    IN_READY, IN_WRAP, IN_HELP, IN_ANSWER): setting them drives each pin that changed. It
    starts with the headset on its hanger (the pin driven to 1), as an empty desk."""

    def __init__(self, gpio: Gpio, seat: str) -> None:
        self._gpio = gpio
        self._seat = seat
        self._bits = 0  # the pins as QEMU starts them: all low
        self.errors = 0
        self.bits = IN_HANGER

    @property
    def bits(self) -> int:
        return self._bits

    @bits.setter
    def bits(self, value: int) -> None:
        changed, self._bits = value ^ self._bits, value
        for bit, name in INPUT_PINS.items():
            if changed & bit:
                try:
                    self._gpio.set_input(name, bool(value & bit))
                except (QtestError, OSError) as exc:  # the board is going away
                    self.errors += 1
                    print(f"microbits: {self._seat}: {name} not driven: {exc}",
                          file=sys.stderr, flush=True)  # fmt: skip


def boot(hex_path: Path, seats: Sequence[str], first_uid: int) -> dict[str, EmulatedBoard]:
    """One emulated board per seat, each with its own id, running the image's firmware."""
    boards: dict[str, EmulatedBoard] = {}
    try:
        for i, seat in enumerate(seats):
            uid = f"{first_uid + i:016X}"
            boards[seat] = EmulatedBoard(emulator=QemuMicrobit(firmware_hex=hex_path, uid=uid))
            boards[seat].start(repl=False, timeout=30.0)
    except BaseException:
        for board in boards.values():
            board.stop()
        raise
    return boards


def wait_hello(url: str, timeout: float) -> Hello:
    """The board's hello (resent until a host acks it) on its serial port, `socket://host:
    port`, read as a plain TCP client and let go again for the gateway."""
    where = urlsplit(url)
    deadline = time.monotonic() + timeout
    with socket.create_connection((where.hostname, where.port), timeout=timeout) as sock:
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            if not data:
                raise EmulatorError(f"{url} closed before the board said hello")
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                try:
                    frame = decode(line.strip(b"\r\x00"))
                except FrameError:
                    continue  # NUL from QEMU's UART, half a line: the hello comes again
                if frame.kind is Kind.HELLO:
                    return Hello.from_frame(frame)
    raise EmulatorError(f"no hello from the board on {url} within {timeout:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.demo.microbits")
    p.add_argument("--hex", type=Path, required=True, help="the seat image (seatlink image)")
    p.add_argument("--seat", action="append", required=True, help="one per board, in order")
    p.add_argument("--broker-port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--root", default="seatlink")
    p.add_argument("--map", type=Path, required=True, help="where the boards' links go (JSON)")
    p.add_argument("--first-uid", type=lambda text: int(text, 16), default=FIRST_UID)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    try:
        boards = boot(args.hex, args.seat, args.first_uid)
    except (EmulatorError, OSError) as exc:
        print(f"microbits: an emulated micro:bit did not start: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            hellos = {seat: wait_hello(board.serial_url, 30.0) for seat, board in boards.items()}
        except (EmulatorError, OSError, ValueError) as exc:
            print(f"microbits: an emulated micro:bit did not boot its firmware: {exc}",
                  file=sys.stderr)  # fmt: skip
            return 1
        rows = [{"seat": seat, "uid": hellos[seat].uid, "url": board.serial_url,
                 "pid": board.pid, "board": hellos[seat].board,
                 "firmware": hellos[seat].firmware}
                for seat, board in boards.items()]  # fmt: skip
        if len({row["uid"] for row in rows}) < len(rows):
            print(f"microbits: boards report the same id ({[row['uid'] for row in rows]}): "
                  "only one of them can be bound", file=sys.stderr)  # fmt: skip
            return 1
        for row in rows:
            print(f"microbits: {row['seat']}: board {row['uid']} on {row['url']}, QEMU pid "
                  f"{row['pid']}", file=sys.stderr, flush=True)  # fmt: skip
        tmp = args.map.with_name(args.map.name + ".tmp")
        tmp.write_text(json.dumps({"seats": rows}, indent=1) + "\n")
        tmp.replace(args.map)  # readers never see half a map
        inputs = {seat: GpioInputs(board.gpio, seat) for seat, board in boards.items()}
        topics = Topics(site=args.site, root=args.root)

        def stopped() -> str | None:
            down = [seat for seat, board in boards.items() if not board.running]
            return f"the QEMU of {', '.join(down)} ended" if down else None

        return asyncio.run(serve(lambda: Robot(topics=topics, port=args.broker_port,
                                               rng=random.Random(args.seed), boards=inputs,
                                               breaks=True),
                                 "microbits", watch=stopped))  # fmt: skip
    finally:
        for board in boards.values():
            board.stop()


if __name__ == "__main__":
    sys.exit(main())
