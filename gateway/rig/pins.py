"""Which nRF51 GPIO line each logical seat signal uses on an emulated micro:bit.

The logical names come from the `PINS` dict in boards/microbit.py, read with `ast`
(importing that file needs the `microbit` module), so the rig follows the board file.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.rig.paths import repo_root

# micro:bit v1 edge-connector pin -> nRF51 P0.n (what qtest numbers the GPIO lines by).
# Only the pins free for the seat: 3, 4, 6, 7, 9, 10 are LED-matrix columns the display
# driver keeps rewriting, 5 and 11 are the buttons (never read in QEMU), 19 and 20 are I2C.
MICROBIT_TO_P0: Mapping[int, int] = {
    0: 3,
    1: 2,
    2: 1,
    8: 18,
    12: 20,
    13: 23,
    14: 22,
    15: 21,
    16: 16,
}

# The light's colours, in the bit order of the firmware's rgb value (bit0 red).
OUTPUT_BITS: Mapping[str, int] = {"red": 1, "green": 2, "blue": 4}


@dataclass(frozen=True)
class BoardPins:
    """Logical signal name -> nRF51 P0.n, split by direction."""

    inputs: Mapping[str, int]
    outputs: Mapping[str, int]

    def rgb_bits(self) -> Mapping[int, int]:
        """P0.n of each light output -> its bit in the rgb value."""
        return {line: OUTPUT_BITS[name] for name, line in self.outputs.items()}


def microbit_board_file() -> Path:
    return repo_root() / "boards" / "microbit.py"


def read_pins_literal(path: Path) -> dict[str, int]:
    """The module-level `PINS = {...}` literal of a board file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PINS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in value.items()
            ):
                raise ValueError(f"{path}: PINS must map names to pin numbers")
            return dict(value)
    raise ValueError(f"{path}: no PINS literal")


def microbit_pins(*, board_file: Path | None = None) -> BoardPins:
    """Map the board file's PINS onto nRF51 lines; red/green/blue are outputs, the rest inputs."""
    path = board_file or microbit_board_file()
    inputs: dict[str, int] = {}
    outputs: dict[str, int] = {}
    for name, pin in read_pins_literal(path).items():
        if pin not in MICROBIT_TO_P0:
            raise ValueError(f"{path}: {name} uses micro:bit pin {pin}, which has no GPIO line")
        (outputs if name in OUTPUT_BITS else inputs)[name] = MICROBIT_TO_P0[pin]
    missing = set(OUTPUT_BITS) - set(outputs)
    if missing:
        raise ValueError(f"{path}: PINS lacks light outputs {sorted(missing)}")
    return BoardPins(inputs=inputs, outputs=outputs)
