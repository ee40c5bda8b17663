"""The image's inputs: the firmware's constants written where they are used, so that no
module dict on the board's heap holds them, with every line where it was."""

from __future__ import annotations

import pytest

from gateway.image.build import ImageError, firmware_modules, inline_constants


def test_constants_are_inlined_in_place() -> None:
    sources = {
        "a.py": "X, Y = 3, 2\nZ = 'text'\n\n\ndef f(v):\n    return v * X ** Y + Z.count('t')\n",
        "b.py": "from a import X, f\nimport a\n\n\ndef g():\n    return f(X) + a.Z\n",
    }
    out = inline_constants(sources)
    assert out["a.py"].splitlines() == ["", "Z = 'text'", "", "", "def f(v):",
                                        "    return v * 3 ** 2 + Z.count('t')"]  # fmt: skip
    assert out["b.py"].splitlines() == ["from a import f", "import a", "", "",
                                        "def g():", "    return f(3) + a.Z"]  # fmt: skip
    ns: dict[str, object] = {}
    exec(out["a.py"], ns)
    assert ns["f"](2) == 2 * 3**2 + 2  # type: ignore[operator]


def test_a_constant_assigned_later_is_refused() -> None:
    with pytest.raises(ImageError, match="constant X is assigned to"):
        inline_constants({"a.py": "X = 1\n\n\ndef f():\n    for X in (1, 2):\n        pass\n"})


def test_the_firmware_keeps_its_line_numbers_and_no_constant_names() -> None:
    modules = firmware_modules()
    tx = modules["tx.py"]
    assert "HEAD, COUNT" not in tx and "L[0]" in tx  # L[HEAD] became L[0]
    from gateway.bundle import read_firmware_sources

    for name, text in read_firmware_sources("microbit").items():
        assert len(modules[name].splitlines()) == len(text.splitlines()), name
