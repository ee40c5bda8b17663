"""Flashing a whole image onto micro:bit v1 boards (`seatlink flash --image`, docs/fleet.md).

Requirements (issue 16):

- The seat firmware does not fit as files on a micro:bit v1, so the board takes one image,
  MicroPython with the firmware frozen into flash (gateway.image.build_image). The nRF51 has
  no bootloader on its UART: the image goes in through the board's USB interface chip.
- Through its DAPLink drive (MICROBIT, a mounted directory with DETAILS.TXT and MICROBIT.HTM):
  the .hex is copied there, flushed to the device (fsync), and the drive goes away while
  DAPLink flashes and resets the target, and comes back without the file; FAIL.TXT on it
  then says why DAPLink refused the file. An emulated board's drive (gateway.rig.drive)
  does the same.
- Or through CMSIS-DAP with pyOCD, when it is installed (optional: `pip install pyocd`).
- The image is checked whole before any board is touched (gateway.rig.hexfile). A full
  image erases the board: its filesystem goes too.
- Then the board must say hello on the image's version, on its serial port, within a
  deadline (its hello or heartbeat: both carry the version and the uid). A plain MicroPython
  image (no seat firmware) is checked at its REPL instead: os.uname() and the files left.
- Each board gets a worker; one line per board in the summary (port, board, result, seconds).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import serial

from gateway.edge.inventory import Inventory
from gateway.fleet.flash import (
    BOARD_ID,
    QUIET,
    BoardProgress,
    FlashError,
    Runner,
    firmware_version,
    one_board,
)
from gateway.rig.drive import DETAILS, FAIL, HTM
from gateway.rig.hexfile import HexError, read_image_file
from gateway.rig.rawrepl import RawRepl, ReplError, literal
from gateway.seatlink.codec import FrameError, Kind, decode, encode
from gateway.seatlink.messages import Heartbeat, Hello, MessageError, parse_message
from gateway.seatlink.receiver import LineSplitter

__all__ = [
    "DRIVE_ROOTS",
    "IMAGE_BOARDS",
    "Check",
    "Drive",
    "Image",
    "ImageJob",
    "ImageResult",
    "ImageTarget",
    "await_hello",
    "await_repl",
    "default_image",
    "find_drives",
    "flash_image_board",
    "flash_images",
    "image_only",
    "load_image",
    "pyocd_available",
    "pyocd_line",
    "read_drive",
    "serial_of_drive",
    "takes_image",
]

DRIVE_ROOTS = (Path("/media"), Path("/run/media"), Path("/mnt"))
"""Where desktop automounters (udisks: /media/USER/MICROBIT, /run/media/USER/MICROBIT) and
people (/mnt/MICROBIT) mount a micro:bit's drive."""
PYOCD_TARGET = "nrf51"
PYOCD_TIMEOUT_S = 300.0
COPY_CHUNK = 64 * 1024
PING_S = 1.0  # the seat answers a ping with a heartbeat (its version and uid)
HELLO_GRACE_S = 3.0  # after a heartbeat, how long the hello (the board's name) may take

Check = Literal["hello", "repl", "none"]

IMAGE_BOARDS = frozenset({"microbit"})
"""Board names (the hello's) of boards that take a whole image and keep no firmware files:
the micro:bit v1. Pico, ESP32 and virtual seats keep theirs as files (remote update)."""


def takes_image(board_name: str | None) -> bool:
    return board_name in IMAGE_BOARDS


def image_only(seats: Sequence[str]) -> str:
    """Why a remote update refuses micro:bit v1 seats, and how they are updated instead."""
    which = ", ".join(seats)
    return (f"{which}: micro:bit v1 seats take a whole image: seatlink flash --image "
            "FILE.hex --drive PATH at the desk (DAPLink); a remote update rewrites firmware "
            "files, which a micro:bit v1 does not keep")


# --- the image -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    path: Path
    version: str | None  # what the board's hello must say; None: any
    source: str  # for the summary's title
    size: int  # file bytes
    flash_bytes: int  # bytes it sets in flash


