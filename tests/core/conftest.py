"""The event store's fixtures: `store_url` runs a test on SQLite and on PostgreSQL.

PostgreSQL is the machine's own server (127.0.0.1:5432, trust authentication, user postgres,
database test; SEATLINK_TEST_POSTGRES overrides the URL). Each test gets a schema of its own
(the URL sets search_path to it), dropped afterwards: tests never see each other's tables.
A server that cannot be reached skips the PostgreSQL half, and fails it in CI (CI=true),
where the server runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("SEATLINK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":  # CI runs the server: a missing one is a failure
        pytest.fail(reason)
    pytest.skip(reason)


def _postgres_admin() -> Any:
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store: a SQLite file of the test's own, or a PostgreSQL schema
    of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/core.db"
        return
    admin = _postgres_admin()
    schema = f"core_{uuid.uuid4().hex[:16]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        joiner = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{joiner}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
