"""Settings of `seatlink core`: a TOML file, with SEATLINK_CORE_* environment variables on top.

Everything has an embedded default: `seatlink core` alone stores every event of site `site`
from the broker on 127.0.0.1:1883 into `core.db` (SQLite) and keeps the KPIs live in UTC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.contract.topics import check_id
from gateway.core.alerts import AlertSettings
from gateway.core.store import MAX_SKEW_S
from gateway.core.targets import TargetSettings
from gateway.edge.settings import BrokerSettings
from gateway.settings_file import FileSettings, check_zone, local_db, read_settings, relative_to

ENV_PREFIX = "SEATLINK_CORE_"
MOVED_TO_TARGETS = ("ring_limit", "sl_threshold_s")  # top-level keys before [targets]


class CoreSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid")  # fmt: skip

    core: str = "core-1"  # this worker's id in topics (and its MQTT session)
    site: str = "site"
    root: str = "seatlink"
    broker: BrokerSettings = BrokerSettings()
    # SQLite (a path, sqlite:///relative.db, sqlite:////absolute.db) or postgresql://...;
    # several workers need PostgreSQL: one SQLite file has one writer
    store: str = "core.db"
    share_group: str = "seatlink-core"  # workers of one group split the events between them
    timezone: str = "UTC"  # the site's clock: 15-minute, hourly and daily intervals
    # ring_limit, sl_threshold_s and the report's targets: the site's one source of them
    targets: TargetSettings = TargetSettings()
    known_seats: list[str] | None = None  # None: any seat; else others' events are refused
    max_skew_s: Annotated[float, Field(ge=0)] = MAX_SKEW_S
    batch_max: Annotated[int, Field(ge=1, le=100_000)] = 2000  # messages per transaction
    batch_wait_s: Annotated[float, Field(gt=0, le=10)] = 0.05  # longest a message waits
    settle_s: Annotated[float, Field(ge=0, le=3600)] = 10.0  # a call's steps may lag this
    kpi_interval_s: Annotated[float, Field(gt=0)] = 2.0  # site and queue KPIs published
    agent_kpi_interval_s: Annotated[float, Field(gt=0)] = 15.0  # agents' KPIs, if changed
    health_interval_s: Annotated[float, Field(gt=0)] = 5.0
    open_alerts_max: Annotated[int, Field(ge=1, le=10_000)] = 500  # in alerts/open
    schedule: Path | None = None  # shift schedule (docs/attendance.md): shift-end alerts
    alerts: dict[str, Any] = {}  # thresholds (docs/alerts.md); empty: the seeds' defaults

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in MOVED_TO_TARGETS:
                if key in data:
                    raise ValueError(f"{key}: set it in the [targets] table "
                                     f"(targets.{key}, docs/core.md), not at the top")  # fmt: skip
        # the environment's old names would be ignored silently (no such field any more)
        for key in MOVED_TO_TARGETS:
            old = ENV_PREFIX + key.upper()
            if old in os.environ:
                raise ValueError(f"{old}: set {ENV_PREFIX}TARGETS__{key.upper()} instead "
                                 f"(targets.{key}, docs/core.md)")  # fmt: skip
        return data

    @field_validator("core", "site", "root", "share_group")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id("setting", value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("known_seats")
    @classmethod
    def _seats(cls, value: list[str] | None) -> list[str] | None:
        for seat in value or ():
            check_id("seat", seat)
        return value

    @field_validator("alerts")
    @classmethod
    def _alerts(cls, value: dict[str, Any]) -> dict[str, Any]:
        AlertSettings.from_mapping(value)  # its ValueError names the key
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def ring_limit(self) -> int:
        """`targets.ring_limit`: what the live KPIs count `within_ring_limit` with."""
        return self.targets.ring_limit

    @property
    def sl_threshold_s(self) -> float:
        """`targets.sl_threshold_s`: the live service level's T."""
        return self.targets.sl_threshold_s

    def alert_settings(self) -> AlertSettings:
        return AlertSettings.from_mapping(self.alerts)


def load_settings(config: Path | None = None, **overrides: Any) -> CoreSettings:
    """From `config` (TOML), the environment and `overrides`, in rising priority; relative
    paths in the file (a SQLite store, the schedule) are taken from the file's directory."""
    if config is None:
        return CoreSettings(**overrides)
    s = read_settings(CoreSettings, config, **overrides)
    rel = relative_to(config)
    return CoreSettings.model_validate({
        **s.model_dump(), "store": local_db(s.store, rel),
        "schedule": None if s.schedule is None else rel(s.schedule),
    })  # fmt: skip
