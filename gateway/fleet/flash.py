"""Flashing seat boards over serial, many at once, verified by hash (`seatlink flash`).

Requirements (issue 7):

- Each port (a serial device, or a pyserial URL such as socket://127.0.0.1:PORT: emulated
  boards take the same path as real ones) gets a worker thread of its own, `jobs` at a time.
- The board says what it is: `os.uname()` gives its type, `machine.unique_id()` its stable
  identity, written as upper-case hex exactly as the firmware's hello sends it
  (firmware/loop.py, from board.UID), so the inventory's uids match the tool's.
- The files are the firmware of this checkout for that board type (gateway.bundle) or a
  bundle file (`load_bundle`); a bundle is checked whole before any board is touched.
- Every file is compared by hash first and only changed ones are written; each written file
  is checked by hash on the board, and the whole set once more at the end.
- main.py is removed before anything changes and written last, so a board reset or
  unpowered halfway never boots a mix of two firmware sets (as gateway.rig.board.install).
  So when any file changes, main.py is written again too.
- A board the tool refuses (unbound with `require_bound`, a type the bundle lacks) is
  refused before anything is written, and restarted into the firmware it had.

Decisions:

- micro:bit v1 (MicroPython 1.9.2) goes through gateway.rig.rawrepl: ring-sized execs and
  writes. That build has no hashlib, binascii or os.stat, so a CRC-32 (zlib's, with a
  16-entry table to spare the ~8 KB heap) runs on the board over each file in 64-byte reads,
  next to os.size: ~5 ms for a 300-byte part under QEMU. A CRC-32 is no defence against
  tampering; it tells a changed or damaged file, which is what is asked here.
- RP2040 (uname 'rp2', board file pico.py) and ESP32 ('esp32') are identified the same way,
  then hashed (SHA-256 on the board), written and reset through the mpremote command line
  (its documented interface). No such board is at hand: that path is exercised only by
  tests with a stand-in runner (the command lines and the parsing) and by `--dry-run`.
- Per-seat settings stay with the gateway (option b of the issue): the firmware takes them
  in G frames after its hello (docs/edge.md), and a settings file would cost heap the
  micro:bit v1 does not have (docs/seat.md). The tool looks the board up in the inventory:
  it shows the seat, and with `require_bound` refuses a board bound to no seat. The
  firmware version flashed is in the result (the summary and `--report`).
- Getting the REPL (`attempts`): Ctrl-C first; then the seat's Z exit frame (the firmware
  disables Ctrl-C 0.3 s after boot and leaves its loop on Z, docs/protocol.md) and, where
  the tool can reset the board, a reset with Ctrl-C sent as main.py starts: an emulated
  board's QMP reset (`Target.reset`), or a serial break on a local device, which the
  micro:bit's interface chip (DAPLink) takes as a target reset.
"""

from __future__ import annotations

import ast
import base64
import binascii
import functools
import hashlib
import json
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import serial

from gateway.bundle import FIRMWARE_DIR, PART_PREFIX, firmware_bundle
from gateway.edge.inventory import Inventory
from gateway.rig.board import FS_BYTES
from gateway.rig.rawrepl import RawRepl, RemoteError, ReplError, ReplTimeout, literal
from gateway.seatlink.codec import Kind, encode
from gateway.seatlink.messages import EXIT_MAGIC

__all__ = [
    "BUNDLE_FORMAT",
    "KINDS",
    "BoardProgress",
    "BoardResult",
    "BundleError",
    "FileSet",
    "Firmware",
    "FlashError",
    "Identity",
    "Job",
    "Mpremote",
    "Plan",
    "Target",
    "firmware_version",
    "flash_board",
    "flash_many",
    "bundle_document",
    "load_bundle",
    "make_plan",
    "parse_bundle",
    "run_mpremote",
    "save_bundle",
    "write_bundle",
]

MAIN = "main.py"
KINDS: Mapping[str, str] = {"microbit": "microbit", "rp2": "pico", "esp32": "esp32"}
"""os.uname().sysname -> board type (the board file boards/<type>.py)."""
RAW_KIND = "microbit"  # written through gateway.rig.rawrepl; the others through mpremote
BUNDLE_FORMAT = "seatlink-firmware-bundle"
BUNDLE_VERSION = 1
WRITE_ATTEMPTS = 3
RAW_HEAP_NEEDED = 6000
"""Heap free at the micro:bit's REPL below which the tool restarts it first: a bare board
has ~8,200 bytes; the hash routine and the listing take ~3 KB (measured on QEMU)."""
MPREMOTE_TIMEOUT_S = 120.0
_PART = re.compile(rf"{PART_PREFIX}(0|[1-9][0-9]*)")
_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,32}")


