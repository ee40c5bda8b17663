"""The firmware bundle: what a micro:bit's file system and heap receive."""

from __future__ import annotations

import ast

import pytest

from gateway.bundle import constants, firmware_bundle, minify

# The micro:bit v1 file system measured on QEMU holds about 14-15 KB of files.
MICROBIT_FS_BYTES = 14_000


def test_bundle_is_valid_python_with_main_last() -> None:
    files = firmware_bundle()
    assert files[-1].name == "main.py"
    assert "board.py" in {f.name for f in files}
    for f in files:
        ast.parse(f.data, filename=f.name)


def test_bundle_fits_the_microbit_file_system() -> None:
    assert sum(len(f.data) for f in firmware_bundle()) < MICROBIT_FS_BYTES


def test_constants_are_inlined_and_their_names_gone() -> None:
    files = {f.name: f.data.decode() for f in firmware_bundle()}
    for name in ("READY", "NOANS", "HEARTBEAT_S", "RTO0"):
        assert not any(name in text for text in files.values()), name
    # the host-only pin table is not worth heap on the micro:bit
    assert "PINS" not in files["board.py"]


def test_host_only_table_kept_where_the_board_file_uses_it() -> None:
    files = {f.name: f.data.decode() for f in firmware_bundle(board="pico")}
    assert "PINS" in files["board.py"]


def test_constants_skip_rebound_names() -> None:
    found = constants({"m.py": "A = 1\nN = 0\ndef f():\n    global N\n    N = 2\n"})
    assert found == {"A": 1}


def test_constants_must_agree_across_modules() -> None:
    with pytest.raises(ValueError, match="two values"):
        constants({"a.py": "X = 1\n", "b.py": "X = 2\n"})


def test_minify_renames_locals_but_not_attributes_or_globals() -> None:
    src = "G = [0]\ndef f(count, step):\n    total = count.total + G[0]\n    return total * step\n"
    out = minify(src)
    ns: dict[str, object] = {}
    exec(compile(out, "m", "exec"), ns)

    class C:
        total = 5

    assert ns["f"](C(), 2) == 10  # type: ignore[operator]
    assert ".total" in out and "count" not in out and "step" not in out


def test_unknown_board_is_a_clear_error() -> None:
    expected = "unknown board 'nope'; known boards: esp32, microbit, pico"
    with pytest.raises(ValueError, match=expected):
        firmware_bundle(board="nope")
