"""The rig's pin map follows boards/microbit.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.rig.pins import MICROBIT_TO_P0, microbit_board_file, microbit_pins, read_pins_literal


def test_pins_come_from_the_board_file() -> None:
    literal = read_pins_literal(microbit_board_file())
    pins = microbit_pins()
    assert set(pins.inputs) | set(pins.outputs) == set(literal)
    assert set(pins.outputs) == {"red", "green", "blue"}
    for name, line in {**pins.inputs, **pins.outputs}.items():
        assert line == MICROBIT_TO_P0[literal[name]]


def test_rgb_bits_follow_red_green_blue() -> None:
    pins = microbit_pins()
    bits = pins.rgb_bits()
    assert {bits[pins.outputs[c]] for c in ("red", "green", "blue")} == {1, 2, 4}
    assert bits[pins.outputs["red"]] == 1 and bits[pins.outputs["blue"]] == 4


def test_unknown_pin_is_refused(tmp_path: Path) -> None:
    board = tmp_path / "b.py"
    board.write_text("PINS = {'hanger': 5, 'red': 13, 'green': 14, 'blue': 15}\n")
    with pytest.raises(ValueError, match="micro:bit pin 5"):
        microbit_pins(board_file=board)
