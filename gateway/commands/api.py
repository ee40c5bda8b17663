"""Serve the supervisor API and wallboard, or add a personal account to it."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from gateway.api.settings import ENV_PREFIX, load_settings
from gateway.commands.edge import _run, serve_until_signal

PASSWORD_ENV = "SEATLINK_API_NEW_PASSWORD"  # --add-user without a prompt (provisioning)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, metavar="FILE",
        help=f"TOML settings file (docs/api.md); {ENV_PREFIX}* environment variables "
             "override it",
    )  # fmt: skip
    parser.add_argument("--add-user", metavar="USERNAME",
                        help="add a personal account, then exit (the password is asked for, "
                             f"or read from {PASSWORD_ENV}); it must change it at first "
                             "login unless it is the first admin")  # fmt: skip
    parser.add_argument("--role", choices=["agent", "supervisor", "facilities", "admin"],
                        default="agent")  # fmt: skip
    parser.add_argument("--full-name", metavar="NAME", help="the person's name (required)")
    parser.add_argument("--agent", metavar="ID", help="the agent id the core uses (agents)")
    parser.add_argument("--no-change", action="store_true",
                        help="the account need not change its password at first login (the "
                             "person chose it, or a demo)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    from gateway.api.accounts import AccountError, Role, StoreError, open_accounts
    from gateway.api.service import ApiService

    try:
        settings = load_settings(args.config)
        if args.add_user is not None:
            if not args.full_name:
                raise ValueError("--add-user needs --full-name: accounts are personal")
            password = os.environ.get(PASSWORD_ENV) or getpass.getpass(
                f"password for {args.add_user}: ")
            with open_accounts(settings.accounts) as accounts:
                first_admin = args.role == "admin" and accounts.admin_count() == 0
                user = accounts.create_user(
                    username=args.add_user, password=password, full_name=args.full_name,
                    role=Role(args.role), agent=args.agent,
                    must_change_password=not (first_admin or args.no_change))  # fmt: skip
                accounts.audit(action="user_create", outcome="ok", actor=None,
                               target=user.username, detail={"role": user.role.value,
                                                             "via": "command line"})  # fmt: skip
            print(f"added {user.username} ({user.role.value})")
            return 0
        service = ApiService(settings)
    except (ValidationError, ValueError, OSError, AccountError, StoreError) as exc:
        print(f"seatlink api: {exc}", file=sys.stderr)
        return 2
    return _run(serve_until_signal(service))
