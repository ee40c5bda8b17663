"""Fixtures of the API tests: a live API per test module (the role matrix makes hundreds of
calls against one), or per test where a test changes accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import LiveApi


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, mqtt_broker: Any) -> Iterator[LiveApi]:
    with LiveApi(tmp_path_factory.mktemp("api"), mqtt_broker) as api:
        yield api


@pytest.fixture
def api(tmp_path: Path, mqtt_broker: Any) -> Iterator[LiveApi]:
    with LiveApi(tmp_path, mqtt_broker) as live:
        yield live
