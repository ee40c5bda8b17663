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
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.linker import NAMESPACE, Symbol, link

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
    # a local may take any name its own function does not use and no module-level code binds
    module_names = {
        t.id for node in tree.body if not isinstance(node, ast.FunctionDef)
        for t in ast.walk(node) if isinstance(t, ast.Name)
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
        pool = list(_SHORT) + [a + b for a in _SHORT for b in _SHORT]
        free = [c for c in pool if c not in used or c in local]
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


def minify(source: str) -> str:
    """Python source with the same meaning, in the fewest bytes we safely can."""
    scopes = local_names(source)
    out: list[tuple[int, str]] = []
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
                out.append((depth, "".join(line)))
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
            if prev_type in _WORDLIKE and kind in _WORDLIKE:
                line.append(" ")
            line.append(text)
            prev_type = kind
            prev_text = tok.string
    if line:
        out.append((depth, "".join(line)))
    return "".join(" " * d + text + "\n" for d, text in join_statements(out))


_COMPOUND = re.compile(r"(if|elif|else|for|while|try|except|finally|with|def|class)\b")


def join_statements(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Runs of simple statements as one line joined by ';', and a block of only simple
    statements on its header's line: on MicroPython every source line costs its
    line-number entry and more (measured on the micro:bit v1: 50 statements on one
    line took 224 bytes less heap than on 50 lines)."""
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        depth, text = lines[i]
        end = i + 1
        while end < len(lines) and lines[end][0] > depth:
            end += 1
        if end > i + 1:  # a compound statement with its block
            block = join_statements(lines[i + 1:end])
            if len(block) == 1 and block[0][0] == depth + 1 and _simple(block[0][1]):
                out.append((depth, text + block[0][1]))
            else:
                out.append((depth, text))
                out.extend(block)
        elif out and out[-1][0] == depth and _simple(out[-1][1]) and _simple(text) and (
            i == 0 or lines[i - 1][0] == depth
        ):
            out[-1] = (depth, out[-1][1] + ";" + text)
        else:
            out.append((depth, text))
        i = end
    return out


def _simple(text: str) -> bool:
    return not _COMPOUND.match(text)


@dataclass(frozen=True, slots=True)
class BundleFile:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def inline_constants(source: str, consts: Mapping[str, int], modules: set[str]) -> str:
    """The source without the constants' definitions and imports, their uses as literals."""

    class Inline(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            if node.id in consts:
                if not isinstance(node.ctx, ast.Load):
                    raise ValueError(f"constant {node.id} is assigned to")
                return ast.copy_location(ast.Constant(consts[node.id]), node)
            return node

    tree = ast.parse(drop_constant_lines(source, consts, modules))
    return ast.unparse(Inline().visit(tree)) + "\n"


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.py"))


@dataclass(frozen=True)
class Bundle:
    """What goes on a board, and where each firmware name went (see gateway.linker)."""

    files: list[BundleFile]
    symbols: dict[str, dict[str, Symbol]]
    file_of: dict[str, str]  # firmware module -> on-board module holding it

    def readable_names(self) -> dict[str, str]:
        """Short name -> `module.name` of firmware/ (for reports and tracebacks)."""
        return {s.short: f"{m}.{n}" for m, syms in self.symbols.items() for n, s in syms.items()}

    def module_sources(self) -> dict[str, str]:
        """The firmware's one namespace as one module source, for host instances: the
        parts in the order the board runs them, but for the last, which starts the main
        loop (a host starts it itself): `{NAMESPACE: text}`."""
        parts = [f.data.decode("ascii") for f in self.files if f.name.startswith(PART_PREFIX)]
        return {NAMESPACE: "".join(parts[:-1])}


_FW_LINE = re.compile(r"^FW = b'[^']*'$", re.MULTILINE)  # firmware/tx.py: the version
_VERSION_TEXT = re.compile(r"[0-9A-Za-z.+-]{1,32}")


def read_firmware_sources(board: str, *, version: str | None = None) -> dict[str, str]:
    """File name -> readable source: firmware/*.py and the board's file as board.py.
    `version`: stamp this version (what the hello says) instead of firmware/tx.py's own,
    as a release build does."""
    board_file = BOARDS_DIR / f"{board}.py"
    if not board_file.is_file():
        raise ValueError(f"unknown board {board!r}; known boards: {', '.join(board_names())}")
    sources = {p.name: p.read_text(encoding="ascii") for p in sorted(FIRMWARE_DIR.glob("*.py"))}
    sources["board.py"] = board_file.read_text(encoding="ascii")
    if version is not None:
        if not _VERSION_TEXT.fullmatch(version):
            raise ValueError(f"firmware version {version!r} is not 1-32 of A-Z a-z 0-9 . + -")
        stamped, n = _FW_LINE.subn(f"FW = b'{version}'", sources["tx.py"])
        if n != 1:
            raise ValueError("firmware/tx.py has no single FW = b'...' line to stamp")
        sources["tx.py"] = stamped
    return sources


_LINKED: dict[tuple[str, tuple[str, ...]], Bundle] = {}


def link_bundle(*, board: str = "microbit", version: str | None = None) -> Bundle:
    """The linked, minified firmware for `board`: constants inlined, modules merged and
    names shortened (gateway.linker), locals shortened, comments and lines dropped.
    Linking takes ~0.3 s, and test suites load hundreds of seats: the result is kept
    for as long as the sources stay the same. `version`: as read_firmware_sources."""
    sources = read_firmware_sources(board, version=version)
    key = (board, tuple(hashlib.sha256(s.encode()).hexdigest() for s in sources.values()))
    if key not in _LINKED:
        _LINKED[key] = _link(sources)
    return _LINKED[key]


PART_PREFIX = NAMESPACE
PART_BYTES = 300
"""Largest part the board compiles at once (bar one function larger than this, which gets a
part of its own). Compiling holds the part's text and its parse tree, about 4 bytes of heap
per byte of source (measured on QEMU), next to everything the earlier parts keep."""

# The boot stub the bundle installs as main.py: Ctrl-C still reaches the REPL for 0.3 s, so a
# board is reflashable whatever its firmware does; then every part is read and executed into
# one namespace; the last part calls the main loop. Files fw0, fw1 ... have no .py suffix:
# `import` never picks one up by itself.
LOADER = """import time
time.sleep_ms(300)
g = {}
i = 0
while 1:
    try:
        s = open('%s' + str(i)).read()
    except OSError:
        break
    exec(s, g)
    s = None
    i += 1
"""


def _link(sources: dict[str, str]) -> Bundle:
    consts = constants(sources)
    modules = {n.removesuffix(".py") for n in sources}
    inlined = {n.removesuffix(".py"): inline_constants(src, consts, modules)
               for n, src in sources.items() if n != "main.py"}
    linked = link({m: src for m, src in inlined.items() if m != "board"}, external=("board",))
    entry = linked.symbols["loop"]["run"].short
    parts = split_parts(minify(linked.files[NAMESPACE]), entry=entry)
    files = [BundleFile(f"{PART_PREFIX}{i}", p.encode("ascii")) for i, p in enumerate(parts)]
    files.append(BundleFile("board.py", minify(inlined["board"]).encode("ascii")))
    files.append(BundleFile("main.py", minify(LOADER % PART_PREFIX).encode("ascii")))
    return Bundle(files=files, symbols=linked.symbols, file_of=dict(linked.file_of))


def split_parts(source: str, *, entry: str, limit: int = PART_BYTES) -> list[str]:
    """Minified module source as parts the board executes one after another into one
    namespace: first every statement that is not a function definition (imports, tables;
    in their order, so each finds what it uses), then the functions, largest first (each
    compiled while the heap is emptiest), packed up to `limit` bytes a part; last a part
    that calls `entry`."""
    tree = ast.parse(source)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    data: list[str] = []
    defs: list[str] = []
    for node in tree.body:
        text = ast.get_source_segment(source, node) or ""
        if isinstance(node, ast.FunctionDef):
            defs.append(text + "\n")
            continue
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if used & functions:
            raise ValueError(f"module-level code uses a function before the parts define it: "
                             f"{text.strip()}")
        data.append(text)
    # Every global first bound at once: the namespace's hash table grows to its full size
    # while the heap is still whole, not in a late rehash that needs one more big block.
    bound = functions | {t.id for node in tree.body if not isinstance(node, ast.FunctionDef)
                         for t in ast.walk(node)
                         if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)}
    names = sorted(bound, key=lambda n: (len(n), n))
    data.insert(0, "=".join(names) + "=0")
    parts: list[str] = []
    for text in [";".join(data) + "\n"] + sorted(defs, key=len, reverse=True):
        if parts and len(parts[-1]) + len(text) <= limit:
            parts[-1] += text
        else:
            parts.append(text)
    if entry not in functions:
        raise ValueError(f"entry {entry} is not a function of the firmware")
    return parts + [f"{entry}()\n"]


def firmware_bundle(*, board: str = "microbit", minified: bool = True,
                    version: str | None = None) -> list[BundleFile]:  # fmt: skip
    """Every file a board gets: the firmware and the board support file as board.py;
    `minified=False` gives the readable modules of firmware/ as they are; `version`
    stamps another version than firmware/tx.py's (read_firmware_sources).

    main.py comes last, so a board never boots into a half-written firmware.
    """
    if minified:
        return link_bundle(board=board, version=version).files
    sources = read_firmware_sources(board, version=version)
    names = sorted(n for n in sources if n != "main.py") + ["main.py"]
    return [BundleFile(name, sources[name].encode("ascii")) for name in names]


def call_depth(source: str, *, entry: str) -> list[str]:
    """The deepest chain of calls between the firmware's own functions, from `entry`, as the
    function names in order (a function that calls itself counts once more). MicroPython 1.9
    on the micro:bit v1 spends ~240 bytes of its 1,800-byte C stack on every Python call
    (measured on QEMU), so this chain, not only the heap, decides whether the firmware runs.

    Calls are followed through names bound to a function anywhere (`b = AB` in a function,
    `F = AN` set at boot): a static, conservative reading of the linked namespace."""
    tree = ast.parse(source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    def assigns(node: ast.AST) -> list[tuple[str, str]]:
        return [(t.id, a.value.id) for a in ast.walk(node)
                if isinstance(a, ast.Assign) and isinstance(a.value, ast.Name)
                for t in a.targets if isinstance(t, ast.Name)]

    def close(aliases: dict[str, set[str]], pairs: list[tuple[str, str]]) -> None:
        grown = True
        while grown:  # through chains of names: a = AN; F = a
            grown = False
            for target, value in pairs:
                new = aliases.get(value, set()) - aliases.get(target, set())
                if new:
                    aliases.setdefault(target, set()).update(new)
                    grown = True

    # names every function sees: the functions, and globals bound to one (F = a, at boot)
    shared: dict[str, set[str]] = {name: {name} for name in functions}
    declared = {n for g in ast.walk(tree) if isinstance(g, ast.Global) for n in g.names}
    for fn in functions.values():
        local: dict[str, set[str]] = {k: set(v) for k, v in shared.items()}
        close(local, assigns(fn))
        for name in declared:
            shared.setdefault(name, set()).update(local.get(name, set()))
    close(shared, [p for p in assigns(tree) if p[0] in declared])

    def callees(fn: ast.FunctionDef) -> set[str]:
        aliases = {k: set(v) for k, v in shared.items()}
        pairs = assigns(fn)
        for target, _ in pairs:  # a local bound in this function hides the global
            if target not in declared and target not in functions:
                aliases.pop(target, None)
        close(aliases, pairs)
        return {c for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                for c in aliases.get(n.func.id, set())}

    graph = {name: callees(fn) for name, fn in functions.items()}
    best: dict[tuple[str, frozenset[str]], list[str]] = {}

    def deepest(name: str, path: frozenset[str]) -> list[str]:
        key = (name, path)
        if key not in best:
            chains = [deepest(c, path | {name}) if c not in path else [c]
                      for c in graph.get(name, ()) if c != name or name not in path]
            best[key] = [name] + max(chains, key=len, default=[])
        return best[key]

    if entry not in functions:
        raise ValueError(f"entry {entry} is not a function of the firmware")
    return deepest(entry, frozenset())
