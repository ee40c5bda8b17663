"""Flashing time of emulated boards, in parallel against one after another, printed as one
JSON object (a section of `make bench`).

    python -m tools.bench_flash                 # 8 emulated micro:bits
    python -m tools.bench_flash --boards 4      # a quick check

Each run starts `boards` blank emulated micro:bits (QEMU, gateway.rig.boot_many; the boot
is not timed) and flashes this checkout's firmware onto all of them through
gateway.fleet.flash.flash_many, as `seatlink flash` does: every file hashed, written in
ring-sized pieces, checked, the set verified, the board reset. Once with one worker per
board (`parallel_s`), once with one worker (`sequential_s`), each on fresh boards, wall
clock around flash_many only. `speedup` is sequential_s / parallel_s; every QEMU shares the
machine's cores (`cpus`), so it is bounded by them as much as by the serial round trips.

Progress goes to stderr; stdout is the JSON object only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from gateway.fleet.flash import Firmware, Job, Target, flash_many
from gateway.rig import boot_many


def log(text: str) -> None:
    print(f"bench_flash: {text}", file=sys.stderr, flush=True)


def timed_run(boards: int, jobs: int, firmware: Firmware) -> tuple[float, int, int]:
    """(seconds, files per board, bytes per board) for one flash of `boards` fresh boards."""
    with boot_many(boards) as started:
        targets = [Target(b.serial_url) for b in started]
        start = time.monotonic()
        results = flash_many(targets, Job(firmware), jobs=jobs)
        seconds = time.monotonic() - start
    failed = [f"{r.port}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {boards} boards failed: {failed[0]}")
    fileset = firmware.for_kind("microbit")
    if any(r.written != list(fileset.files) for r in results):
        raise RuntimeError("a board was not written in full")
    return seconds, len(fileset.files), fileset.size


def measure(*, boards: int = 8) -> dict[str, Any]:
    if boards < 1:
        raise ValueError("need boards >= 1")
    firmware = Firmware.checkout()
    firmware.for_kind("microbit")  # link the firmware before the clock runs
    log(f"{boards} boards, one worker each")
    parallel, files, size = timed_run(boards, boards, firmware)
    log(f"{boards} boards, one worker")
    sequential, _, _ = timed_run(boards, 1, firmware)
    return {
        "boards": boards,
        "files_per_board": files,
        "bytes_per_board": size,
        "parallel_s": round(parallel, 3),
        "sequential_s": round(sequential, 3),
        "speedup": round(sequential / parallel, 2),
        "cpus": os.cpu_count(),
    }


def summary(f: dict[str, Any]) -> str:
    return (f"{f['boards']} boards x {f['files_per_board']} files ({f['bytes_per_board']} "
            f"bytes): parallel {f['parallel_s']} s, one after another {f['sequential_s']} s, "
            f"speed-up {f['speedup']} on {f['cpus']} CPUs")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_flash",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--boards", type=int, default=8, help="emulated boards (default 8)")
    args = parser.parse_args(argv)
    figures = measure(boards=args.boards)
    log(summary(figures))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
