"""Test images: Debian's MicroPython hex with its build date changed, so a board shows in
its banner and os.uname() which image it runs."""

from __future__ import annotations

from pathlib import Path

from gateway.rig.hexfile import HexImage, read_image_file, write_hex
from gateway.rig.qemu import find_firmware_hex

STOCK_DATE = b" on 2017-09-01"  # MicroPython's build date in the banner and os.uname()


def dated_image(path: Path, date: str) -> Path:
    """The stock image with every " on 2017-09-01" made " on <date>" (same length)."""
    new = f" on {date}".encode("ascii")
    assert len(new) == len(STOCK_DATE)
    image = read_image_file(find_firmware_hex())
    runs = {a: d.replace(STOCK_DATE, new) for a, d in image.runs.items()}
    assert runs != dict(image.runs), "the stock image has no build date to change"
    path.write_bytes(write_hex(HexImage(runs, image.start)))
    return path