class FlashError(Exception):
    """One board could not be flashed; the message is one line for the summary."""


class BundleError(ValueError):
    """A bundle that cannot be used; nothing was touched."""


# --- what goes onto a board -----------------------------------------------------------------


@dataclass(frozen=True)
class FileSet:
    """One board type's files, in write order (main.py last)."""

    kind: str
    version: str
    files: Mapping[str, bytes]

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def firmware_version() -> str:
    """The firmware's version as its hello sends it (`FW` in firmware/tx.py)."""
    tree = ast.parse((FIRMWARE_DIR / "tx.py").read_text(encoding="ascii"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "FW"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, bytes)):  # fmt: skip
            return node.value.value.decode("ascii")
    raise ValueError("firmware/tx.py sets no FW = b'...'")


@functools.cache
def _owned_names() -> frozenset[str]:
    """Names a firmware set may hold besides the parts fw0, fw1, ...: main.py, board.py and
    the readable modules (an unminified install)."""
    return frozenset({MAIN, "board.py", *(p.name for p in FIRMWARE_DIR.glob("*.py"))})


def _owned(name: str) -> bool:
    """Whether `name` on a board belongs to some firmware set: a stale one is removed. Other
    files (the firmware's boot counter, an ESP32's boot.py or webrepl_cfg.py) are kept."""
    return name in _owned_names() or _PART.fullmatch(name) is not None


class Firmware:
    """File sets by board type: from this checkout (linked on first use per type) or from a
    bundle. Shared by the workers."""

    def __init__(self, sets: Mapping[str, FileSet] | None = None, *, source: str,
                 version: str | None = None) -> None:  # fmt: skip
        self.source = source
        self._sets: dict[str, FileSet] = dict(sets or {})
        self._from_checkout = sets is None
        self._version = version  # a checkout's firmware stamped with another version
        self._lock = threading.Lock()

    @classmethod
    def checkout(cls, *, version: str | None = None) -> Firmware:
        """This checkout's firmware; `version`: stamped with it instead of firmware/tx.py's
        own (a release build)."""
        return cls(source="this checkout", version=version)

    @property
    def version(self) -> str:
        if self._from_checkout:
            return self._version or firmware_version()
        return next(iter(self._sets.values())).version

    def for_kind(self, kind: str) -> FileSet:
        with self._lock:
            if kind not in self._sets and self._from_checkout:
                try:
                    built = firmware_bundle(board=kind, version=self._version)
                except ValueError as exc:
                    raise FlashError(str(exc)) from None
                self._sets[kind] = FileSet(kind, self.version, {f.name: f.data for f in built})
        found = self._sets.get(kind)
        if found is None:
            have = ", ".join(sorted(self._sets)) or "none"
            raise FlashError(f"{self.source} has no firmware for a {kind} board (it has: {have})")
        return found

    def kinds(self) -> list[str]:
        return sorted(KINDS.values()) if self._from_checkout else sorted(self._sets)


# --- bundles ---------------------------------------------------------------------------------
#
# A bundle is one JSON file:
#   {"format": "seatlink-firmware-bundle", "bundle_version": 1, "firmware": "0.1.0",
#    "boards": {"microbit": {"files": [{"name": "fw0", "size": 673,
#                                       "sha256": "<hex>", "data": "<base64>"}, ...]}, ...}}
# Files are listed in write order, main.py last.


def write_bundle(path: Path, *, kinds: Iterable[str] | None = None,
                 version: str | None = None) -> dict[str, Any]:  # fmt: skip
    """This checkout's firmware for `kinds` (default: every board type) as a bundle file;
    `version`: stamped with this version instead of firmware/tx.py's."""
    firmware = Firmware.checkout(version=version)
    doc = bundle_document([firmware.for_kind(k) for k in kinds or firmware.kinds()],
                          version=firmware.version)  # fmt: skip
    save_bundle(path, doc)
    return doc


def bundle_document(sets: Iterable[FileSet], *, version: str) -> dict[str, Any]:
    """File sets as a bundle document (the JSON of a bundle file)."""
    boards = {}
    for fileset in sets:
        boards[fileset.kind] = {"files": [
            {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "data": base64.b64encode(data).decode("ascii")}
            for name, data in fileset.files.items()]}  # fmt: skip
    return {"format": BUNDLE_FORMAT, "bundle_version": BUNDLE_VERSION, "firmware": version,
            "boards": boards}  # fmt: skip