def load_image(path: Path, *, version: str | None, source: str | None = None) -> Image:
    """An image file, checked whole (FlashError with the reason: nothing touched)."""
    try:
        image = read_image_file(path)
    except HexError as exc:
        raise FlashError(str(exc)) from None
    what = source or f"image {path.name}" + (f" (firmware {version})" if version else "")
    return Image(path, version, what, path.stat().st_size, image.flash_bytes)


def default_image(version: str | None) -> Image:
    """The micro:bit v1 image of this checkout (`version` stamped), from
    gateway.image.build_image, looked up only now: FlashError if this checkout cannot build
    it."""
    try:
        module = importlib.import_module("gateway.image")
        build = module.build_image
    except (ImportError, AttributeError) as exc:
        raise FlashError(f"no --image given, and this checkout cannot build the micro:bit v1 "
                         f"image (gateway.image.build_image: {exc}); give one with --image "
                         "FILE.hex") from None  # fmt: skip
    try:
        built: Any = build(version)
    except Exception as exc:
        raise FlashError(f"building the micro:bit v1 image failed: {exc}") from None
    # build_image gives the .hex's path, or a record of the build with .path and .version
    path = Path(built.path) if hasattr(built, "path") else Path(built)
    said = str(getattr(built, "version", None) or version or firmware_version())
    return load_image(path, version=said, source=f"built image {path.name} (firmware {said})")


# --- DAPLink drives --------------------------------------------------------------------------


@dataclass(frozen=True)
class Drive:
    path: Path
    unique_id: str  # DETAILS.TXT's "Unique ID" (the interface chip's), or ""
    serial: str | None  # the board's serial port, when the drive tells (an emulated one)


def _named(directory: Path, name: str) -> Path | None:
    """`name` in `directory`, in any case (a FAT drive may show details.txt)."""
    exact = directory / name
    if exact.is_file():
        return exact
    try:
        return next((p for p in directory.iterdir() if p.name.upper() == name), None)
    except OSError:
        return None


def read_drive(path: Path) -> Drive:
    """The DAPLink drive mounted at `path`; FlashError if it is not one."""
    if not path.is_dir():
        raise FlashError(f"{path}: no such directory (is the MICROBIT drive mounted?)")
    details, htm = _named(path, DETAILS), _named(path, HTM)
    if details is None or htm is None:
        raise FlashError(f"{path}: not a micro:bit's DAPLink drive (no {DETAILS} and {HTM})")
    try:
        text = details.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FlashError(f"{details}: cannot read it: {exc.strerror}") from None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key.strip().lower()] = value.strip()
    return Drive(path, fields.get("unique id", ""), fields.get("serial") or None)


def find_drives(roots: Iterable[Path] = DRIVE_ROOTS) -> list[Drive]:
    """Mounted DAPLink drives under `roots`, at most two levels down (/media/USER/MICROBIT)."""
    found: list[Drive] = []
    for root in roots:
        for candidate in sorted([*root.glob("*"), *root.glob("*/*")]):
            try:
                if candidate.is_dir() and _named(candidate, DETAILS) and _named(candidate, HTM):
                    found.append(read_drive(candidate))
            except (OSError, FlashError):
                continue  # unreadable, or unmounted meanwhile
    return found


def serial_of_drive(path: Path, *, sys_root: Path = Path("/sys")) -> str | None:
    """The serial device of the USB interface chip whose drive is mounted at `path`: the
    tty (ttyACM*) under the same USB device as the drive's block device, from sysfs. None
    when it cannot be told (not a USB drive, no such tty)."""
    try:
        dev = os.stat(path).st_dev
        block = (sys_root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}").resolve()
    except OSError:
        return None
    usb = _usb_device(block)
    if usb is None:
        return None
    for tty in sorted((sys_root / "class" / "tty").glob("tty*")):
        try:
            if _usb_device((tty / "device").resolve()) == usb:
                return f"/dev/{tty.name}"
        except OSError:
            continue
    return None


def _usb_device(path: Path) -> Path | None:
    """The nearest ancestor of a sysfs device that is a USB device (it has idVendor)."""
    for candidate in (path, *path.parents):
        if (candidate / "idVendor").is_file():
            return candidate
    return None


