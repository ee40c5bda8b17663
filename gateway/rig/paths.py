"""Where the rig finds the project's own files: it runs from a source checkout."""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    # gateway/rig/paths.py -> the checkout that holds gateway/, firmware/ and boards/.
    return Path(__file__).resolve().parents[2]
