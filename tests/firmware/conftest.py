"""Fixtures for the firmware tests: a booted seat on a fake clock, bundled code by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from seat_helpers import Seat


@pytest.fixture(params=["bundled", "source"])
def code(request: pytest.FixtureRequest) -> str:
    """Which firmware text runs: the micro:bit bundle, or the readable firmware/ source."""
    param: str = request.param
    return param


@pytest.fixture
def seat(code: str) -> Iterator[Seat]:
    """A booted seat, 100 ms after power-on, its boot frames acked by the host."""
    s = Seat(bundled=code == "bundled").start()
    try:
        s.advance(100)
        yield s
    finally:
        s.close()

