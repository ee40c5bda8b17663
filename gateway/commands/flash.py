"""Flash the seat firmware onto boards, many at once, verified (docs/fleet.md): as files over
serial (Pico, ESP32), or as a whole image through the board's USB interface chip (micro:bit
v1: `--image`, `--drive`, `--find-drives`, `--pyocd`).

Requirements: everything that can be refused before a board is touched is refused first, as
one line on stderr with exit status 2 (bad usage, a corrupt bundle or image, a bad
inventory). Each board's own failure is one line under the summary table; exit status 1 if
any board failed, 0 if every one succeeded. Progress is one bar per board on stderr (rich),
in port order; stdout carries the dry-run plan and the summary only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table

from gateway.edge.inventory import InventoryError, load_inventory
from gateway.fleet.flash import (
    BoardProgress,
    BoardResult,
    BundleError,
    Firmware,
    FlashError,
    Job,
    Target,
    flash_many,
    load_bundle,
    write_bundle,
)
from gateway.fleet.image_flash import (
    DRIVE_ROOTS,
    Image,
    ImageJob,
    ImageResult,
    ImageTarget,
    default_image,
    find_drives,
    flash_images,
    load_image,
    pyocd_available,
    read_drive,
    serial_of_drive,
)

PROG = "seatlink flash"


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """argparse's own errors as one line too (it prints the usage first by default)."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{PROG}: {message} (see {PROG} --help)\n")

    parser.error = error  # type: ignore[method-assign]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _one_line_errors(parser)
    parser.add_argument(
        "ports", nargs="*", metavar="PORT",
        help="serial devices or pyserial URLs (socket://127.0.0.1:PORT for emulated boards)",
    )  # fmt: skip
    parser.add_argument(
        "--bundle", type=Path, metavar="FILE",
        help="firmware bundle to flash (default: the firmware of this checkout)",
    )  # fmt: skip
    parser.add_argument(
        "--write-bundle", type=Path, metavar="FILE",
        help="write this checkout's firmware (every board type) as a bundle and exit",
    )  # fmt: skip
    parser.add_argument(
        "--firmware-version", metavar="VERSION",
        help="with --write-bundle: stamp this version (what the seats' hello will say) "
             "instead of firmware/tx.py's, e.g. 0.1.0+site.3; with an image: the version its "
             "hello must say (and, without --image, the version the image is built with)",
    )  # fmt: skip
    image = parser.add_argument_group(
        "micro:bit v1: a whole image through the board's USB interface chip (DAPLink)")
    image.add_argument(
        "--image", type=Path, metavar="FILE.hex",
        help="the image to flash (Intel HEX); default: this checkout's micro:bit v1 image "
             "(gateway.image.build_image)",
    )  # fmt: skip
    image.add_argument(
        "--drive", type=Path, action="append", default=[], metavar="PATH",
        help="a board's mounted MICROBIT drive (repeat for more boards; the PORTs, if given, "
             "in the same order)",
    )  # fmt: skip
    image.add_argument(
        "--find-drives", action="store_true",
        help=f"flash every MICROBIT drive mounted under {', '.join(map(str, DRIVE_ROOTS))}",
    )  # fmt: skip
    image.add_argument(
        "--pyocd", action="store_true",
        help="flash through CMSIS-DAP with pyOCD instead of the drive (pip install pyocd)",
    )  # fmt: skip
    image.add_argument(
        "--probe", action="append", default=[], metavar="UID",
        help="with --pyocd: a board's probe unique id (repeat; the PORTs in the same order)",
    )  # fmt: skip
    image.add_argument(
        "--check", choices=("hello", "repl", "none"), default="hello",
        help="after the flash: wait for the seat's hello on the version (default), for a "
             "plain MicroPython REPL, or nothing",
    )  # fmt: skip
    image.add_argument("--hello-timeout", type=float, default=30.0, metavar="S",
                       help="seconds the board has to say hello after the flash (default 30)")
    image.add_argument("--drive-timeout", type=float, default=90.0, metavar="S",
                       help="seconds DAPLink has to flash and bring its drive back "
                            "(default 90)")  # fmt: skip
    parser.add_argument(
        "-i", "--inventory", metavar="INVENTORY",
        help="look each board up: .toml, .json or sqlite:///path.db (the seat column)",
    )  # fmt: skip
    parser.add_argument(
        "--require-bound", action="store_true",
        help="refuse (and leave untouched) a board the inventory binds to no seat",
    )  # fmt: skip
    parser.add_argument("-j", "--jobs", type=int, metavar="N",
                        help="boards flashed at once (default: all)")
    parser.add_argument("--attempts", type=int, default=3, metavar="N",
                        help="tries at entering the raw REPL (default 3)")
    parser.add_argument("--repl-timeout", type=float, default=2.0, metavar="S",
                        help="seconds each try waits for a prompt (default 2)")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="read and hash each board's files, write nothing")
    parser.add_argument("--no-reset", action="store_true",
                        help="leave each board at its REPL instead of restarting the firmware")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="also write the results as JSON")


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        return _run(args, err)
    except _Refused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


