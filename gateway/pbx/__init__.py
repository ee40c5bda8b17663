"""PBX-side services of the gateway: the outbound compliance gate (issue 4)."""

from __future__ import annotations
