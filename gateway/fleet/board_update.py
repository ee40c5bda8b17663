"""One board's firmware replaced through its serial link, and put back if it must be
(the board half of the gateway's remote update, gateway/edge/firmware_update.py).

Requirements (issue 7, remote update):

- The board on the port is the one bound to the seat: its uid is read and checked before
  anything is read back or written.
- The previous version is what the board itself holds, read back before anything changes
  and checked against the board's own CRC-32 of every file. It is kept by the gateway: a
  micro:bit v1's ~15 KB filesystem cannot hold two ~8 KB firmware sets side by side.
- Writing is `seatlink flash`'s (gateway.fleet.flash): changed files only, each checked on
  the board, main.py removed first and written last, the whole set verified; then a hard
  reset. Putting the old set back is the same write with the backup as the set.
- Blocking serial I/O: called in a worker thread. Every failure is a FlashError whose text
  says what the board was left with.

Decisions: the raw REPL is reached the way the firmware allows (its Z exit frame, then
Ctrl-C); the board is not reset to get there (a gateway cannot reset a board on a
socket:// link, and a serial break on a USB link would reset the seat under the agent).
Only the micro:bit v1 path exists: RP2040 and ESP32 boards are updated with `seatlink
flash` until a board of either is at hand to test a remote path on.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Callable, Iterable, Iterator

import serial

from gateway.fleet.flash import (
    CRC_CODE,
    MAIN,
    QUIET,
    RAW_KIND,
    BoardProgress,
    BoardResult,
    FileSet,
    Firmware,
    FlashError,
    Identity,
    Job,
    _flash_raw,
    _identify_with_heap,
    _open_reason,
    _owned,
    _raw_listing,
    _restart,
    enter_raw,
    leave_firmware,
)
from gateway.rig.rawrepl import RawRepl, ReplError

__all__ = ["UpdateError", "read_back", "replace_firmware", "restore_firmware"]

ATTEMPTS = 3
REPL_TIMEOUT_S = 2.0
_PART = re.compile(r"fw(0|[1-9][0-9]*)")


def replace_firmware(url: str, *, uid: str, version: str, choose: Callable[[str], FileSet],
                     keep: Callable[[FileSet], None],
                     progress: BoardProgress = QUIET) -> BoardResult:  # fmt: skip
    """Read back the firmware of the board at `url` (which must report `uid`; `version` is
    what it runs, as its hello said) and hand it to `keep` before anything changes; then
    write `choose(board type)`. The board is restarted in any case: reset after a write,
    else soft-reset into the firmware it had. FlashError when the port or the REPL cannot
    be had (nothing changed); UpdateError for anything after that (its result's `changed`
    says whether the board's files were touched)."""

    def pick(repl: RawRepl, found: Identity) -> FileSet:
        if found.uid != uid:
            raise FlashError(f"the board on {url} is {found.uid}, not the seat's board {uid}")
        if found.kind != RAW_KIND:
            raise FlashError(f"a {found.kind} board is updated with seatlink flash, not "
                             "through the gateway")  # fmt: skip
        fileset = choose(found.kind)
        progress.stage("reading back the running firmware")
        keep(read_back(repl, kind=found.kind, version=version))
        return fileset

    return _write(url, pick, progress)


def restore_firmware(url: str, *, backup: FileSet,
                     progress: BoardProgress = QUIET) -> BoardResult:  # fmt: skip
    """Write `backup` (what replace_firmware kept) back onto the board at `url`, then
    restart it; errors as replace_firmware's."""

    def pick(repl: RawRepl, found: Identity) -> FileSet:
        if found.kind != backup.kind:
            raise FlashError(f"the board on {url} is a {found.kind}; the backup is for a "
                             f"{backup.kind}")  # fmt: skip
        return backup

    return _write(url, pick, progress)


def _write(url: str, pick: Callable[[RawRepl, Identity], FileSet],
           progress: BoardProgress) -> BoardResult:  # fmt: skip
    """The board at its raw REPL, identified; `pick` checks it and names the set to write,
    which is written as `seatlink flash` does; the board restarted whatever happened."""
    result = BoardResult(port=url)
    with _taken(url, progress) as repl:
        try:
            found = _identify_with_heap(repl, REPL_TIMEOUT_S, progress)
            result.kind, result.machine, result.uid = found.kind, found.machine, found.uid
            fileset = pick(repl, found)
            result.version = fileset.version
            _flash_raw(repl, fileset, _job(fileset), result, progress)
        except (FlashError, ReplError) as exc:
            raise UpdateError(str(exc), result) from None
        finally:
            _restart(repl, result, progress)
    return result


class UpdateError(FlashError):
    """A write that failed once it had begun: `result.changed` says whether the board's
    files were touched (main.py is then gone until a write completes)."""

    def __init__(self, message: str, result: BoardResult) -> None:
        super().__init__(message)
        self.result = result


def read_back(repl: RawRepl, *, kind: str, version: str) -> FileSet:
    """Every firmware file on the board (not its other files, such as the boot counter), in
    write order, each checked against the board's size and CRC-32 of it."""
    repl.exec(CRC_CODE)
    present = _raw_listing(repl)
    files: dict[str, bytes] = {}
    for name in _write_order(n for n in present if _owned(n)):
        data = repl.read_file(name)
        size, crc = present[name]
        if (len(data), f"{zlib.crc32(data):08x}") != (size, crc):
            raise FlashError(f"reading back {name}: {len(data)} bytes that differ from the "
                             f"board's own size and CRC-32 ({size}, {crc}): nothing changed")
        files[name] = data
    if not files:
        raise FlashError("the board holds no firmware to keep: nothing changed (flash it "
                         "with seatlink flash)")  # fmt: skip
    return FileSet(kind, version, files)


def _job(fileset: FileSet) -> Job:
    return Job(Firmware({fileset.kind: fileset}, source=f"firmware {fileset.version}"))


def _write_order(names: Iterable[str]) -> list[str]:
    listed = sorted(names)
    parts = sorted((n for n in listed if _PART.fullmatch(n)), key=lambda n: int(n[2:]))
    rest = [n for n in listed if n not in parts and n != MAIN]
    return parts + rest + ([MAIN] if MAIN in listed else [])


@contextlib.contextmanager
def _taken(url: str, progress: BoardProgress) -> Iterator[RawRepl]:
    """The board at the raw REPL: the firmware asked to leave its loop (Z), then Ctrl-C."""
    progress.stage("opening the port")
    try:
        repl = RawRepl.open(url)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise FlashError(f"cannot open {url}: {_open_reason(exc)}") from None
    try:
        progress.stage("stopping the firmware")
        leave_firmware(repl)
        enter_raw(repl, attempts=ATTEMPTS, timeout=REPL_TIMEOUT_S, reset=None,
                  progress=progress)  # fmt: skip
        yield repl
    finally:
        repl.close()