def save_bundle(path: Path, doc: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="ascii")
    tmp.replace(path)  # a reader never sees half a bundle


def load_bundle(path: Path) -> Firmware:
    """The bundle's file sets, every file checked against its size and SHA-256; BundleError
    naming the file, the board type and the entry at fault."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{where}: cannot read the bundle: {exc.strerror}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: not a bundle: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{where}: not a bundle: bad JSON at line {exc.lineno} column "
                          f"{exc.colno}: {exc.msg} (truncated or damaged?)") from None  # fmt: skip
    return parse_bundle(doc, where=where, name=path.name)


def parse_bundle(doc: object, *, where: str, name: str = "") -> Firmware:
    """A bundle document (already JSON-decoded) as file sets, checked as load_bundle says;
    `where` starts every error message."""
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: not a seatlink firmware bundle (no \"format\": "
                          f"\"{BUNDLE_FORMAT}\")")  # fmt: skip
    if doc.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(f"{where}: bundle_version {doc.get('bundle_version')!r}; this "
                          f"seatlink reads {BUNDLE_VERSION}")  # fmt: skip
    version = doc.get("firmware")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise BundleError(f"{where}: firmware version {version!r} is not 1-32 of "
                          "A-Z a-z 0-9 . + -")  # fmt: skip
    boards = doc.get("boards")
    if not isinstance(boards, dict) or not boards:
        raise BundleError(f"{where}: \"boards\" must map board types to their files")
    sets = {}
    for kind, entry in boards.items():
        if kind not in KINDS.values():
            raise BundleError(f"{where}: unknown board type {kind!r} "
                              f"(known: {', '.join(sorted(KINDS.values()))})")  # fmt: skip
        sets[kind] = FileSet(kind, version, _bundle_files(f"{where}: {kind}", entry))
    what = f"bundle {name} " if name else "bundle "
    return Firmware(sets, source=f"{what}(firmware {version})")


def _bundle_files(where: str, entry: object) -> dict[str, bytes]:
    files = entry.get("files") if isinstance(entry, dict) else None
    if not isinstance(files, list) or not files:
        raise BundleError(f"{where}: \"files\" must be a non-empty list")
    out: dict[str, bytes] = {}
    for index, item in enumerate(files):
        at = f"{where} file {index + 1}"
        if not isinstance(item, dict):
            raise BundleError(f"{at}: must be an object with name, size, sha256, data")
        name = item.get("name")
        if not isinstance(name, str) or not _owned(name):
            raise BundleError(f"{at}: unknown file name {name!r} (a firmware set holds "
                              f"main.py, board.py, {PART_PREFIX}0, {PART_PREFIX}1, ... or "
                              "the modules of firmware/)")  # fmt: skip
        at = f"{where} {name}"
        if name in out:
            raise BundleError(f"{at}: listed twice")
        text = item.get("data")
        try:
            if not isinstance(text, str):
                raise ValueError
            data = base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise BundleError(f"{at}: data is not base64") from None
        if item.get("size") != len(data):
            raise BundleError(f"{at}: {len(data)} bytes, the manifest says "
                              f"{item.get('size')!r} (truncated?)")  # fmt: skip
        if item.get("sha256") != hashlib.sha256(data).hexdigest():
            raise BundleError(f"{at}: SHA-256 differs from the manifest's (damaged)")
        out[name] = data
    names = list(out)
    if names[-1] != MAIN:
        raise BundleError(f"{where}: main.py must be the last file (it is written last)")
    if "board.py" not in out:
        raise BundleError(f"{where}: no board.py")
    parts = sorted(int(n[len(PART_PREFIX):]) for n in names if _PART.fullmatch(n))
    if parts != list(range(len(parts))):
        # main.py's loader stops at the first missing part: the rest would never load
        raise BundleError(f"{where}: parts {PART_PREFIX}N are not numbered 0, 1, 2, ... "
                          f"without gaps: {parts}")  # fmt: skip
    total = sum(len(d) for d in out.values())
    if where.endswith(": microbit") and total > FS_BYTES:
        raise BundleError(f"{where}: {total} bytes; the micro:bit v1's filesystem holds "
                          f"about {FS_BYTES}")  # fmt: skip
    return out


# --- plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a board needs: `write` in order (main.py last), `skip` (same size and hash),
    `remove` (stale firmware files); `unarm`: main.py goes first."""

    write: tuple[str, ...]
    skip: tuple[str, ...]
    remove: tuple[str, ...]
    unarm: bool

    @property
    def changes(self) -> bool:
        return bool(self.write or self.remove)


