"""The firmware bundle: what is written to a board's file system.

The micro:bit v1 keeps about 14 KB of files and compiles source on the board,
so the readable source in firmware/ is minified on the way (comments, blank
lines and indentation dropped; the tokens are unchanged, so the code is too).
"""

from __future__ import annotations

import hashlib
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"

_WORDLIKE = {tokenize.NAME, tokenize.NUMBER, tokenize.STRING}


def minify(source: str) -> str:
    """Python source with the same tokens, in the fewest bytes we safely can."""
    out: list[str] = []
    line: list[str] = []
    depth = 0
    prev_type: int | None = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = tok.type
        if kind == tokenize.INDENT:
            depth += 1
        elif kind == tokenize.DEDENT:
            depth -= 1
        elif kind == tokenize.NEWLINE:
            if line:
                out.append(" " * depth + "".join(line))
            line = []
            prev_type = None
        elif kind in (tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER, tokenize.ENCODING):
            continue
        else:
            if prev_type in _WORDLIKE and kind in _WORDLIKE:
                line.append(" ")
            line.append(tok.string)
            prev_type = kind
    if line:
        out.append(" " * depth + "".join(line))
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class BundleFile:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.py"))


def firmware_bundle(*, board: str = "microbit", minified: bool = True) -> list[BundleFile]:
    """Every firmware module plus the board support file installed as board.py.

    main.py comes last, so a board never boots into a half-written firmware.
    """
    board_file = BOARDS_DIR / f"{board}.py"
    if not board_file.is_file():
        raise ValueError(f"unknown board {board!r}; known boards: {', '.join(board_names())}")
    sources = {p.name: p.read_text(encoding="ascii") for p in sorted(FIRMWARE_DIR.glob("*.py"))}
    sources["board.py"] = board_file.read_text(encoding="ascii")
    names = sorted(n for n in sources if n != "main.py") + ["main.py"]
    return [
        BundleFile(name, (minify(sources[name]) if minified else sources[name]).encode("ascii"))
        for name in names
    ]
