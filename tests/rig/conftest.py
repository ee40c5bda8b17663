"""Fixtures for the rig tests: real QEMU boards, skipped only where QEMU is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.rig import EmulatedBoard
from gateway.rig.pins import microbit_board_file, read_pins_literal


@pytest.fixture
def board(qemu_available: None) -> Iterator[EmulatedBoard]:
    with EmulatedBoard() as started:
        yield started


@pytest.fixture
def mirror_main() -> bytes:
    return make_mirror_main()


@pytest.fixture
def locked_main() -> bytes:
    return LOCKED_MAIN


def make_mirror_main(*, banner: str = "mirror up") -> bytes:
    """A main.py that copies hanger/ready/wrap to red/green/blue every 2 ms, using the
    micro:bit pins of boards/microbit.py."""
    pins = read_pins_literal(microbit_board_file())
    ins = ", ".join(f"microbit.pin{pins[n]}" for n in ("hanger", "ready", "wrap"))
    outs = ", ".join(f"microbit.pin{pins[n]}" for n in ("red", "green", "blue"))
    return (
        "import microbit\n"
        f"I = ({ins})\n"
        f"O = ({outs})\n"
        f"print({banner!r})\n"
        "while True:\n"
        "    for i in range(3):\n"
        "        O[i].write_digital(I[i].read_digital())\n"
        "    microbit.sleep(2)\n"
    ).encode()


LOCKED_MAIN = (
    b"import microbit, micropython\n"
    b"microbit.sleep(100)\n"
    b"micropython.kbd_intr(-1)\n"
    b"while True:\n"
    b"    microbit.sleep(10)\n"
)
"""A main.py that, like the seat firmware, stops Ctrl-C from reaching the REPL."""