def _copy_to_drive(drive: Drive, image: Image, *, timeout: float,
                   progress: BoardProgress) -> None:  # fmt: skip
    """Copy, fsync, and wait for the drive to come back without the file; FAIL.TXT: the
    reason DAPLink refused it."""
    name = image.path.name if image.path.suffix.lower() == ".hex" else "firmware.hex"
    target = drive.path / name
    progress.planned(image.size)
    progress.stage(f"copying to {drive.path}")
    try:
        with image.path.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                dst.write(chunk)
                progress.advance(len(chunk))
            dst.flush()
            os.fsync(dst.fileno())  # on the device, not in the page cache
    except OSError as exc:
        raise FlashError(f"cannot write {target}: {exc.strerror}") from None
    progress.stage("DAPLink flashing")
    end = time.monotonic() + timeout
    while True:
        back = _back(drive, name)
        if back is not None:
            break
        if time.monotonic() > end:
            raise FlashError(f"the drive did not come back within {timeout:g} s after the copy "
                             f"(DAPLink remounts it when it has flashed the board); look at "
                             f"{drive.path} for FAIL.TXT")  # fmt: skip
        time.sleep(0.05)
    fail = _named(back, FAIL)
    if fail is not None:
        try:
            text = " ".join(fail.read_text(errors="replace").split())
        except OSError:
            text = "(unreadable)"
        raise FlashError(f"DAPLink refused the image: {text}")


def _back(drive: Drive, name: str) -> Path | None:
    """Where the drive is mounted again, with the copied file gone; None while it is not."""
    places = [drive.path]
    if drive.unique_id and not drive.path.is_dir():  # remounted elsewhere (MICROBIT1)?
        places += [d.path for d in find_drives() if d.unique_id == drive.unique_id]
    for place in places:
        try:
            if _named(place, DETAILS) is not None and not (place / name).exists():
                return place
        except OSError:
            continue
    return None


# --- pyOCD (CMSIS-DAP) -----------------------------------------------------------------------


def pyocd_available() -> bool:
    return importlib.util.find_spec("pyocd") is not None


def pyocd_line(image: Path, probe: str | None) -> list[str]:
    """pyOCD's command line: a chip erase, the image, a reset. --no-wait: without it pyOCD
    waits for ever for a probe that is not plugged in (pyOCD 0.46)."""
    line = ["pyocd", "flash", "--no-wait", "--target", PYOCD_TARGET, "--erase", "chip",
            "--format", "hex"]  # fmt: skip
    if probe:
        line += ["--uid", probe]
    return [*line, str(image)]


