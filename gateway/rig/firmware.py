"""The files that make up the seat firmware on an emulated micro:bit.

They come from gateway.bundle, so the board gets exactly the bytes the host
tests load (constants inlined, locals shortened, minified: the micro:bit file
system holds about 15 KB and its heap about 9 KB).
"""

from __future__ import annotations

from gateway.bundle import firmware_bundle


def firmware_files(*, minified: bool = True) -> dict[str, bytes]:
    """Board filename -> content, main.py last so a board never boots half-written firmware."""
    return {f.name: f.data for f in firmware_bundle(board="microbit", minified=minified)}