class _Refused(Exception):
    """Refused before any board was touched: exit status 2."""


def _image_mode(args: argparse.Namespace) -> bool:
    return bool(args.image or args.drive or args.find_drives or args.pyocd or args.probe)


def _run(args: argparse.Namespace, err: Console) -> int:
    if _image_mode(args):
        return _run_image(args, err)
    if args.firmware_version is not None and args.write_bundle is None:
        raise _Refused("--firmware-version goes with --write-bundle, or with an image "
                       "(--image, --drive, --find-drives, --pyocd)")  # fmt: skip
    if args.write_bundle is not None:
        if args.ports or args.bundle:
            raise _Refused("--write-bundle takes no PORT and no --bundle")
        try:
            doc = write_bundle(args.write_bundle, version=args.firmware_version)
        except OSError as exc:
            raise _Refused(f"cannot write {args.write_bundle}: {exc.strerror}") from None
        except FlashError as exc:
            raise _Refused(str(exc)) from None
        sizes = ", ".join(f"{k} {len(v['files'])} files" for k, v in doc["boards"].items())
        print(f"wrote {args.write_bundle}: firmware {doc['firmware']}: {sizes}")
        return 0
    _check_usage(args)
    try:
        firmware = load_bundle(args.bundle) if args.bundle else Firmware.checkout()
    except BundleError as exc:
        raise _Refused(f"bundle refused, no board touched: {exc}") from None
    try:
        inventory = load_inventory(args.inventory, readonly=True) if args.inventory else None
    except InventoryError as exc:
        raise _Refused(f"inventory refused, no board touched: {exc}") from None
    job = Job(firmware=firmware, inventory=inventory, require_bound=args.require_bound,
              attempts=args.attempts, repl_timeout=args.repl_timeout, dry_run=args.dry_run,
              reset_after=not args.no_reset)  # fmt: skip
    targets = [Target(port) for port in args.ports]
    live = not args.no_progress and err.is_terminal
    with _Bars(args.ports, err, enabled=live) as bars:
        results = flash_many(targets, job, jobs=args.jobs, progress=bars.board)
    out = Console(width=None if sys.stdout.isatty() else 200)
    if args.dry_run:
        _print_plans(results, out)
    out.print(_table(results, dry_run=args.dry_run, source=firmware.source))
    for r in results:
        if r.error:
            out.print(f"{r.port}: {r.error}", markup=False, highlight=False, soft_wrap=True)
        for note in r.notes:
            out.print(f"{r.port}: note: {note}", markup=False, highlight=False, soft_wrap=True)
    if args.report is not None:
        args.report.write_text(json.dumps([r.as_json() for r in results], indent=1) + "\n")
    return 0 if all(r.ok for r in results) else 1


def _check_usage(args: argparse.Namespace) -> None:
    if not args.ports:
        raise _Refused("no PORT given (serial devices or socket://HOST:PORT URLs)")
    repeated = sorted({p for p in args.ports if args.ports.count(p) > 1})
    if repeated:
        raise _Refused(f"port given twice: {', '.join(repeated)}")
    if args.jobs is not None and args.jobs < 1:
        raise _Refused("--jobs must be at least 1")
    if args.attempts < 1:
        raise _Refused("--attempts must be at least 1")
    if args.repl_timeout <= 0:
        raise _Refused("--repl-timeout must be above 0")
    if args.require_bound and not args.inventory:
        raise _Refused("--require-bound needs --inventory")
    if args.report is not None and not args.report.parent.is_dir():
        raise _Refused(f"--report: no directory {args.report.parent}")


# --- micro:bit v1: a whole image -------------------------------------------------------------


