"""Settings of `seatlink pbx`: a TOML file, with SEATLINK_PBX_* environment variables on top.

Everything has an embedded default, so `seatlink pbx` alone runs a simulator with one queue
served by every seat it hears, and no traffic until arrivals or a scenario are configured.
"""

from __future__ import annotations

import math
import random
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.contract.topics import check_id
from gateway.edge.settings import BrokerSettings
from gateway.pbx.ami_bridge import AmiSettings
from gateway.pbx.compliance import BlockedCategory, CallClass, CodeHash
from gateway.settings_file import FileSettings, read_settings, relative_to

ENV_PREFIX = "SEATLINK_PBX_"
CODE_SCHEME = "pbkdf2_sha256"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_Model):
    """A random duration: `fixed`, `exponential` (mean), `lognormal` (mean, sd) or
    `uniform` (min, max), cut to [min_s, max_s]."""

    dist: Literal["fixed", "exponential", "lognormal", "uniform"] = "exponential"
    mean_s: Annotated[float, Field(gt=0)] = 60.0
    sd_s: Annotated[float, Field(gt=0)] | None = None
    min_s: Annotated[float, Field(ge=0)] = 0.0
    max_s: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Distribution:
        if self.dist == "lognormal" and self.sd_s is None:
            raise ValueError("lognormal needs sd_s")
        if self.dist == "uniform" and self.max_s is None:
            raise ValueError("uniform needs max_s")
        if self.max_s is not None and self.max_s <= self.min_s:
            raise ValueError("max_s must be above min_s")
        return self

    def draw(self, rng: random.Random) -> float:
        if self.dist == "fixed":
            value = self.mean_s
        elif self.dist == "exponential":
            value = rng.expovariate(1 / self.mean_s)
        elif self.dist == "uniform":
            assert self.max_s is not None
            value = rng.uniform(self.min_s, self.max_s)
        else:
            assert self.sd_s is not None
            sigma2 = math.log(1 + (self.sd_s / self.mean_s) ** 2)
            value = rng.lognormvariate(math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2))
        value = max(self.min_s, value)
        return value if self.max_s is None else min(self.max_s, value)


class Arrivals(_Model):
    """Poisson arrivals: `rate_per_min` calls a minute in all, split over `queues` by
    weight (every configured queue alike when empty)."""

    rate_per_min: Annotated[float, Field(ge=0, le=100_000)] = 0.0
    queues: dict[str, Annotated[float, Field(gt=0)]] = {}
    patience: Distribution | None = Distribution(dist="exponential", mean_s=90.0)
    talk: Distribution = Distribution(dist="lognormal", mean_s=150.0, sd_s=60.0, min_s=5.0)


