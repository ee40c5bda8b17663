"""Subcommands of the `seatlink` CLI.

Each module here is one subcommand and exposes exactly two functions:

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

`run` returns the process exit code. To add a subcommand, write the module and add a
`(name, module)` entry to `gateway.cli.COMMANDS`; the first line of the module docstring is
the subcommand's help text.
"""
