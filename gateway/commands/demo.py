"""Run the end-to-end demo (placeholder)."""

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments yet."""


def run(args: argparse.Namespace) -> int:
    print("seatlink demo: not yet available", file=sys.stderr)
    return 2