class QueueSettings(_Model):
    seats: list[str] | Literal["*"] = "*"  # "*": every seat the PBX hears of

    @field_validator("seats")
    @classmethod
    def _ids(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            for seat in value:
                check_id("seat", seat)
        return value


class Callees(_Model):
    """How the simulated people the dialer calls behave."""

    answer_p: Annotated[float, Field(ge=0, le=1)] = 0.3
    answer_rings: Annotated[tuple[int, int], Field()] = (1, 4)  # uniform, inclusive
    talk: Distribution = Distribution(dist="lognormal", mean_s=120.0, sd_s=60.0, min_s=5.0)


class Dialer(_Model):
    campaigns: list[Path] = []
    tick_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    callees: Callees = Callees()
    target_drop_rate: Annotated[float, Field(gt=0, lt=1)] = 0.03


class Compliance(_Model):
    """docs/compliance.md. Authorisation codes are kept only as hashes:
    `seatlink pbx --hash-code` makes one."""

    dnc: Path = Path("dnc.db")
    home_region: str = "CN"
    home_area_code: str | None = None
    local_prefixes: list[str] = []
    caller_ids: list[str] | None = None  # the site's own numbers; None: any valid number
    window: tuple[time, time] = (time(8, 0), time(21, 0))
    blocked: dict[str, BlockedCategory] = {}  # number -> hospital, fire, police, ...
    codes: dict[CallClass, list[str]] = {}

    @field_validator("codes")
    @classmethod
    def _hashes(cls, value: dict[CallClass, list[str]]) -> dict[CallClass, list[str]]:
        for klass, hashes in value.items():
            for h in hashes:
                parse_code_hash(h, what=f"codes.{klass}")
        return value


def hash_code(code: str) -> str:
    h = CodeHash.of(code)
    return f"{CODE_SCHEME}${h.iterations}${h.salt.hex()}${h.digest.hex()}"


def parse_code_hash(text: str, *, what: str = "code") -> CodeHash:
    parts = text.split("$")
    try:
        if len(parts) != 4 or parts[0] != CODE_SCHEME:
            raise ValueError
        return CodeHash(salt=bytes.fromhex(parts[2]), digest=bytes.fromhex(parts[3]),
                        iterations=int(parts[1]))  # fmt: skip
    except ValueError:
        raise ValueError(f"{what}: {text[:12]!r}... is not a {CODE_SCHEME}$iterations$salt$digest "
                         "hash (make one with seatlink pbx --hash-code)") from None


class PbxSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid")  # fmt: skip

    pbx: str = "pbx-1"
    site: str = "site"
    root: str = "seatlink"
    broker: BrokerSettings = BrokerSettings()
    backend: Literal["sim", "ami"] = "sim"
    queues: dict[str, QueueSettings] = {"support": QueueSettings()}
    ring_limit: Annotated[int, Field(ge=1, le=10)] = 3  # seed 002 §二.2
    ring_ms: Annotated[int, Field(ge=1000, le=10000)] = 5000  # CN cadence
    transfer_rings: Annotated[int, Field(ge=1, le=10)] = 5  # seed 004
    outbound_rings: Annotated[int, Field(ge=1, le=10)] = 6  # seed 003
    offer_grace_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    arrivals: Arrivals = Arrivals()
    scenario: Path | None = None
    seed: int | None = None  # fixed: the same traffic every run
    dialer: Dialer = Dialer()
    compliance: Compliance = Compliance()
    store: Path = Path("pbx.db")  # decisions, dial outcomes, campaign progress
    ami: AmiSettings | None = None
    health_interval_s: Annotated[float, Field(gt=0)] = 5.0

    @field_validator("pbx", "site", "root")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id("setting", value)

    @field_validator("queues")
    @classmethod
    def _queues(cls, value: dict[str, QueueSettings]) -> dict[str, QueueSettings]:
        if not value:
            raise ValueError("at least one queue")
        for name in value:
            check_id("queue", name)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PbxSettings:
        unknown = set(self.arrivals.queues) - set(self.queues)
        if unknown:
            raise ValueError(f"arrivals.queues: no queue {', '.join(sorted(unknown))}")
        if self.backend == "ami" and self.ami is None:
            raise ValueError("backend ami needs an [ami] section (host, username, secret, "
                             "seats)")  # fmt: skip
        return self


def load_settings(config: Path | None = None, **overrides: Any) -> PbxSettings:
    """From `config` (TOML), the environment and `overrides`, in rising priority; relative
    paths in the file are taken from the file's directory."""
    if config is None:
        return PbxSettings(**overrides)
    s = read_settings(PbxSettings, config, **overrides)
    rel = relative_to(config)
    return PbxSettings.model_validate({
        **s.model_dump(),
        "store": rel(s.store),
        "scenario": None if s.scenario is None else rel(s.scenario),
        "dialer": {**s.dialer.model_dump(), "campaigns": [rel(p) for p in s.dialer.campaigns]},
        "compliance": {**s.compliance.model_dump(), "dnc": rel(s.compliance.dnc)},
    })  # fmt: skip