def make_plan(
    files: Mapping[str, bytes],
    present: Mapping[str, tuple[int, str]],
    digest: Callable[[bytes], str],
) -> Plan:
    """`present`: the board's files as name -> (size, hash); `digest`: the same hash here."""
    changed = [n for n in files if present.get(n) != (len(files[n]), digest(files[n]))]
    stale = tuple(sorted(n for n in present if n not in files and _owned(n)))
    if not changed and not stale:
        return Plan((), tuple(files), (), False)
    write = tuple([n for n in changed if n != MAIN] + [MAIN])
    skip = tuple(n for n in files if n not in write)
    return Plan(write, skip, stale, MAIN in present)


def _crc32_hex(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- results and progress --------------------------------------------------------------------


@dataclass
class BoardResult:
    port: str
    kind: str = ""
    machine: str = ""
    uid: str = ""
    seat: str = ""
    version: str = ""
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    verified: int = 0
    seconds: float = 0.0
    error: str | None = None
    dry_run: bool = False
    changed: bool = False  # something on the board was removed or written
    commands: list[str] = field(default_factory=list)  # mpremote lines run (or, dry run, not)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "type": self.kind, "machine": self.machine,
                "uid": self.uid, "seat": self.seat, "firmware": self.version,
                "written": self.written, "skipped": self.skipped, "removed": self.removed,
                "verified": self.verified, "seconds": round(self.seconds, 3),
                "ok": self.ok, "error": self.error, "dry_run": self.dry_run,
                "commands": self.commands, "notes": self.notes}  # fmt: skip


