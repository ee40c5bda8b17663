"""Run the PBX connector: the built-in call distributor and dialer (sim) or Asterisk (ami)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from gateway.commands.edge import _run, serve_until_signal
from gateway.pbx.scenario import ScenarioError
from gateway.pbx.settings import ENV_PREFIX, hash_code, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, metavar="FILE",
        help=f"TOML settings file (docs/pbx.md); {ENV_PREFIX}* environment variables "
             "override it",
    )  # fmt: skip
    parser.add_argument("--backend", choices=("sim", "ami"),
                        help="override the settings' backend")  # fmt: skip
    parser.add_argument("--hash-code", action="store_true",
                        help="read an authorisation code and print its hash for the "
                             "settings' [compliance.codes], then exit")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if args.hash_code:
        code = getpass.getpass("authorisation code: ") if sys.stdin.isatty() \
            else sys.stdin.readline().strip()
        if not code.isdigit():
            print("seatlink pbx: an authorisation code is digits only", file=sys.stderr)
            return 2
        print(hash_code(code))
        return 0
    overrides = {} if args.backend is None else {"backend": args.backend}
    try:
        settings = load_settings(args.config, **overrides)
        from gateway.pbx.runner import build

        service = build(settings)
    except (ValidationError, ScenarioError, ValueError, OSError) as exc:
        print(f"seatlink pbx: {exc}", file=sys.stderr)
        return 2
    return _run(serve_until_signal(service))