def run_pyocd(argv: Sequence[str]) -> str:
    """pyOCD of this Python environment; FlashError with its last line of output."""
    command = [sys.executable, "-m", "pyocd", *argv[1:]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PYOCD_TIMEOUT_S,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FlashError(f"pyOCD took over {PYOCD_TIMEOUT_S:g} s: {shlex.join(argv)}") from None
    if done.returncode != 0:
        said = _pyocd_said(done.stdout, done.stderr)
        raise FlashError(f"pyOCD failed ({done.returncode}): {said}")
    return done.stdout


def _pyocd_said(stdout: str, stderr: str) -> str:
    """pyOCD's own words, without its log prefixes ("0000424 E ... [load_cmd]"): e.g. "No
    connected debug probe matches unique ID '...'; No target device available"."""
    said: list[str] = []
    for line in (stdout + "\n" + stderr).splitlines():
        text = re.sub(r"^\d+ [A-Z] ", "", line.strip())
        text = re.sub(r" \[\w+\]$", "", text)
        if text and text not in said:
            said.append(text)
    return "; ".join(said[-3:]) or "no output"


# --- after the flash: the board must come up --------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    version: str
    uid: str
    board: str | None  # the hello's board name; None from a heartbeat


def _open(port: str, end: float) -> serial.SerialBase:
    """The port, retried until `end` (a board being reset, a socket not listening yet)."""
    while True:
        try:
            opened: serial.SerialBase = serial.serial_for_url(port, timeout=0.05, baudrate=115200)
            return opened
        except (serial.SerialException, OSError, ValueError) as exc:
            if time.monotonic() > end:
                reason = re.split(r"\[Errno -?\d+\] ", str(exc))[-1]
                raise FlashError(f"cannot open {port} after the flash: {reason}") from None
            time.sleep(0.1)


def await_hello(port: str, *, timeout: float) -> Greeting:
    """The seat's hello, or a heartbeat (it is pinged every second), on `port` within
    `timeout` s: its version and uid. After a heartbeat the hello (which also names the
    board) gets HELLO_GRACE_S more: the seat resends it until a gateway acks it. Nothing is
    acked here: the gateway gets the hello later."""
    end = time.monotonic() + timeout
    link = _open(port, end)
    lines = LineSplitter()
    heard = b""
    beat: Greeting | None = None
    try:
        next_ping = 0.0
        while time.monotonic() < end:
            if beat is None and time.monotonic() >= next_ping:
                link.write(encode(0, Kind.PING))
                next_ping = time.monotonic() + PING_S
            data = link.read(512)
            heard = (heard + data)[-200:]
            for line, overlong in lines.feed(data):
                found = None if overlong else _greeting(line)
                if found is not None and found.board is not None:
                    return found
                if found is not None and beat is None:
                    beat = found
                    end = min(end, time.monotonic() + HELLO_GRACE_S)
    except (serial.SerialException, OSError) as exc:
        raise FlashError(f"{port}: the serial line failed waiting for the hello: {exc}") from None
    finally:
        link.close()
    if beat is not None:
        return beat
    if b">>> " in heard or b"MicroPython" in heard:
        raise FlashError(f"no hello within {timeout:g} s: the board is at a MicroPython REPL, "
                         "not in the seat firmware (a plain MicroPython image? --check repl)")
    what = f"; last heard {heard[-80:]!r}" if heard.strip() else "; nothing heard"
    raise FlashError(f"no hello from the seat firmware within {timeout:g} s{what}")


def _greeting(line: bytes) -> Greeting | None:
    try:
        frame = decode(line)
        if frame.kind not in (Kind.HELLO, Kind.HEARTBEAT):
            return None
        message = parse_message(frame)
    except (FrameError, MessageError):
        return None
    if isinstance(message, Hello):
        return Greeting(message.firmware, message.uid, message.board)
    if isinstance(message, Heartbeat) and message.uid is not None:
        return Greeting(message.firmware, message.uid, None)
    return None


REPL_IDENTIFY = ("import os,machine\nu=os.uname()\n" + BOARD_ID
                 + "print(repr((u[0],u[3],i,os.listdir())))\ndel u,i")  # fmt: skip


@dataclass(frozen=True)
class ReplGreeting:
    sysname: str
    version: str  # os.uname().version: MicroPython's version and build date
    uid: str
    files: tuple[str, ...]


def await_repl(port: str, *, timeout: float) -> ReplGreeting:
    """A plain MicroPython image: its REPL on `port` within `timeout` s, os.uname() (the
    build), the uid and the files on the board (none after a full flash)."""
    end = time.monotonic() + timeout
    while True:
        try:
            with RawRepl.open(port) as repl:
                repl.enter_raw(deadline=max(0.5, min(3.0, end - time.monotonic())))
                stdout, _ = repl.exec(REPL_IDENTIFY)
                repl.exit_raw()
            break
        except (ReplError, serial.SerialException, OSError) as exc:
            if time.monotonic() > end:
                raise FlashError(f"no MicroPython REPL on {port} within {timeout:g} s after the "
                                 f"flash: {exc}") from None  # fmt: skip
            time.sleep(0.1)
    try:
        sysname, version, uid, files = literal(stdout.strip())
        return ReplGreeting(str(sysname), str(version), bytes(uid).hex().upper(),
                            tuple(str(f) for f in files))  # fmt: skip
    except (ValueError, SyntaxError, TypeError):
        raise FlashError(f"the board's answer did not parse: {stdout.strip()[:120]!r}") from None


# --- the workers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageTarget:
    """One board: its serial port (for the check after the flash; None with check none) and
    how the image gets there: its DAPLink drive, or pyOCD (with the probe's unique id, or
    None for the only probe attached)."""

    port: str | None
    drive: Path | None = None
    probe: str | None = None

    @property
    def via(self) -> str:
        return "drive" if self.drive is not None else "pyocd"

    @property
    def name(self) -> str:
        return self.port or str(self.drive or self.probe or "pyocd")


@dataclass(frozen=True)
class ImageJob:
    image: Image
    check: Check = "hello"
    inventory: Inventory | None = None
    drive_timeout: float = 90.0  # DAPLink takes ~10-20 s for a 250 KB image
    hello_timeout: float = 30.0
    runner: Runner = run_pyocd
    dry_run: bool = False


@dataclass
class ImageResult:
    port: str
    via: str  # drive or pyocd
    drive: str = ""  # the drive's path (or the probe)
    kind: str = ""  # the board type the board then gave (its hello's name, or os.uname())
    uid: str = ""
    seat: str = ""
    version: str = ""  # what the board then said
    seconds: float = 0.0
    error: str | None = None
    files: list[str] | None = None  # files on the board after the flash (repl check)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "via": self.via, "drive": self.drive, "type": self.kind,
                "uid": self.uid, "seat": self.seat, "firmware": self.version,
                "seconds": round(self.seconds, 3), "ok": self.ok, "error": self.error,
                "files": self.files, "commands": self.commands, "notes": self.notes}  # fmt: skip


