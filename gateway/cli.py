"""The `seatlink` command line: one subcommand per module in gateway.commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol

from gateway import __version__
from gateway.commands import (
    api,
    core,
    demo,
    edge,
    emulate,
    flash,
    image,
    inventory,
    pbx,
    seats,
    update,
    version,
)


class Command(Protocol):
    """What a subcommand module provides (mypy checks each registered module against it)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# Registration: (subcommand name, module). Add new subcommands here.
COMMANDS: list[tuple[str, Command]] = [
    ("version", version),
    ("emulate", emulate),
    ("image", image),
    ("demo", demo),
    ("seats", seats),
    ("edge", edge),
    ("pbx", pbx),
    ("core", core),
    ("api", api),
    ("inventory", inventory),
    ("flash", flash),
    ("update", update),
]


def _summary(command: Command) -> str:
    doc = (command.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seatlink", description="Seat appliance gateway and services."
    )
    parser.add_argument("--version", action="version", version=f"seatlink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS:
        summary = _summary(command)
        sp = sub.add_parser(name, help=summary, description=summary)
        command.add_arguments(sp)
        sp.set_defaults(_run=command.run)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the subcommand, return its exit code."""
    args = build_parser().parse_args(argv)
    result: int = args._run(args)
    return result


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
