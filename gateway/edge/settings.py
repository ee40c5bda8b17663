"""Settings of `seatlink edge`: a TOML file, then environment variables on top.

    seatlink edge --config edge.toml
    SEATLINK_EDGE_BROKER__PORT=1884 seatlink edge --config edge.toml

Paths in the file (inventory, outbox, links_file) are relative to the file's directory.
Every value is checked at start; a bad one stops the gateway with a message naming it.
docs/edge.md lists every setting with its default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.contract.topics import check_id
from gateway.edge.inventory import SQLITE_PREFIX
from gateway.settings_file import FileSettings, read_settings, relative_to

ENV_PREFIX = "SEATLINK_EDGE_"


class BrokerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    # per-gateway credentials (mosquitto password file / ACL): never shared between gateways
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = 30

    @property
    def password_text(self) -> str | None:
        """The password as the MQTT client takes it (SecretStr keeps it out of logs)."""
        return None if self.password is None else self.password.get_secret_value()


class EdgeSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid")  # fmt: skip

    gateway: str = "edge-1"  # this gateway's id in topics
    site: str = "site"
    root: str = "seatlink"
    broker: BrokerSettings = BrokerSettings()
    links: list[str] = []  # serial device paths or pyserial URLs (socket://host:port)
    links_file: Path | None = None  # JSON {"seats": [{"url": ...}, ...]} (seatlink seats --map)
    inventory: str = "inventory.toml"  # .toml, .json or sqlite:///path.db
    outbox: Path = Path("edge-outbox.db")
    firmware_backups: Path = Path("edge-firmware")  # each seat's previous firmware, kept
    outbox_max_events: Annotated[int, Field(ge=1)] = 100_000
    outbox_max_age_s: Annotated[float, Field(gt=0)] = 7 * 24 * 3600.0
    heartbeat_misses: Annotated[int, Field(ge=1, le=100)] = 3
    ack_timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.25
    attempts: Annotated[int, Field(ge=1, le=100)] = 5
    reject_window_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    reopen_backoff_s: tuple[float, float] = (0.5, 10.0)
    baudrate: int = 115200
    health_interval_s: Annotated[float, Field(gt=0)] = 5.0
    publish_interval_s: Annotated[float, Field(gt=0, le=5)] = 0.05  # state coalescing
    state_min_interval_s: Annotated[float, Field(ge=0, le=60)] = 0.5  # per seat
    drain_process: bool = True  # publish seat events from a second process (second core)
    answer_unknown_seats: bool = True  # False where several gateways share one site
    # seats refuse their own login while nobody is signed in there (seat/{seat}/agent);
    # False: the gateway never tells them, and a seat takes any login (a site without the API)
    sign_in: bool = True
    # after subscribing, how long to wait for the retained sign-ins before a seat that has
    # none is told "nobody": never log out a signed-in agent on a slow broker
    sign_in_wait_s: Annotated[float, Field(ge=0, le=60)] = 3.0
    results_max: Annotated[int, Field(ge=1)] = 10_000  # kept while the broker is away

    @field_validator("gateway", "site", "root")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id("setting", value)

    @field_validator("reopen_backoff_s")
    @classmethod
    def _backoff(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError("needs 0 < first <= cap")
        return value

    @model_validator(mode="after")
    def _some_links(self) -> EdgeSettings:
        if not self.links and self.links_file is None:
            raise ValueError("no links: set links (device paths or socket:// URLs) or "
                             "links_file")  # fmt: skip
        return self

    def link_urls(self) -> list[str]:
        urls = list(self.links)
        if self.links_file is not None:
            try:
                data = json.loads(self.links_file.read_text())
                urls += [str(seat["url"]) for seat in data["seats"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"links_file {self.links_file}: {exc}") from None
        dupes = sorted({u for u in urls if urls.count(u) > 1})
        if dupes:
            raise ValueError(f"link listed twice: {', '.join(dupes)}")
        return urls


def load_settings(config: Path | None = None, **overrides: Any) -> EdgeSettings:
    """Settings from `config` (TOML), the environment and `overrides`, in rising priority;
    relative paths in the file are taken from the file's directory."""
    if config is None:
        return EdgeSettings(**overrides)
    settings = read_settings(EdgeSettings, config, **overrides)
    rel = relative_to(config)
    inventory = settings.inventory
    if inventory.startswith(SQLITE_PREFIX):
        db = Path(inventory[len(SQLITE_PREFIX):])
        inventory = SQLITE_PREFIX + str(rel(db))
    else:
        inventory = str(rel(Path(inventory)))
    changes = {"inventory": inventory, "outbox": rel(settings.outbox),
               "firmware_backups": rel(settings.firmware_backups),
               "links_file": None if settings.links_file is None else rel(settings.links_file)}
    return settings.model_copy(update=changes)