def flash_images(targets: Sequence[ImageTarget], job: ImageJob, *, jobs: int | None = None,
                 progress: Callable[[int], BoardProgress] | None = None,
                 ) -> list[ImageResult]:  # fmt: skip
    """Flash every target, `jobs` at a time (default: all); results in target order."""
    if not targets:
        return []
    workers = max(1, min(jobs or len(targets), len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image") as pool:
        futures = [pool.submit(flash_image_board, t, job, progress(i) if progress else QUIET)
                   for i, t in enumerate(targets)]  # fmt: skip
        return [f.result() for f in futures]


def flash_image_board(target: ImageTarget, job: ImageJob,
                      progress: BoardProgress = QUIET) -> ImageResult:  # fmt: skip
    """One board; never raises for the board's own failure (see `error`)."""
    result = ImageResult(port=target.port or "-", via=target.via,
                         drive=str(target.drive or target.probe or ""))  # fmt: skip
    result.error, result.seconds = one_board(lambda: _flash(target, job, result, progress))
    progress.stage(f"FAILED: {result.error}" if result.error else
                   "dry run: nothing written" if job.dry_run else "done")  # fmt: skip
    return result


def _flash(target: ImageTarget, job: ImageJob, result: ImageResult,
           progress: BoardProgress) -> None:  # fmt: skip
    if target.drive is not None:
        drive = read_drive(target.drive)
        result.drive = str(drive.path)
        if job.dry_run:
            result.commands.append(f"copy {job.image.path} to {drive.path}/ (DAPLink "
                                   f"{drive.unique_id or 'unique id unknown'})")  # fmt: skip
            return
        _copy_to_drive(drive, job.image, timeout=job.drive_timeout, progress=progress)
    else:
        line = pyocd_line(job.image.path, target.probe)
        result.commands.append(shlex.join(line))
        if job.dry_run:
            return
        progress.stage("pyOCD: erasing and flashing")
        job.runner(line)
    if job.check == "none" or target.port is None:
        result.notes.append("not checked after the flash (no serial port, or --check none)")
        return
    if job.check == "repl":
        progress.stage("waiting for the REPL")
        repl = await_repl(target.port, timeout=job.hello_timeout)
        result.kind = repl.sysname
        result.uid, result.version, result.files = repl.uid, repl.version, list(repl.files)
    else:
        progress.stage("waiting for the hello")
        hello = await_hello(target.port, timeout=job.hello_timeout)
        result.kind, result.uid, result.version = hello.board or "", hello.uid, hello.version
        if job.image.version is not None and hello.version != job.image.version:
            raise FlashError(f"the board came back on {hello.version}, not the image's "
                             f"{job.image.version}")  # fmt: skip
    _look_up(job.inventory, result)


def _look_up(inventory: Inventory | None, result: ImageResult) -> None:
    if inventory is None or not result.uid:
        return
    binding = inventory.by_board(result.uid)
    if binding is not None:
        result.seat = binding.seat
        return
    result.seat = "-"
    result.notes.append(f"board {result.uid} is bound to no seat: bind it with seatlink "
                        f"inventory -i {inventory.source} bind --seat SEAT --board "
                        f"{result.uid}")  # fmt: skip
