"""The event store's fixtures: `store_url` runs a test on SQLite and on PostgreSQL.

PostgreSQL is the machine's own server (127.0.0.1:5432, trust authentication, user postgres,
database test; SEATLINK_TEST_POSTGRES overrides the URL). Each test gets a schema of its own
(the URL sets search_path to it), dropped afterwards: tests never see each other's tables.
A server that cannot be reached skips the PostgreSQL half, and fails it in CI (CI=true),
where the server runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import empty_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store: a SQLite file of the test's own, or a PostgreSQL schema
    of its own."""
    with empty_database(request.param, tmp_path, "core") as url:
        yield url