class BoardProgress(Protocol):
    """One board's progress: a stage's name, then the bytes to write and written."""

    def stage(self, text: str) -> None: ...

    def planned(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


class _Quiet:
    def stage(self, text: str) -> None:
        pass

    def planned(self, total: int) -> None:
        pass

    def advance(self, done: int) -> None:
        pass


QUIET: BoardProgress = _Quiet()

Runner = Callable[[Sequence[str]], str]
"""Runs an mpremote command line (argv[0] == "mpremote") and returns its stdout."""


def run_mpremote(argv: Sequence[str]) -> str:
    """The mpremote of this Python environment; FlashError with its last line of stderr."""
    command = [sys.executable, "-m", "mpremote", *argv[1:]]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=MPREMOTE_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FlashError(f"mpremote took over {MPREMOTE_TIMEOUT_S:g} s: "
                         f"{shlex.join(argv)[:200]}") from None  # fmt: skip
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise FlashError(f"mpremote failed ({done.returncode}): {said}")
    return done.stdout


@dataclass(frozen=True)
class Target:
    """A port to flash. `reset`: how to hard-reset the board, if the caller can (an emulated
    board's QMP reset); a local serial device gets a serial break instead."""

    port: str
    reset: Callable[[], None] | None = None


@dataclass(frozen=True)
class Job:
    firmware: Firmware
    inventory: Inventory | None = None
    require_bound: bool = False
    attempts: int = 3
    repl_timeout: float = 2.0
    dry_run: bool = False
    reset_after: bool = True
    runner: Runner = run_mpremote


# --- the workers ----------------------------------------------------------------------------


def flash_many(
    targets: Sequence[Target],
    job: Job,
    *,
    jobs: int | None = None,
    progress: Callable[[int], BoardProgress] | None = None,
) -> list[BoardResult]:
    """Flash every target, `jobs` at a time (default: all at once); results in target order.
    A board's failure is in its result; only KeyboardInterrupt and the like escape."""
    if not targets:
        return []
    workers = max(1, min(jobs or len(targets), len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flash") as pool:
        futures = [pool.submit(flash_board, target, job, progress(i) if progress else QUIET)
                   for i, target in enumerate(targets)]  # fmt: skip
        results = [f.result() for f in futures]
    _note_shared_uids(results)
    return results


def _note_shared_uids(results: Sequence[BoardResult]) -> None:
    by_uid: dict[str, list[BoardResult]] = {}
    for r in results:
        if r.uid:
            by_uid.setdefault(r.uid, []).append(r)
    for uid, same in by_uid.items():
        if len(same) > 1:
            for r in same:
                others = ", ".join(o.port for o in same if o is not r)
                # two boards programmed with one id, or QEMU boards given the same one
                r.notes.append(f"uid {uid} is also reported by {others}: the gateway cannot "
                               "tell these boards apart")  # fmt: skip


def flash_board(target: Target, job: Job, progress: BoardProgress = QUIET) -> BoardResult:
    """Flash one board; never raises for the board's own failures (see `error`)."""
    result = BoardResult(port=target.port, dry_run=job.dry_run)
    result.error, result.seconds = one_board(lambda: _flash(target, job, result, progress))
    if result.error:
        progress.stage(f"FAILED: {result.error}")
    else:
        progress.stage("dry run: nothing written" if job.dry_run
                       else f"done: {len(result.written)} written, "
                            f"{len(result.skipped)} unchanged")  # fmt: skip
    return result


def one_board(work: Callable[[], None]) -> tuple[str | None, float]:
    """Run one board's work: (why it failed, or None; seconds taken). Never raises for the
    board's own failure: one board's surprise must not sink the others."""
    start = time.monotonic()
    error: str | None = None
    try:
        work()
    except FlashError as exc:
        error = str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {_one_line(exc)}"
    return error, time.monotonic() - start


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _flash(target: Target, job: Job, result: BoardResult, progress: BoardProgress) -> None:
    progress.stage("opening the port")
    try:
        repl = RawRepl.open(target.port)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise FlashError(f"cannot open {target.port}: {_open_reason(exc)}") from None
    entered = handed_over = False
    try:
        progress.stage("getting the REPL")
        reset = target.reset or _break_reset(target.port, repl)
        enter_raw(repl, attempts=job.attempts, timeout=job.repl_timeout, reset=reset,
                  progress=progress)  # fmt: skip
        entered = True
        progress.stage("identifying")
        found = _identify_with_heap(repl, job.repl_timeout, progress)
        result.kind, result.machine, result.uid = found.kind, found.machine, found.uid
        _check_binding(job.inventory, job.require_bound, result)
        fileset = job.firmware.for_kind(result.kind)
        result.version = fileset.version
        if result.kind != RAW_KIND:
            # mpremote needs the port: ours goes first (the board stays at its REPL)
            repl.close()
            handed_over = True
            _flash_mpremote(Mpremote(target.port, job.runner), fileset, job, result, progress)
            return
        _flash_raw(repl, fileset, job, result, progress)
    finally:
        if not handed_over:
            try:
                if entered and job.reset_after:
                    _restart(repl, result, progress)
            finally:
                repl.close()


def _open_reason(exc: BaseException) -> str:
    """The OS's reason alone: pyserial repeats the port and nests "[Errno n]" once or twice
    ("could not open port X: [Errno 2] could not open port X: [Errno 2] No such file...")."""
    text = _one_line(exc)
    return re.split(r"\[Errno -?\d+\] ", text)[-1] or text


def _break_reset(port: str, repl: RawRepl) -> Callable[[], None] | None:
    """A serial break on a local device: DAPLink (the micro:bit's USB chip) resets the
    target on one. A pyserial URL has no break (socket:// only sleeps)."""
    if "://" in port:
        return None
    send_break = getattr(repl.port, "send_break", None)
    if send_break is None:
        return None

    def reset() -> None:
        send_break(0.1)

    return reset


def enter_raw(
    repl: RawRepl,
    *,
    attempts: int,
    timeout: float,
    reset: Callable[[], None] | None,
    progress: BoardProgress = QUIET,
) -> None:
    """The raw REPL in at most `attempts` tries: Ctrl-C; then each retry sends the seat's
    Z exit frame first and, with `reset`, resets the board and sends Ctrl-C as main.py
    starts (before the firmware disables it)."""
    seen = b""
    for attempt in range(1, attempts + 1):
        try:
            if attempt > 1:
                progress.stage(f"no REPL prompt: attempt {attempt} of {attempts}")
                leave_firmware(repl)
                if reset is not None:
                    reset()
                    repl.interrupt_boot(deadline=timeout)
            repl.enter_raw(deadline=timeout)
            _absorb_interrupt(repl)
            return
        except ReplTimeout as exc:
            seen = exc.partial or seen
    how = "Ctrl-C, the Z exit frame" + (" and a reset" if reset is not None else "")
    heard = f"; last heard {seen[-60:]!r}" if seen else "; nothing heard from the board"
    raise FlashError(f"never entered the raw REPL in {attempts} attempt(s) of "
                     f"{timeout:g} s ({how}){heard}")  # fmt: skip


def _absorb_interrupt(repl: RawRepl) -> None:
    """Run nothing once. A Ctrl-C that lands just as a program ends leaves MicroPython 1.9 a
    pending KeyboardInterrupt, raised in whatever runs next (seen on QEMU when main.py is
    short): let it hit this, not the tool's first real exec."""
    repl.exec("pass", check=False)


def leave_firmware(repl: RawRepl) -> None:
    """Ask running seat firmware to leave its loop for the REPL: a Q (the seat takes any
    sequence after it) and a Z with its magic; a REPL just sees a line of junk."""
    frames = b"\n" + encode(1, Kind.SYNC) + encode(2, Kind.EXIT, (EXIT_MAGIC,))
    repl.port.write(frames)
    time.sleep(0.1)  # a loop pass or two, then Ctrl-C works again


# The board id as the firmware's hello sends it (boards/microbit.py): on a micro:bit v1 the UICR
# CUSTOMER[0..1] words when programmed (as the emulator's rig and facilities may), else
# machine.unique_id(). Other boards have no such words: mem32 there could fault.
BOARD_ID = ("i=machine.unique_id()\n"
            "if u[0]=='microbit':\n"
            " import ustruct\n"
            " w=ustruct.pack('>ii',machine.mem32[0x10001080],machine.mem32[0x10001084])\n"
            " if w!=b'\\xff'*8:i=w\n")
IDENTIFY = ("import os,machine,gc\nu=os.uname()\n" + BOARD_ID + "gc.collect()\n"
            "print(repr((u[0],u[4],i,gc.mem_free())))\ndel u,i")


@dataclass(frozen=True)
class Identity:
    kind: str  # board type (KINDS)
    machine: str  # os.uname().machine
    uid: str  # the board id (BOARD_ID) as upper-case hex, as the firmware's hello sends it
    free: int  # heap free at the REPL, bytes



def identify(repl: RawRepl) -> Identity:
    stdout, _ = repl.exec(IDENTIFY)
    try:
        sysname, machine, uid, free = literal(stdout.strip())
        if not (isinstance(sysname, str) and isinstance(machine, str)
                and isinstance(uid, bytes) and uid and isinstance(free, int)):  # fmt: skip
            raise ValueError
    except (ValueError, SyntaxError):
        raise FlashError(f"the board's identity did not parse: {stdout.strip()[:120]!r}") from None
    kind = KINDS.get(sysname)
    if kind is None:
        raise FlashError(f"unsupported board: os.uname() says {sysname!r} ({machine}); "
                         "seatlink flashes micro:bit v1, RP2040 and ESP32")  # fmt: skip
    return Identity(kind, machine, uid.hex().upper(), free)


def _identify_with_heap(repl: RawRepl, timeout: float, progress: BoardProgress) -> Identity:
    """The identity, on a micro:bit with the heap the tool needs. MicroPython 1.9 runs
    main.py in the REPL's namespace, so firmware that stopped (or was stopped) after loading
    leaves its parts there, and the hash routine no longer compiles. Then: a soft reset with
    Ctrl-C sent at once, which lands in main.py's 0.3 s wait, before anything is loaded."""
    try:
        found = identify(repl)
    except RemoteError as exc:
        if "MemoryError" not in str(exc):
            raise
        found = None
    if found is not None and (found.kind != RAW_KIND or found.free >= RAW_HEAP_NEEDED):
        return found
    progress.stage("heap full: soft reset, catching main.py")
    repl.soft_reset()
    repl.interrupt_boot(deadline=timeout)
    repl.enter_raw(deadline=timeout)
    _absorb_interrupt(repl)
    found = identify(repl)
    if found.kind == RAW_KIND and found.free < RAW_HEAP_NEEDED:
        raise FlashError(f"only {found.free} bytes of heap free at the REPL, even after a "
                         f"soft reset (the hash routine needs ~{RAW_HEAP_NEEDED})")  # fmt: skip
    return found


def _check_binding(inventory: Inventory | None, require: bool, result: BoardResult) -> None:
    if inventory is None:
        return
    binding = inventory.by_board(result.uid)
    if binding is not None:
        result.seat = binding.seat
        return
    if require:
        raise FlashError(f"board {result.uid} is bound to no seat in {inventory.source}; "
                         f"bind it first: seatlink inventory -i {inventory.source} bind "
                         f"--seat SEAT --board {result.uid}")  # fmt: skip
    result.seat = "-"
    result.notes.append(f"board {result.uid} is bound to no seat: the gateway will "
                        "quarantine it until it is")  # fmt: skip


def _restart(repl: RawRepl, result: BoardResult, progress: BoardProgress) -> None:
    """Back into the firmware: a hard reset after changes (fresh RAM and pins), else a soft
    reset (the tool only interrupted it)."""
    progress.stage("restarting")
    try:
        if result.changed:
            repl.hard_reset()
        else:
            repl.soft_reset()
    except ReplError as exc:
        result.notes.append(f"restart failed: {_one_line(exc)}")


# --- micro:bit v1: the raw REPL --------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(16):
        c = i
        for _ in range(4):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        table.append(c)
    return tuple(table)


# MicroPython 1.9 syntax (no f-strings); zlib's CRC-32, a nibble at a time. Ints past 2**30
# are boxed on the board, which costs time, not correctness.
CRC_CODE = (
    "def _h(n):\n"
    " t=(" + ",".join(f"{v:#x}" for v in _crc_table()) + ")\n"
    " c=0xffffffff\n"
    " f=open(n,'rb')\n"
    " while 1:\n"
    "  b=f.read(64)\n"
    "  if not b:break\n"
    "  for x in b:\n"
    "   c^=x\n"
    "   c=(c>>4)^t[c&15]\n"
    "   c=(c>>4)^t[c&15]\n"
    " f.close()\n"
    " return c^0xffffffff\n"
)
LIST_CODE = "import os\nfor _n in os.listdir():print(repr((_n,os.size(_n),_h(_n))))"


def _raw_listing(repl: RawRepl) -> dict[str, tuple[int, str]]:
    stdout, _ = repl.exec(LIST_CODE)
    out = {}
    for line in stdout.splitlines():
        if line.strip():
            name, size, crc = literal(line)
            out[str(name)] = (int(size), f"{int(crc):08x}")
    return out


def _flash_raw(
    repl: RawRepl, fileset: FileSet, job: Job, result: BoardResult, progress: BoardProgress
) -> None:
    files = fileset.files
    progress.stage("hashing the board's files")
    repl.exec(CRC_CODE)
    plan = make_plan(files, _raw_listing(repl), _crc32_hex)
    result.skipped = list(plan.skip)
    if job.dry_run:
        result.written, result.removed = list(plan.write), list(plan.remove)
        return
    progress.planned(sum(len(files[n]) for n in plan.write))
    if plan.changes:
        result.changed = True
        for name in ([MAIN] if plan.unarm else []) + list(plan.remove):
            progress.stage(f"removing {name}")
            repl.remove_file(name)
            if name != MAIN:
                result.removed.append(name)
        for name in plan.write:
            progress.stage(f"writing {name}")
            _write_checked(repl, name, files[name])
            result.written.append(name)
            progress.advance(len(files[name]))
    progress.stage("verifying")
    _verify(_raw_listing(repl), files, _crc32_hex, result)


def _write_checked(repl: RawRepl, name: str, data: bytes) -> None:
    """Write `name` and check its size and CRC-32 on the board; again on a mismatch."""
    want = (len(data), zlib.crc32(data))
    for _ in range(WRITE_ATTEMPTS):
        try:
            repl.write_file(name, data, verify=False)
        except RemoteError as exc:
            if _filesystem_full(exc):
                raise FlashError(f"the board's filesystem is full writing {name} (the "
                                 f"micro:bit v1 holds about {FS_BYTES} bytes; main.py "
                                 "removed, the board boots no firmware)") from None  # fmt: skip
            continue
        got = repl.eval(f"(os.size({name!r}),_h({name!r}))")
        if got == want:
            return
    raise FlashError(f"{name}: size or CRC-32 on the board still differs after "
                     f"{WRITE_ATTEMPTS} writes (main.py removed: the board boots no "
                     "firmware)")  # fmt: skip


def _filesystem_full(exc: RemoteError) -> bool:
    """MicroPython 1.9 on the micro:bit: "OSError: 28" when a file outgrows the free space
    (the file is then deleted), "no more storage space" when a new file finds none."""
    text = str(exc)
    return "no more storage space" in text or "OSError: 28" in text


def _verify(
    present: Mapping[str, tuple[int, str]],
    files: Mapping[str, bytes],
    digest: Callable[[bytes], str],
    result: BoardResult,
) -> None:
    bad = [n for n in files if present.get(n) != (len(files[n]), digest(files[n]))]
    result.verified = len(files) - len(bad)
    if bad:
        raise FlashError(f"verify failed: {', '.join(bad)} differ on the board after writing")
    stale = sorted(n for n in present if n not in files and _owned(n))
    if stale:
        raise FlashError(f"verify failed: stale firmware files remain: {', '.join(stale)}")


# --- RP2040 and ESP32: mpremote --------------------------------------------------------------

# Current MicroPython: hashlib, binascii and os.stat exist; a directory is listed with -1.
MPREMOTE_LIST_CODE = (
    "import os,hashlib,binascii\n"
    "for n in os.listdir():\n"
    " try:\n"
    "  h=hashlib.sha256()\n"
    "  with open(n,'rb') as f:\n"
    "   while 1:\n"
    "    b=f.read(256)\n"
    "    if not b:break\n"
    "    h.update(b)\n"
    "  print(repr((n,os.stat(n)[6],binascii.hexlify(h.digest()).decode())))\n"
    " except OSError:\n"
    "  print(repr((n,-1,'')))\n"
)


class Mpremote:
    """The mpremote command lines for one port (`mpremote connect PORT ...`)."""

    def __init__(self, port: str, runner: Runner = run_mpremote) -> None:
        self.port = port
        self.runner = runner

    def line(self, *args: str) -> list[str]:
        return ["mpremote", "connect", self.port, *args]

    def listing_line(self) -> list[str]:
        return self.line("exec", MPREMOTE_LIST_CODE)

    def listing(self) -> dict[str, tuple[int, str]]:
        out = {}
        for text in self.runner(self.listing_line()).splitlines():
            if text.startswith("("):
                name, size, digest = literal(text)
                if int(size) >= 0:
                    out[str(name)] = (int(size), str(digest))
        return out

    def write_line(self, plan: Plan, staged: Path) -> list[str]:
        """One mpremote run: remove main.py and stale files, copy the changed files into the
        root, main.py last."""
        args: list[str] = []
        removals = ([MAIN] if plan.unarm else []) + list(plan.remove)
        if removals:
            args += ["fs", "rm", *(":" + n for n in removals)]
        body = [str(staged / n) for n in plan.write if n != MAIN]
        if body:
            args += (["+"] if args else []) + ["fs", "cp", *body, ":"]
        if MAIN in plan.write:
            args += (["+"] if args else []) + ["fs", "cp", str(staged / MAIN), ":" + MAIN]
        return self.line(*args)

    def reset_line(self) -> list[str]:
        return self.line("reset")


def _flash_mpremote(
    tool: Mpremote, fileset: FileSet, job: Job, result: BoardResult, progress: BoardProgress
) -> None:
    files = fileset.files
    progress.stage("hashing the board's files (mpremote)")
    result.commands.append(_shown(tool.listing_line()))
    plan = make_plan(files, tool.listing(), _sha256_hex)
    result.skipped = list(plan.skip)
    if job.dry_run:
        result.written, result.removed = list(plan.write), list(plan.remove)
        if plan.changes:
            result.commands.append(_shown(tool.write_line(plan, Path("STAGED"))))
        if job.reset_after:
            result.commands.append(_shown(tool.reset_line()))
        return
    if plan.changes:
        progress.planned(sum(len(files[n]) for n in plan.write))
        progress.stage(f"writing {len(plan.write)} files (mpremote)")
        with tempfile.TemporaryDirectory(prefix="seatlink-flash-") as tmp:
            staged = Path(tmp)
            for name in plan.write:
                (staged / name).write_bytes(files[name])
            line = tool.write_line(plan, staged)
            result.commands.append(_shown(line))
            result.changed = True
            tool.runner(line)
        result.written, result.removed = list(plan.write), list(plan.remove)
        progress.advance(sum(len(files[n]) for n in plan.write))
    progress.stage("verifying (mpremote)")
    result.commands.append(_shown(tool.listing_line()))
    _verify(tool.listing(), files, _sha256_hex, result)
    if job.reset_after:
        result.commands.append(_shown(tool.reset_line()))
        tool.runner(tool.reset_line())


def _shown(argv: Sequence[str]) -> str:
    """A command line to print: the exec script is long, so it is named, not shown."""
    shown = ["<hash script>" if a == MPREMOTE_LIST_CODE else a for a in argv]
    return shlex.join(shown)
