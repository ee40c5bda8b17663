"""Databases for the stores' tests: a SQLite file of the test's own, or a schema of its own
on the machine's PostgreSQL (127.0.0.1:5432, trust authentication, user postgres, database
test; SEATLINK_TEST_POSTGRES overrides the URL), dropped afterwards so tests never see each
other's tables. A server that cannot be reached skips the PostgreSQL half, and fails it in
CI (CI=true), where the server runs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("SEATLINK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":  # CI runs the server: a missing one is a failure
        pytest.fail(reason)
    pytest.skip(reason)


def postgres_admin() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        _unavailable(f"psycopg is not installed ({exc}): pip install -e '.[dev]'")
        raise
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
        raise


@contextmanager
def empty_database(dialect: str, tmp_path: Path, name: str) -> Iterator[str]:
    """The URL of an empty database: `sqlite` (tmp_path/<name>.db) or `postgresql` (a
    schema <name>_<random>, the URL's search_path)."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path}/{name}.db"
        return
    admin = postgres_admin()
    schema = f"{name}_{uuid.uuid4().hex[:16]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        joiner = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{joiner}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
