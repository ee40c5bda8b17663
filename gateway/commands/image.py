"""Build the micro:bit v1 image: MicroPython 1.9.2 with the seat firmware frozen in."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from gateway.image import ImageError, build_image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--firmware-version", metavar="V", default=None,
        help="stamp this version into the image (what the hello says; default: "
             "firmware/tx.py's FW)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE",
        help="also copy the image here (e.g. build/seatlink-microbit.hex)",
    )  # fmt: skip
    parser.add_argument(
        "--fresh", action="store_true",
        help="throw the cached Debian source, port tree and images away first (CI does)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print what was built as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the image's path (from the cache when nothing changed); 1 when it cannot be
    built, with the reason."""
    try:
        image = build_image(args.firmware_version, fresh=args.fresh,
                            log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    except (ImageError, ValueError) as exc:
        print(f"seatlink image: {exc}", file=sys.stderr)
        return 1
    path = image.path
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.path, args.out)
        path = args.out
    if args.json:
        print(json.dumps({**image.describe(), "path": str(path)}))
    else:
        print(f"{path}  (firmware {image.version}, {len(image.frozen_modules)} modules frozen, "
              f"{image.new_qstrs} new names, {image.flash_bytes:,} bytes of flash)")  # fmt: skip
    return 0
