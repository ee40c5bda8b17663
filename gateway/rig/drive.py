"""An emulated board's DAPLink drive: a directory that flashes the .hex copied into it.

A micro:bit v1's USB interface chip (DAPLink) shows a drive, MICROBIT, with DETAILS.TXT and
MICROBIT.HTM on it. A .hex file copied there is flashed onto the target (a full chip erase:
the firmware, the filesystem and RAM are gone) and the target is reset into it; meanwhile
the drive goes away and comes back without the file, and with FAIL.TXT (the reason) if the
file was not a valid image. `EmulatedDrive` does the same with a directory, for an emulated
board (`QemuMicrobit.flash_image`), so `seatlink flash --drive` takes the same path for an
emulated board as for a real one:

1. it watches the directory for a file named *.hex (not hidden) that ends with the end-of-file
   record, or, cut short, has not changed for `settle_s`;
2. "unmounts": DETAILS.TXT, MICROBIT.HTM and any old FAIL.TXT go;
3. checks the file whole (gateway.rig.hexfile: records, checksums, addresses in the nRF51's
   flash and UICR, a vector table); a bad one is not flashed and FAIL.TXT says why;
4. flashes it (the callback), then removes it;
5. "remounts": MICROBIT.HTM and, last, DETAILS.TXT are back. A client waits for DETAILS.TXT
   with its file gone, then reads FAIL.TXT if there is one.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from gateway.rig.hexfile import HexError, read_image_file

__all__ = ["DETAILS", "FAIL", "HTM", "EmulatedDrive"]

log = logging.getLogger(__name__)

DETAILS = "DETAILS.TXT"
HTM = "MICROBIT.HTM"
FAIL = "FAIL.TXT"
_EOF_RECORD = b":00000001FF"


class EmulatedDrive:
    """`flash(path)` flashes the image at `path` onto the board (raising on failure); it is
    called from the drive's own thread. `parent`: where the drive's directory goes (default:
    a temp directory); the directory is removed at stop()."""

    def __init__(self, *, flash: Callable[[Path], None], serial: str, board: str = "micro:bit v1",
                 parent: Path | None = None, name: str = "MICROBIT", poll_s: float = 0.05,
                 settle_s: float = 1.0) -> None:  # fmt: skip
        self._flash = flash
        self._serial = serial
        self._board = board
        self._poll_s = poll_s
        self._settle_s = settle_s
        self.unique_id = "9900" + secrets.token_hex(22).upper()  # DAPLink's: board id first
        if parent is None:
            self._owned: Path | None = Path(tempfile.mkdtemp(prefix="seatlink-drive-"))
            self.path = self._owned / name
        else:
            self._owned = None
            self.path = parent / name
        self.path.mkdir(parents=True, exist_ok=False)
        self.flashes = 0  # images flashed
        self.failures = 0  # files refused or failed (FAIL.TXT)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, since)
        self._mount()

    def start(self) -> EmulatedDrive:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="daplink-drive",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (a flash under way finishes first) and remove the directory."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        shutil.rmtree(self._owned or self.path, ignore_errors=True)

    def __enter__(self) -> EmulatedDrive:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    # --- the drive's files -------------------------------------------------------------------

    def _mount(self) -> None:
        (self.path / HTM).write_text(
            "<!doctype html>\n<title>micro:bit</title>\n"
            "<p>An emulated micro:bit v1: copy a .hex file here to flash it.</p>\n")
        details = (f"# seatlink: an emulated {self._board}'s DAPLink drive\r\n"
                   f"Unique ID: {self.unique_id}\r\n"
                   f"Board: {self._board} (QEMU)\r\n"
                   f"Serial: {self._serial}\r\n")  # fmt: skip
        tmp = self.path / ".details.tmp"
        tmp.write_text(details)
        tmp.replace(self.path / DETAILS)  # a reader never sees half of it

    def _unmount(self) -> None:
        for name in (DETAILS, HTM, FAIL):
            (self.path / name).unlink(missing_ok=True)

    # --- the watcher -------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                ready = self._ready()
                if ready is not None:
                    self._take(ready)
            except OSError as exc:  # the directory went away under us: nothing to flash
                if self._stop.is_set():
                    return
                log.warning("emulated drive %s: %s", self.path, exc)

    def _ready(self) -> Path | None:
        """A .hex file written whole (it ends with the end-of-file record) or left cut short
        for settle_s; None while none is."""
        now = time.monotonic()
        found = {p.name: p for p in self.path.iterdir()
                 if p.suffix.lower() == ".hex" and not p.name.startswith(".")
                 and p.is_file()}  # fmt: skip
        for name in list(self._seen):
            if name not in found:
                del self._seen[name]
        for name, path in sorted(found.items()):
            stat = path.stat()
            key = (stat.st_size, stat.st_mtime_ns)
            seen = self._seen.get(name)
            if seen is None or seen[:2] != key:
                self._seen[name] = (*key, now)
                since = now
            else:
                since = seen[2]
            if _ends_with_eof(path) or now - since >= self._settle_s:
                return path
        return None

    def _take(self, path: Path) -> None:
        self._unmount()
        try:
            try:
                read_image_file(path)
                self._flash(path)
            except HexError as exc:
                self._fail(f"the hex file cannot be flashed: {_after_path(str(exc), path)}")
            except Exception as exc:  # the board's own failure: the drive stays usable
                self._fail(f"flashing failed: {exc}")
            else:
                self.flashes += 1
        finally:
            for other in self.path.iterdir():
                if other.suffix.lower() == ".hex" and other.is_file():
                    other.unlink(missing_ok=True)
            self._seen.clear()
            self._mount()

    def _fail(self, message: str) -> None:
        self.failures += 1
        log.warning("emulated drive %s: %s", self.path, message)
        (self.path / FAIL).write_text(f"error: {message}\r\ntype: user\r\n")


def _ends_with_eof(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - 32))
            tail = f.read()
    except OSError:
        return False
    return tail.rstrip().endswith(_EOF_RECORD) or tail.rstrip().endswith(_EOF_RECORD.lower())


def _after_path(message: str, path: Path) -> str:
    """read_image_file's message without the drive's own path in front."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