def _run_image(args: argparse.Namespace, err: Console) -> int:
    targets = _image_targets(args)
    if args.hello_timeout <= 0 or args.drive_timeout <= 0:
        raise _Refused("--hello-timeout and --drive-timeout must be above 0")
    if args.jobs is not None and args.jobs < 1:
        raise _Refused("--jobs must be at least 1")
    if args.report is not None and not args.report.parent.is_dir():
        raise _Refused(f"--report: no directory {args.report.parent}")
    image = _image(args)
    try:
        inventory = load_inventory(args.inventory, readonly=True) if args.inventory else None
    except InventoryError as exc:
        raise _Refused(f"inventory refused, no board touched: {exc}") from None
    job = ImageJob(image=image, check=args.check, inventory=inventory,
                   drive_timeout=args.drive_timeout, hello_timeout=args.hello_timeout,
                   dry_run=args.dry_run)  # fmt: skip
    live = not args.no_progress and err.is_terminal
    with _Bars([t.name for t in targets], err, enabled=live) as bars:
        results = flash_images(targets, job, jobs=args.jobs, progress=bars.board)
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(_image_table(results, dry_run=args.dry_run, image=image))
    for r in results:
        for command in r.commands if args.dry_run else []:
            out.print(f"{r.port}: would {command}", markup=False, highlight=False,
                      soft_wrap=True)  # fmt: skip
        if r.error:
            out.print(f"{r.port}: {r.error}", markup=False, highlight=False, soft_wrap=True)
        for note in r.notes:
            out.print(f"{r.port}: note: {note}", markup=False, highlight=False, soft_wrap=True)
    if args.check == "hello" and image.version is None and not args.dry_run:
        out.print("note: no --firmware-version: a hello on any version was taken",
                  markup=False, highlight=False)  # fmt: skip
    if args.report is not None:
        args.report.write_text(json.dumps([r.as_json() for r in results], indent=1) + "\n")
    return 0 if all(r.ok for r in results) else 1


def _image_targets(args: argparse.Namespace) -> list[ImageTarget]:
    """The boards, paired with their serial ports; refused (nothing touched) when a pairing
    cannot be told or the options contradict each other."""
    if args.bundle or args.write_bundle:
        raise _Refused("--bundle and --write-bundle are files; an image goes alone "
                       "(--image FILE.hex)")  # fmt: skip
    if args.require_bound:
        raise _Refused("--require-bound cannot go with an image: the board's uid is known "
                       "only once it says hello; use --inventory to see its seat")  # fmt: skip
    if args.no_reset:
        raise _Refused("--no-reset cannot go with an image: DAPLink resets the board after "
                       "flashing it")  # fmt: skip
    ports: list[str] = list(args.ports)
    repeated = sorted({p for p in ports if ports.count(p) > 1})
    if repeated:
        raise _Refused(f"port given twice: {', '.join(repeated)}")
    pyocd = args.pyocd or bool(args.probe)
    if pyocd and (args.drive or args.find_drives):
        raise _Refused("--pyocd and a drive (--drive, --find-drives) are two ways to one end: "
                       "choose one")  # fmt: skip
    if pyocd:
        probes: list[str | None] = list(args.probe) or [None]
        if len(ports) > 1 and len(ports) != len(probes):
            raise _Refused(f"{len(probes)} --probe for {len(ports)} PORT(s): give each board's "
                           "probe (pyocd list), with the ports in the same order")  # fmt: skip
        if len(probes) > 1 and len(ports) != len(probes):
            raise _Refused(f"{len(probes)} --probe for {len(ports)} PORT(s): give each board's "
                           "serial port, in the probes' order")  # fmt: skip
        if not pyocd_available() and not args.dry_run:
            raise _Refused("pyOCD is not installed here (pip install pyocd); or copy the image "
                           "to the board's MICROBIT drive: --drive PATH")  # fmt: skip
        if len(probes) == 1 and len(ports) <= 1:
            return [ImageTarget(ports[0] if ports else None, probe=probes[0])]
        return [ImageTarget(port, probe=probe) for port, probe in zip(ports, probes, strict=True)]
    try:
        drives = [read_drive(p) for p in args.drive]
    except FlashError as exc:
        raise _Refused(f"no board touched: {exc}") from None
    if args.find_drives:
        found = [d for d in find_drives() if d.path not in {x.path for x in drives}]
        if not found and not drives:
            raise _Refused("no MICROBIT drive is mounted under "
                           f"{', '.join(map(str, DRIVE_ROOTS))}; plug the boards in, or give "
                           "--drive PATH")  # fmt: skip
        drives += found
    if not drives:  # --image alone
        raise _Refused("where to? give each board's MICROBIT drive (--drive PATH, or "
                       "--find-drives), or --pyocd")  # fmt: skip
    if len({d.path.resolve() for d in drives}) != len(drives):
        raise _Refused("a drive is given twice")
    if ports:
        if len(ports) != len(drives):
            raise _Refused(f"{len(drives)} drive(s) for {len(ports)} PORT(s): give one port per "
                           "drive, in the same order, or none (found from each drive)")
        return [ImageTarget(port, drive=d.path) for port, d in zip(ports, drives, strict=True)]
    targets = []
    for d in drives:
        port = d.serial or serial_of_drive(d.path)
        if port is None and args.check != "none":
            raise _Refused(f"cannot tell the serial port of the board whose drive is {d.path}: "
                           "give the PORTs, in the drives' order (or --check none)")
        targets.append(ImageTarget(port, drive=d.path))
    return targets


