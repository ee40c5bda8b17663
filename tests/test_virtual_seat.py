"""A virtual seat: the bundled firmware under CPython in real time, behind a socket."""

from __future__ import annotations

from collections.abc import Callable

from gateway.bundle import FIRMWARE_DIR, constants
from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, Frame, Kind, State, Why
from gateway.seatlink.messages import Snapshot
from gateway.seatlink.session import Session
from gateway.virtual_seat import IN_ANSWER, IN_HANGER, IN_HELP, IN_READY, IN_WRAP, VirtualSeat


def test_the_input_bits_are_the_firmwares() -> None:
    agent = constants({"agent.py": (FIRMWARE_DIR / "agent.py").read_text()})
    assert (IN_HANGER, IN_READY, IN_WRAP, IN_HELP, IN_ANSWER) == (
        agent["IN_HANGER"], agent["IN_READY"], agent["IN_WRAP"], agent["IN_HELP"],
        agent["IN_ANSWER"])  # fmt: skip


def test_virtual_seat_greets_and_logs_in_on_a_ready_press() -> None:
    lights: list[int] = []
    with VirtualSeat(on_light=lights.append) as seat:
        session = Session(seat.port)
        session.sync()
        hello = session.wait_for(lambda f: f.kind is Kind.HELLO, timeout=5)
        assert hello.fields[-1] == "virtual"
        seat.board.bits |= IN_READY  # READY pressed ...
        session.poll(0.1)
        seat.board.bits &= ~IN_READY  # ... and released
        ready = session.wait_for(
            lambda f: f.kind is Kind.EVENT and f.fields[0] == EventCode.STATE
            and f.fields[1] == State.READY,
            timeout=5,
        )
        assert ready.fields[2] == 0
    assert 2 in lights  # green once Ready
    assert seat.error is None


def test_a_virtual_seats_headset_starts_on_its_hanger() -> None:
    """A new desk is an empty desk: the headset rests on its hanger (HANGER 1), so the seat
    boots with it on and reports nothing; lifting it is a hook event with a = 1, and ANSWER
    answers an offer (why 5)."""
    with VirtualSeat() as seat:
        assert seat.board.bits == IN_HANGER
        session = Session(seat.port)
        session.sync()
        snap = session.wait_for(lambda f: f.kind is Kind.SNAPSHOT, timeout=5, since=0)
        assert not Snapshot.from_frame(snap).off_hook
        seat.board.bits &= ~IN_HANGER  # the agent puts the headset on
        hook = session.wait_for(lambda f: f.kind is Kind.EVENT
                                and f.fields[0] == EventCode.HOOK, timeout=5)  # fmt: skip
        assert hook.fields[4] == 1
    assert seat.error is None


def test_answer_on_a_virtual_seat_answers_with_why_5() -> None:
    def state(st: State) -> Callable[[Frame], bool]:
        return lambda f: (f.kind is Kind.EVENT and f.fields[0] == EventCode.STATE
                          and f.fields[1] == st)  # fmt: skip

    with VirtualSeat() as seat:
        session = Session(seat.port)
        session.sync()
        seat.board.bits = IN_READY  # the headset lifted (worn), READY pressed ...
        session.poll(0.1)
        seat.board.bits = 0  # ... and let go
        session.wait_for(state(State.READY), timeout=5)
        session.send(messages.offer(7))
        session.wait_for(state(State.RINGING), timeout=5)
        seat.board.bits = IN_ANSWER
        session.poll(0.1)
        seat.board.bits = 0
        talking = session.wait_for(state(State.TALKING), timeout=5)
        assert talking.fields[4] == Why.ANSWER_BUTTON
    assert seat.error is None
