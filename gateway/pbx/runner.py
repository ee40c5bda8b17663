"""Which PBX service `seatlink pbx` runs, from its settings."""

from __future__ import annotations

from gateway.pbx.service import PbxService
from gateway.pbx.settings import PbxSettings


def build(settings: PbxSettings) -> PbxService:
    return PbxService(settings)