def _image(args: argparse.Namespace) -> Image:
    try:
        if args.image is not None:
            return load_image(args.image, version=args.firmware_version)
        return default_image(args.firmware_version)
    except FlashError as exc:
        raise _Refused(f"image refused, no board touched: {exc}") from None


def _image_table(results: list[ImageResult], *, dry_run: bool, image: Image) -> Table:
    title = (f"seatlink flash{' (dry run)' if dry_run else ''}: {image.source}, "
             f"{image.flash_bytes} bytes of flash")  # fmt: skip
    table = Table(title=title, title_justify="left")
    for name in ("#", "port", "via", "drive", "type", "uid", "seat", "firmware"):
        table.add_column(name, overflow="fold")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for i, r in enumerate(results, 1):
        outcome = "FAILED" if r.error else ("ok (dry run)" if dry_run else "ok")
        table.add_row(
            str(i), r.port, r.via, r.drive or "-", r.kind or "?", r.uid or "?", r.seat,
            r.version, f"{r.seconds:.2f}",
            f"[red]{outcome}[/]" if r.error else f"[green]{outcome}[/]",
        )  # fmt: skip
    return table


class _Bars:
    """One rich task per board, added in port order before any starts, so the bars stay
    grouped and in place however the workers finish."""

    def __init__(self, ports: list[str], console: Console, *, enabled: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[port]}", style="bold"),
            BarColumn(bar_width=24),
            DownloadColumn(),
            TextColumn("{task.description}"),
            console=console, disable=not enabled, transient=False,
        )  # fmt: skip
        self._tasks = [self._progress.add_task("waiting", total=None, port=p) for p in ports]

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def board(self, index: int) -> BoardProgress:
        return _Bar(self._progress, self._tasks[index])


class _Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def stage(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def planned(self, total: int) -> None:
        self._progress.update(self._task, total=total, completed=0)

    def advance(self, done: int) -> None:
        self._progress.advance(self._task, done)


def _print_plans(results: list[BoardResult], out: Console) -> None:
    for r in results:
        if r.error:
            continue
        write = ", ".join(r.written) or "nothing"
        line = f"{r.port}: would write {write}; {len(r.skipped)} unchanged"
        if r.removed:
            line += f"; would remove {', '.join(r.removed)}"
        out.print(line, markup=False, highlight=False, soft_wrap=True)
        for command in r.commands:
            out.print(f"{r.port}:   {command}", markup=False, highlight=False, soft_wrap=True)


def _table(results: list[BoardResult], *, dry_run: bool, source: str) -> Table:
    title = f"seatlink flash{' (dry run)' if dry_run else ''}: {source}"
    table = Table(title=title, title_justify="left")
    for name in ("#", "port", "type", "uid", "seat", "firmware"):
        table.add_column(name, overflow="fold")
    for name in ("written", "skipped", "verified", "seconds"):
        table.add_column(name, justify="right")
    table.add_column("result")
    for i, r in enumerate(results, 1):
        outcome = "FAILED" if r.error else ("ok (dry run)" if dry_run else "ok")
        table.add_row(
            str(i), r.port, r.kind or "?", r.uid or "?", r.seat, r.version,
            str(len(r.written)), str(len(r.skipped)), str(r.verified), f"{r.seconds:.2f}",
            f"[red]{outcome}[/]" if r.error else f"[green]{outcome}[/]",
        )  # fmt: skip
    return table
