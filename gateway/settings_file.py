"""Settings read from a TOML file with environment variables on top: what every seatlink
service's settings share (gateway/edge/settings.py, gateway/pbx/settings.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class FileSettings(BaseSettings):
    """Arguments first, then the environment, then the TOML file named by `toml_file`."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file") is not None:
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


S = TypeVar("S", bound=FileSettings)


def check_zone(value: str) -> str:
    """A setting's IANA time zone name, or a ValueError that says what is wanted."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                         "Asia/Shanghai)") from None  # fmt: skip
    return value


def local_db(value: str, rel: Callable[[Path], Path]) -> str:
    """A database setting (plain path, sqlite:/// URL, postgresql:// URL) with a relative
    SQLite path taken from the settings file's directory (`rel`)."""
    scheme = value.partition("://")[0] if "://" in value else None
    if scheme is None:
        return str(rel(Path(value)))
    if scheme == "sqlite" and not value.startswith("sqlite:////") and ":memory:" not in value:
        return "sqlite:///" + str(rel(Path(value.removeprefix("sqlite:///"))))
    return value


def read_settings(cls: type[S], config: Path, **overrides: Any) -> S:
    """`cls` from `config`, the environment and `overrides` (rising priority); a missing
    file is a FileNotFoundError naming it."""
    if not config.is_file():
        raise FileNotFoundError(f"config file {config} not found")

    class FromFile(cls):  # type: ignore[valid-type,misc]
        model_config = SettingsConfigDict(**{**cls.model_config, "toml_file": config})

    settings: S = FromFile(**overrides)
    return settings


def relative_to(config: Path) -> Callable[[Path], Path]:
    """A function taking a path from the file to one from here (absolute paths stay)."""
    base = config.resolve().parent

    def rel(path: Path) -> Path:
        return path if path.is_absolute() else base / path

    return rel
