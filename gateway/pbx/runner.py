"""Which PBX service `seatlink pbx` runs, from its settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.pbx.ami_service import AmiService
from gateway.pbx.service import PbxService
from gateway.pbx.settings import PbxSettings


def build(settings: PbxSettings, *,
          wall: Callable[[], datetime] | None = None) -> PbxService | AmiService:  # fmt: skip
    """`wall`: the clock the compliance gate judges calling windows by (tests fix it)."""
    if settings.backend == "ami":
        return AmiService(settings)
    return PbxService(settings, wall=wall)
