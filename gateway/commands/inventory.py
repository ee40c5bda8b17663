"""Bind boards to seats and locations, list the fleet, export and import CSV (docs/edge.md).

Requirements: every refusal is one line on stderr naming what is wrong, with exit status 2,
and changes nothing (checks run before anything is opened for writing; each change is one
transaction). Only an sqlite:/// inventory is written: a TOML or JSON one is edited by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from gateway.contract.topics import DEFAULT_ROOT, TopicError, Topics
from gateway.edge.inventory import (
    SQLITE_PREFIX,
    Inventory,
    InventoryDb,
    InventoryError,
    changes,
    check_entry,
    load_inventory,
)
from gateway.fleet.inventory_tool import (
    CsvProblems,
    ToolError,
    as_json,
    describe_changes,
    export_csv,
    parse_broker,
    read_csv,
    read_fleet,
    require_sqlite,
    rows,
    table,
)

PROG = "seatlink inventory"
PASSWORD_ENV = "SEATLINK_MQTT_PASSWORD"  # never on the command line, where `ps` shows it
_INVENTORY_HELP = "the inventory: a .toml or .json file, or sqlite:///path.db"


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """argparse's own errors as one line too (it prints the usage first by default)."""
    prog = parser.prog

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{prog}: {message} (see {prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _one_line_errors(parser)
    parser.add_argument("-i", "--inventory", metavar="INVENTORY", help=_INVENTORY_HELP)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=summary, description=summary)
        _one_line_errors(sp)
        # -i after the action too; SUPPRESS: not given here keeps the one given before it
        sp.add_argument("-i", "--inventory", metavar="INVENTORY", default=argparse.SUPPRESS,
                        help=_INVENTORY_HELP)  # fmt: skip
        return sp

    sp = action("list", "the seats with their boards, locations, firmware and last seen, and "
                        "the boards the gateways quarantined")  # fmt: skip
    sp.add_argument("--broker", metavar="HOST:PORT",
                    help="read firmware, last seen and online from this broker")
    sp.add_argument("--site", default="site", help="the site in topics (default site)")
    sp.add_argument("--root", default=DEFAULT_ROOT,
                    help=f"the topic root (default {DEFAULT_ROOT})")
    sp.add_argument("--username", help=f"broker account (its password in ${PASSWORD_ENV})")
    sp.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="give up on the broker after this long (default 5)")
    sp.add_argument("--json", action="store_true", help="JSON instead of a table")
    sp = action("bind", "bind a board to a seat (SQLite inventory)")
    sp.add_argument("--seat", required=True)
    sp.add_argument("--board", required=True, metavar="UID", help="the board's uid (hex)")
    sp.add_argument("--location", metavar="TEXT", help='e.g. "Floor 2, row C, desk 14"')
    sp.add_argument("--name", metavar="TEXT", help="a label for the desk")
    sp = action("unbind", "unbind a seat's board; the board is quarantined from then on")
    sp.add_argument("--seat", required=True)
    sp = action("move", "a board moved to another desk: settings, name and location stay "
                        "with the seat")  # fmt: skip
    sp.add_argument("--board", required=True, metavar="UID")
    sp.add_argument("--seat", required=True, help="the seat it is at now")
    both = sp.add_mutually_exclusive_group()
    both.add_argument("--swap", action="store_true",
                      help="the seat's board goes to the moved board's old seat")
    both.add_argument("--replace", action="store_true", help="the seat's board is unbound")
    sp = action("export", "write the inventory's bindings as CSV")
    sp.add_argument("--csv", required=True, type=Path, metavar="FILE")
    sp = action("import", "replace the SQLite inventory's bindings with a CSV's, all or "
                          "nothing")  # fmt: skip
    sp.add_argument("--csv", required=True, type=Path, metavar="FILE")
    sp.add_argument("--dry-run", action="store_true", help="print what would change, write "
                                                           "nothing")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        if not args.inventory:
            raise ToolError(f"-i INVENTORY is required ({_INVENTORY_HELP})")
        _ACTIONS[args.action](args)
    except CsvProblems as exc:
        for problem in exc.problems:
            print(f"{PROG} {args.action}: {problem}", file=sys.stderr)
        print(f"{PROG} {args.action}: {exc}", file=sys.stderr)
        return 2
    except (ToolError, InventoryError, TopicError) as exc:
        print(f"{PROG} {args.action}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG} {args.action}: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def _current(source: str) -> Inventory:
    """The SQLite inventory as it is (read-only), empty if its file does not exist yet."""
    if not Path(source.removeprefix(SQLITE_PREFIX)).exists():
        return Inventory(source, [])
    return load_inventory(source, readonly=True)


def _list(args: argparse.Namespace) -> None:
    inventory = load_inventory(args.inventory, readonly=True)
    fleet = None
    if args.broker is not None:
        if args.timeout <= 0:
            raise ToolError("--timeout must be more than 0 seconds")
        broker = parse_broker(args.broker)
        fleet = read_fleet(broker, Topics(site=args.site, root=args.root),
                           username=args.username, password=os.environ.get(PASSWORD_ENV),
                           timeout=args.timeout)  # fmt: skip
        for topic in fleet.skipped:
            print(f"{PROG} list: ignored {topic}: not a payload this seatlink reads",
                  file=sys.stderr)  # fmt: skip
    listing = rows(inventory, fleet)
    print(as_json(listing) if args.json else table(listing))


def _bind(args: argparse.Namespace) -> None:
    require_sqlite(args.inventory)
    b = check_entry("bind", {"seat": args.seat, "board": args.board, "name": args.name,
                             "location": args.location})  # fmt: skip
    current = _current(args.inventory)
    if (there := current.by_board(b.board)) is not None:
        raise ToolError(f"board {b.board} is bound already, to seat {there.seat}: unbind "
                        f"--seat {there.seat} first, or move --board {b.board} --seat "
                        f"{b.seat}")  # fmt: skip
    if (there := current.by_seat(b.seat)) is not None:
        raise ToolError(f"seat {b.seat} is bound already, to board {there.board}: unbind "
                        f"--seat {b.seat} first")  # fmt: skip
    with InventoryDb(args.inventory) as db:
        db.provision(b.board, b.seat, name=b.name, location=b.location)
    print(f"bound board {b.board} to seat {b.seat}")


def _unbind(args: argparse.Namespace) -> None:
    require_sqlite(args.inventory)
    with InventoryDb(args.inventory, create=False) as db:
        board = db.unbind(args.seat)
    print(f"unbound seat {args.seat} from board {board}; the board is quarantined from now on")


def _move(args: argparse.Namespace) -> None:
    require_sqlite(args.inventory)
    b = check_entry("move", {"seat": args.seat, "board": args.board})
    current = load_inventory(args.inventory, readonly=True)
    was = current.by_board(b.board)
    if was is None:
        raise ToolError(f"board {b.board} is not bound to any seat: bind --seat {b.seat} "
                        f"--board {b.board}")  # fmt: skip
    if was.seat == b.seat:
        raise ToolError(f"board {b.board} is at seat {b.seat} already")
    there = current.by_seat(b.seat)
    if there is not None and not (args.swap or args.replace):
        raise ToolError(f"seat {b.seat} has board {there.board}: --swap to send it to seat "
                        f"{was.seat}, or --replace to unbind it")  # fmt: skip
    with InventoryDb(args.inventory, create=False) as db:
        moved = db.move(b.board, b.seat, swap=args.swap, replace=args.replace)
    print(f"moved board {moved.board} from seat {moved.seat_from} to seat {moved.seat_to}")
    if moved.other is None:
        print(f"seat {moved.seat_to} had no entry: no name, location or settings of its own")
    elif moved.swapped:
        print(f"moved board {moved.other} from seat {moved.seat_to} to seat {moved.seat_from}")
    else:
        print(f"unbound board {moved.other}; it is quarantined from now on")
    if not moved.swapped or moved.other is None:
        print(f"seat {moved.seat_from} has no board now; its name, location and settings "
              "are dropped with its entry")  # fmt: skip


def _export(args: argparse.Namespace) -> None:
    inventory = load_inventory(args.inventory, readonly=True)
    count = export_csv(inventory, args.csv)
    print(f"exported {count} seats to {args.csv}")
    if inventory.defaults:
        defaults = ", ".join(f"{k.spec.name}={v}" for k, v in inventory.defaults.items())
        print(f"the inventory's defaults ({defaults}) are not in the CSV; an import leaves "
              "a database's defaults as they are")  # fmt: skip


def _import(args: argparse.Namespace) -> None:
    require_sqlite(args.inventory)
    wanted = read_csv(args.csv)
    if args.dry_run:
        for line in describe_changes(*changes(_current(args.inventory).seats, wanted)):
            print(line)
        print("dry run: nothing written")
        return
    _current(args.inventory)  # a current inventory that does not load: refused before opening
    with InventoryDb(args.inventory) as db:
        done = db.replace_all(wanted)
    for line in describe_changes(*done):
        print(line)


_ACTIONS = {"list": _list, "bind": _bind, "unbind": _unbind, "move": _move,
            "export": _export, "import": _import}  # fmt: skip
