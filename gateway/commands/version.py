"""Print the seatlink version."""

import argparse

from gateway import __version__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`version` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    print(f"seatlink {__version__}")
    return 0
