"""The site's targets as a settings section: the `[targets]` table of the core's settings
(docs/core.md), the one place the ring limit, the service level's T and the report's other
targets are set. The live KPIs, the daily report (`seatlink core --report`) and the API
(which reads them from the core's settings file, docs/api.md) all take them from here.

Each field is a field of `report.Targets`, with its default: the seeds' (docs/report.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.report import Targets

_SEEDS = Targets()

Share = Annotated[float, Field(ge=0, le=1)]  # 0..1, not percent
Seconds = Annotated[float, Field(ge=0, le=86400)]


class TargetSettings(BaseModel):
    """`[targets]`: a wrong key or value is refused, naming it (`targets.ring_limit`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # answer within N rings (seed 002 §二.2): defines `within_ring_limit`
    ring_limit: Annotated[int, Field(ge=1, le=10)] = _SEEDS.ring_limit
    within_ring_limit: Share = _SEEDS.within_ring_limit  # share answered within ring_limit
    avg_rings: Annotated[float, Field(ge=0, le=100)] = _SEEDS.avg_rings
    avg_acw_s: Seconds = _SEEDS.avg_acw_s
    max_hold_s: Seconds = _SEEDS.max_hold_s
    avg_talk_s: Seconds = _SEEDS.avg_talk_s
    # the service level's T: defines `service_level` and `service_level_abandoned`
    sl_threshold_s: Annotated[float, Field(ge=0, le=3600)] = _SEEDS.sl_threshold_s
    service_level: Share = _SEEDS.service_level

    def targets(self) -> Targets:
        """As the report takes them (`build_daily(targets=...)`)."""
        return Targets(**self.model_dump())
