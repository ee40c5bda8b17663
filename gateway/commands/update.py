"""Update seats' firmware remotely, through their gateways, with roll-back (docs/fleet.md).

Requirements: what can be refused before anything is sent is refused first, as one line on
stderr with exit status 2 (bad usage, a corrupt bundle, the broker away, a seat no gateway
reports, a job a gateway refused). Then one line per seat and stage on stderr while it
runs, and a summary table on stdout; exit status 1 unless every seat is done.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from gateway.contract.topics import DEFAULT_ROOT, TopicError, Topics
from gateway.fleet.flash import (
    BundleError,
    Firmware,
    bundle_document,
    firmware_version,
    load_bundle,
)
from gateway.fleet.inventory_tool import ToolError, parse_broker
from gateway.fleet.remote_update import UpdateRun, request_update

PROG = "seatlink update"
PASSWORD_ENV = "SEATLINK_MQTT_PASSWORD"  # never on the command line, where `ps` shows it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def error(message: str) -> NoReturn:
        parser.exit(2, f"{PROG}: {message} (see {PROG} --help)\n")

    parser.error = error  # type: ignore[method-assign]
    parser.add_argument("seats", nargs="+", metavar="SEAT", help="seats to update, in order")
    parser.add_argument("--broker", required=True, metavar="HOST:PORT",
                        help="the site's broker")  # fmt: skip
    parser.add_argument("--bundle", type=Path, metavar="FILE",
                        help="firmware bundle (default: the firmware of this checkout)")
    parser.add_argument("--site", default="site", help="the site in topics (default site)")
    parser.add_argument("--root", default=DEFAULT_ROOT,
                        help=f"the topic root (default {DEFAULT_ROOT})")  # fmt: skip
    parser.add_argument("--username", help=f"broker account (its password in ${PASSWORD_ENV})")
    parser.add_argument("--hello-deadline", type=float, default=60.0, metavar="S",
                        help="how long the new firmware has to say hello (5-600, default 60)")
    parser.add_argument("--idle-wait", type=float, default=300.0, metavar="S",
                        help="how long to wait for a seat's call to end before skipping it "
                             "(0-3600, default 300)")  # fmt: skip
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="stop following after this long (the gateways go on)")
    parser.add_argument("--json", action="store_true", help="the outcome as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True, highlight=False)
    try:
        if not 5 <= args.hello_deadline <= 600 or not 0 <= args.idle_wait <= 3600:
            raise ToolError("--hello-deadline is 5-600 s and --idle-wait 0-3600 s")
        if len(set(args.seats)) != len(args.seats):
            raise ToolError("a seat is listed twice")
        bundle = _bundle(args.bundle)
        broker = parse_broker(args.broker)
        topics = Topics(site=args.site, root=args.root)
        by = args.username or getpass.getuser()
        outcome = asyncio.run(request_update(
            broker=broker, topics=topics, seats=args.seats, bundle=bundle, by=by,
            hello_deadline_s=args.hello_deadline, idle_wait_s=args.idle_wait,
            username=args.username, password=os.environ.get(PASSWORD_ENV),
            on_progress=_Shown(err), timeout=args.timeout))  # fmt: skip
    except (ToolError, BundleError, TopicError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    refused = [j for j in outcome.jobs.values() if j.get("status") == "invalid"]
    for job in refused:
        print(f"{PROG}: gateway {job['gateway']} refused the job: {job['detail']}",
              file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps({"seats": outcome.seats, "jobs": outcome.jobs}, indent=1))
    else:
        _summary(outcome, args.seats)
    if refused and len(refused) == len(outcome.jobs):
        return 2
    return 0 if outcome.ok else 1


def _bundle(path: Path | None) -> dict[str, Any]:
    if path is None:
        firmware = Firmware.checkout()
        return bundle_document([firmware.for_kind(k) for k in firmware.kinds()],
                               version=firmware_version())  # fmt: skip
    load_bundle(path)  # checked whole here: a damaged bundle is refused before it is sent
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


class _Shown:
    """One line per seat and step on stderr; a line the same as the seat's last is left out."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last: dict[str, str] = {}

    def __call__(self, body: dict[str, Any]) -> None:
        stage = body["stage"]
        if stage == "writing" and body["total_bytes"]:
            what = f"writing {body['written_bytes']}/{body['total_bytes']} bytes"
        else:
            what = stage.replace("_", " ")
        detail = f": {body['detail']}" if body.get("detail") and stage != "writing" else ""
        line = f"{body['seat']} ({body['gateway']}): {what}{detail}"
        if self.last.get(body["seat"]) != line:
            self.last[body["seat"]] = line
            self.console.print(line, markup=False, soft_wrap=True)


def _summary(outcome: UpdateRun, seats: list[str]) -> None:
    table = Table(title="firmware update")
    for column in ("seat", "gateway", "board", "from", "to", "result", "detail"):
        table.add_column(column)
    gateway_of = {s: g for g, its in outcome.gateways.items() for s in its}
    for seat in seats:
        body = outcome.seats.get(seat, {})
        table.add_row(seat, gateway_of.get(seat, "-"), body.get("board") or "-",
                      body.get("from_version") or "-", body.get("to_version") or "-",
                      body.get("stage", "no answer"), body.get("detail", ""))  # fmt: skip
    Console(highlight=False, width=200).print(table)
