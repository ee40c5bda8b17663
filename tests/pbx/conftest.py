"""The PBX's flow tests run the edge gateway too: its test helpers are shared from there."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "edge"))
