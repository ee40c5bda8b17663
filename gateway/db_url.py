"""Database URLs as the stores take them (the core's events, the API's accounts): SQLite by
plain path or `sqlite:///relative.db` / `sqlite:////absolute.db` (as in SQLAlchemy), or
PostgreSQL by `postgresql://user@host:port/db` (any libpq URI)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Dialect = Literal["sqlite", "postgresql"]


def parse_db_url(url: str | Path, *, what: str) -> tuple[Dialect, str]:
    """(dialect, target): the SQLite file path, or the PostgreSQL URL as given. `what`
    names the store in the error a bad URL gets."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "sqlite", text
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"{text!r}: write sqlite:///relative/path.db or "
                             "sqlite:////absolute/path.db")  # fmt: skip
        return "sqlite", rest[1:]
    if scheme in ("postgresql", "postgres"):
        return "postgresql", text
    raise ValueError(f"{text!r}: unknown {what} URL scheme {scheme!r}; use sqlite:///path, "
                     "a plain path, or postgresql://user@host:port/db")  # fmt: skip


def without_password(url: str) -> str:
    """The URL fit for logs and errors: its password, if any, as ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
