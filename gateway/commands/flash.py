"""Flash the seat firmware onto boards over serial, many at once, verified (docs/fleet.md).

Requirements: everything that can be refused before a board is touched is refused first, as
one line on stderr with exit status 2 (bad usage, a corrupt bundle, a bad inventory). Each
board's own failure is one line under the summary table; exit status 1 if any board failed,
0 if every one succeeded. Progress is one bar per board on stderr (rich), in port order;
stdout carries the dry-run plan and the summary only.
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
             "instead of firmware/tx.py's, e.g. 0.1.0+site.3",
    )  # fmt: skip
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


def _run(args: argparse.Namespace, err: Console) -> int:
    if args.firmware_version is not None and args.write_bundle is None:
        raise _Refused("--firmware-version goes with --write-bundle")
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
