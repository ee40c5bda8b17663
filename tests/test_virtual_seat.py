"""A virtual seat: the bundled firmware under CPython in real time, behind a socket."""

from __future__ import annotations

from gateway.seatlink.codec import EventCode, Kind, State
from gateway.seatlink.session import Session
from gateway.virtual_seat import VirtualSeat


def test_virtual_seat_greets_and_logs_in_on_a_ready_press() -> None:
    lights: list[int] = []
    with VirtualSeat(on_light=lights.append) as seat:
        session = Session(seat.port)
        session.sync()
        hello = session.wait_for(lambda f: f.kind is Kind.HELLO, timeout=5)
        assert hello.fields[-1] == "virtual"
        seat.board.bits = 2  # READY pressed ...
        session.poll(0.1)
        seat.board.bits = 0  # ... and released
        ready = session.wait_for(
            lambda f: f.kind is Kind.EVENT and f.fields[0] == EventCode.STATE
            and f.fields[1] == State.READY,
            timeout=5,
        )
        assert ready.fields[2] == 0
    assert 2 in lights  # green once Ready
    assert seat.error is None
