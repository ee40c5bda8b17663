"""Settings of `seatlink api`: a TOML file, with SEATLINK_API_* environment variables on top.

Everything has an embedded default: `seatlink api` alone serves http://127.0.0.1:8080 for
site `site` on the broker at 127.0.0.1:1883, keeps accounts in `api.db` (SQLite) and reads
reports from the core's store `core.db`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.contract.topics import check_id
from gateway.core.report import Targets
from gateway.edge.settings import BrokerSettings
from gateway.settings_file import FileSettings, check_zone, local_db, read_settings, relative_to

ENV_PREFIX = "SEATLINK_API_"


class ApiSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid")  # fmt: skip

    api: str = "api-1"  # this instance's id (its MQTT client)
    site: str = "site"
    root: str = "seatlink"
    pbx: str = "pbx-1"  # the PBX bridge that takes Do-Not-Call additions
    broker: BrokerSettings = BrokerSettings()
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080  # 0: any free port (tests)
    # HTTPS (seeds: data encrypted in transit): both or neither
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    accounts: str = "api.db"  # SQLite path or sqlite:/// URL, or postgresql://...
    store: str = "core.db"  # the core's event store (reports, alert history)
    # the core's settings file: the site's [targets] (ring limit, service level's T, ...)
    # are read from it, so the API's figures are the core's; None: the seeds' defaults
    core_config: Path | None = None
    timezone: str = "UTC"
    schedule: Path | None = None  # shift schedule for attendance reports (docs/attendance.md)
    session_ttl_s: Annotated[float, Field(ge=60, le=7 * 86400)] = 8 * 3600.0
    command_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    ws_queue_max: Annotated[int, Field(ge=10, le=100_000)] = 1000  # per WebSocket client
    group_max: Annotated[int, Field(ge=1, le=10_000)] = 500  # seats in one group command
    alerts: dict[str, Any] = {}  # targets shown on the wallboard (docs/alerts.md)

    @field_validator("api", "site", "root", "pbx")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id("setting", value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: give both or neither")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def site_targets(self) -> Targets:
        """The site's targets, as the core reads them (its `[targets]`, with its
        SEATLINK_CORE_TARGETS__* on top), or a ValueError naming `core_config` and the key."""
        if self.core_config is None:
            return Targets()
        from gateway.core.settings import load_settings as load_core

        try:
            return load_core(self.core_config).targets.targets()
        except (ValidationError, ValueError, OSError) as exc:
            raise ValueError(f"core_config {self.core_config}: {exc}") from None


def load_settings(config: Path | None = None, **overrides: Any) -> ApiSettings:
    """From `config` (TOML), the environment and `overrides`, in rising priority; relative
    paths in the file are taken from the file's directory. The core's settings file
    (`core_config`) is read too: a mistake in its targets is a ValueError here, at start."""
    if config is None:
        settings = ApiSettings(**overrides)
        settings.site_targets()
        return settings
    s = read_settings(ApiSettings, config, **overrides)
    rel = relative_to(config)

    def opt(p: Path | None) -> Path | None:
        return None if p is None else rel(p)

    settings = ApiSettings.model_validate({
        **s.model_dump(), "store": local_db(s.store, rel),
        "accounts": local_db(s.accounts, rel), "schedule": opt(s.schedule),
        "tls_certfile": opt(s.tls_certfile), "tls_keyfile": opt(s.tls_keyfile),
        "core_config": opt(s.core_config),
    })  # fmt: skip
    settings.site_targets()
    return settings
