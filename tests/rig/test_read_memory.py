"""The board's memory read over qtest while it runs (tools/bench.py reads the C stack's
high-water mark this way)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gateway.image import build_image
from gateway.rig import EmulatedBoard

pytestmark = pytest.mark.hil

RAM_END = 0x20004000  # the nRF51822's 16 KB of RAM on the micro:bit v1


def test_reads_the_vector_table_and_ram(board: EmulatedBoard) -> None:
    gpio = board.gpio
    vectors = gpio.read_memory(0, 8)
    # the initial stack pointer is the end of RAM; the reset handler is a Thumb address
    assert int.from_bytes(vectors[:4], "little") == RAM_END
    assert int.from_bytes(vectors[4:], "little") & 1 == 1
    assert len(gpio.read_memory(RAM_END - 3, 3)) == 3
    assert gpio.read_memory(0, 8) == vectors
    with pytest.raises(ValueError):
        gpio.read_memory(0, 0)


def test_the_seat_image_paints_the_unused_stack(
    qemu_image_board: Callable[[dict[str, str] | None], EmulatedBoard],
) -> None:
    image = build_image()
    assert image.stack_top == RAM_END
    assert image.stack_size is not None and image.stack_margin is not None
    assert image.stack_paint is not None
    assert 0 < image.stack_margin < image.stack_size
    board = qemu_image_board(None)
    gpio = board.gpio
    assert int.from_bytes(gpio.read_memory(0, 4), "little") == image.stack_top
    bottom = image.stack_top - image.stack_size
    paint = image.stack_paint.to_bytes(4, "little")
    deadline = time.monotonic() + 5
    while gpio.read_memory(bottom, 4) != paint:  # painted as main() starts
        assert time.monotonic() < deadline, "the stack's bottom was never painted"
    stack = gpio.read_memory(bottom, image.stack_size)
    words = [stack[i : i + 4] for i in range(0, len(stack), 4)]
    painted = next(i for i, word in enumerate(words) if word != paint)
    # painted from the bottom up to main()'s frame, in use above
    assert 0 < painted < len(words)
    assert words[-1] != paint
