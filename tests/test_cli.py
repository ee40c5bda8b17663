"""The installed `seatlink` console script, run as a user would run it."""

import subprocess
import sys
from pathlib import Path

from gateway import __version__

# The console script lives beside the interpreter running the tests (.venv/bin).
SEATLINK = Path(sys.executable).parent / "seatlink"


def seatlink(*args: str) -> subprocess.CompletedProcess[str]:
    assert SEATLINK.exists(), f"console script not installed: {SEATLINK}"
    return subprocess.run(
        [str(SEATLINK), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version_prints_version_and_exits_zero() -> None:
    r = seatlink("version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"seatlink {__version__}"
    assert __version__ == "0.1.0"


def test_unknown_subcommand_fails_with_message() -> None:
    r = seatlink("no-such-command")
    assert r.returncode != 0
    assert "invalid choice: 'no-such-command'" in r.stderr
    assert r.stdout == ""


def test_missing_subcommand_fails_with_usage() -> None:
    r = seatlink()
    assert r.returncode != 0
    assert "usage: seatlink" in r.stderr


def test_help_lists_registered_subcommands() -> None:
    r = seatlink("--help")
    assert r.returncode == 0
    for name in ("version", "emulate", "demo"):
        assert name in r.stdout
