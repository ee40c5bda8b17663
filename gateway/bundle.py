"""The firmware bundle: what is written to a board's file system.

The micro:bit v1 keeps about 14 KB of files and compiles source on the board
into a ~9 KB heap, where every global name, identifier and statement costs
bytes (measured: ~30 B a global, ~94 B a function). So the readable source in
firmware/ is transformed on the way, as MicroPython's own const() would do,
but across modules:
- module-level integer constants (UPPER_CASE names assigned once to an int)
  are inlined as literals in every firmware module and their definitions and
  imports dropped;
- function arguments and locals get one-letter names (every identifier is
  interned on the board for good, and the same few letters serve everywhere);
- comments, blank lines and indentation are dropped.
The result is tested under CPython too (tests/firmware), so what the board
runs is what the tests run.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"

_WORDLIKE = {tokenize.NAME, tokenize.NUMBER, tokenize.STRING}


def constants(sources: Mapping[str, str]) -> dict[str, int]:
    """Module-level UPPER_CASE names bound once to an int literal, in any module."""
    found: dict[str, int] = {}
    for name, src in sources.items():
        tree = ast.parse(src, filename=name)
        rebound = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
        counts: dict[str, int] = {}
        candidates: dict[str, int] = {}
        for node in tree.body:
            for target, value in _assignments(node):
                counts[target] = counts.get(target, 0) + 1
                if value is not None and target.isupper():
                    candidates[target] = value
        for target, value in candidates.items():
            if counts[target] != 1 or target in rebound:
                continue
            if found.get(target, value) != value:
                raise ValueError(f"constant {target} has two values across firmware modules")
            found[target] = value
    return found


def _assignments(node: ast.stmt) -> list[tuple[str, int | None]]:
    if not isinstance(node, ast.Assign) or len(node.targets) != 1:
        return []
    target, value = node.targets[0], node.value
    if isinstance(target, ast.Name):
        return [(target.id, _int(value))]
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
        names = [t for t in target.elts if isinstance(t, ast.Name)]
        if len(names) == len(target.elts) == len(value.elts):
            return [(t.id, _int(v)) for t, v in zip(target.elts, value.elts, strict=True)
                    if isinstance(t, ast.Name)]
    return []


def _int(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


# Read by the host (rig, docs), never by the firmware: not worth heap on the board.
HOST_ONLY = frozenset({"PINS"})


def drop_constant_lines(source: str, consts: Mapping[str, int], modules: set[str]) -> str:
    """Remove the definitions of inlined constants, their imports and host-only tables."""
    lines = source.split("\n")
    tree = ast.parse(source)
    loads = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    for node in tree.body:
        start, end = node.lineno - 1, (node.end_lineno or node.lineno)
        names = [t for t, _ in _assignments(node)] or [
            t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)
        ]
        if names and all(n in consts or (n in HOST_ONLY and n not in loads) for n in names):
            lines[start:end] = [""] * (end - start)
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            keep = [a.name for a in node.names if a.name not in consts]
            text = f"from {node.module} import {', '.join(keep)}" if keep else ""
            lines[start:end] = [text] + [""] * (end - start - 1)
    return "\n".join(lines)


_SHORT = "abcdefghijklmnopqrstuvwxyz"


def local_names(source: str) -> list[tuple[int, int, dict[str, str]]]:
    """Per top-level function: its line range and a short name for each local."""
    tree = ast.parse(source)
    module_names = {
        t.id for node in tree.body for t in ast.walk(node) if isinstance(t, ast.Name)
    } | {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    scopes = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        declared = {n for g in ast.walk(node) if isinstance(g, ast.Global) for n in g.names}
        args = [a.arg for a in node.args.args]
        assigned = [
            n.id for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in declared
        ]
        local = list(dict.fromkeys(args + assigned))
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | module_names
        free = [c for c in _SHORT if c not in used or c in local]
        mapping: dict[str, str] = {}
        for name in local:
            if len(name) == 1:
                mapping[name] = name
                free.remove(name) if name in free else None
        for name in local:
            if name not in mapping:
                mapping[name] = free.pop(0)
        scopes.append((node.lineno, node.end_lineno or node.lineno, mapping))
    return scopes


def minify(source: str, consts: Mapping[str, int] | None = None) -> str:
    """Python source with the same meaning, in the fewest bytes we safely can."""
    consts = consts or {}
    scopes = local_names(source)
    out: list[str] = []
    line: list[str] = []
    depth = 0
    prev_type: int | None = None
    prev_text = ""
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
            text = tok.string
            if kind == tokenize.NAME and prev_text != ".":
                for first, last, mapping in scopes:
                    if first <= tok.start[0] <= last and text in mapping:
                        text = mapping[text]
                        break
                else:
                    if text in consts:
                        text, kind = str(consts[text]), tokenize.NUMBER
            if prev_type in _WORDLIKE and kind in _WORDLIKE:
                line.append(" ")
            line.append(text)
            prev_type = kind
            prev_text = tok.string
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


def _transform(source: str, consts: Mapping[str, int], modules: set[str]) -> str:
    return minify(drop_constant_lines(source, consts, modules), consts)


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
    if not minified:
        return [BundleFile(name, sources[name].encode("ascii")) for name in names]
    consts = constants(sources)
    modules = {n.removesuffix(".py") for n in sources}
    return [
        BundleFile(name, _transform(sources[name], consts, modules).encode("ascii"))
        for name in names
    ]
