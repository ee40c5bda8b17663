"""gateway.firmware_host: isolated firmware instances, the fake board and the SeatSim driver."""

from __future__ import annotations

import sys
import threading

import pytest
from seat_helpers import IN_READY, NR, READY, RING, Seat, encode

from gateway.bundle import firmware_bundle, link_bundle
from gateway.firmware_host import (
    TICKS_PERIOD,
    FakeBoard,
    SeatSim,
    SimError,
    SimTimeout,
    firmware_sources,
    load_firmware,
)
from gateway.linker import NAMESPACE

FIRMWARE = {"agent", "cfg", "frame", "host", "light", "link", "loop", "rx", "seat", "timers", "tx"}
ON_BOARD = set(link_bundle().module_sources())


def test_load_firmware_shares_nothing_through_sys_modules() -> None:
    before = set(sys.modules)
    a = load_firmware(board=FakeBoard())
    b = load_firmware(board=FakeBoard())
    assert set(a.modules) == set(b.modules) == ON_BOARD
    assert not (set(sys.modules) - before) & (FIRMWARE | ON_BOARD | {"board"})
    for name in ON_BOARD:
        assert a.modules[name] is not b.modules[name]
    a.cfg.V[1] = 9
    assert b.cfg.V[1] == 3
    # within one instance the modules see each other, not another seat's
    assert a.tx.S is a.seat.S and a.tx.S is not b.seat.S
    assert a.loop.board is a.board and a.tx.board is a.board


def test_bundled_instance_runs_the_exact_bundle_bytes() -> None:
    parts = [f.data for f in firmware_bundle(board="microbit") if f.name.startswith(NAMESPACE)]
    fw = load_firmware(board=FakeBoard())
    assert fw.bundled
    # the bytes the board executes, part after part, but for the last part's call of run()
    assert fw.sources == {NAMESPACE: b"".join(parts[:-1]).decode("ascii")}
    readable = load_firmware(board=FakeBoard(), bundled=False)
    assert readable.sources == firmware_sources(bundled=False)
    assert "import cfg" in readable.sources["seat"] and "# " in readable.sources["seat"]


def test_real_imports_still_work_inside_firmware() -> None:
    fw = load_firmware(board=FakeBoard())
    assert fw.tx.gc is sys.modules["gc"]
    stub = object()
    fw2 = load_firmware(board=FakeBoard(), extra_modules={"gc": stub})
    assert fw2.tx.gc is stub


def test_advance_runs_exactly_the_passes_that_fit_and_time_moves_only_in_sleep() -> None:
    sim = SeatSim().start()
    try:
        assert sim.board.passes == 1 and sim.elapsed == 0  # boot and the first pass at 0 ms
        sim.advance(100)
        assert sim.board.passes == 21 and sim.elapsed == 100
        sim.advance(7)  # one 5 ms sleep fits, 2 ms stay granted
        assert sim.board.passes == 22 and sim.elapsed == 105
        sim.advance(3)
        assert sim.board.passes == 23 and sim.elapsed == 110
        sim.advance(0)
        assert sim.board.passes == 23
    finally:
        sim.close()


def test_stop_ends_the_loop_thread_and_is_idempotent() -> None:
    sim = SeatSim().start()
    sim.advance(50)
    assert sim.running
    sim.stop()
    assert not sim.running and sim.finished
    sim.stop()
    sim.close()


def test_an_error_in_the_loop_thread_surfaces_in_the_test() -> None:
    sim = SeatSim().start()
    try:

        def hook(board: FakeBoard) -> None:
            if board.ms >= 50:
                raise ValueError("boom")

        sim.board.pass_hook = hook
        with pytest.raises(SimError, match="boom"):
            sim.advance(100)
    finally:
        sim.close()


def test_a_stuck_loop_times_out_instead_of_hanging() -> None:
    sim = SeatSim(timeout_s=0.3).start()
    release = threading.Event()
    try:
        sim.board.pass_hook = lambda board: release.wait(5) and None
        with pytest.raises(SimTimeout):
            sim.advance(10)
    finally:
        release.set()
        sim.board.pass_hook = None
        sim.close()
    assert not sim.running


def test_a_seat_without_a_driver_times_out_in_sleep() -> None:
    board = FakeBoard(timeout_s=0.2)
    fw = load_firmware(board=board)
    with pytest.raises(SimTimeout):
        fw.run()  # nobody grants time: the first sleep gives up
    board.close()


def test_a_stopped_board_cannot_boot_again() -> None:
    sim = SeatSim().start()
    sim.stop()
    with pytest.raises(RuntimeError):
        SeatSim(board=sim.board)
    sim.close()


def test_ticks_wrap_around_does_not_disturb_the_timers() -> None:
    board = FakeBoard(start_ms=TICKS_PERIOD - 3_000)
    seat = Seat(board=board).start()
    try:
        seat.advance(100)
        seat.login()
        seat.hook(True)
        seq = seat.send("O", 42)
        rang = next(f.ms for f in seat.of_kind("A") if f.ints == (seq,))
        assert seat.state == RING
        seat.advance(rang + 15_100 - seat.now - seat.sim.start_ms)
        assert board.now() < 20_000  # the ticks wrapped meanwhile
        rona = [f for f in seat.events() if f.code == 3]
        assert len(rona) == 1 and abs(rona[0].ms - rang - 15_000) <= 5
        assert seat.state == NR
    finally:
        seat.close()


def test_many_seats_live_side_by_side() -> None:
    seats = [
        Seat(board=FakeBoard(uid=bytes([0xA0, i]))).start() for i in range(12)
    ]
    try:
        for i, s in enumerate(seats):
            if i % 2:
                s.tap(IN_READY)
        for s in seats:
            s.advance(1000)
        for i, s in enumerate(seats):
            assert s.state == (READY if i % 2 else 0)
            assert s.frames()[0].fields[3] == f"A0{i:02X}"
    finally:
        for s in seats:
            s.close()


def test_rx_is_handed_out_sixteen_bytes_a_pass() -> None:
    sim = SeatSim().start()
    try:
        frame = encode(1, "G", 1, 5, 2, 1000, 3, 2)
        assert 16 < len(frame) <= 32
        sim.board.feed(frame)
        sim.advance(5)
        assert sim.board.rx_pending == len(frame) - 16 and sim.V[1] == 3
        sim.advance(5)
        assert sim.board.rx_pending == 0 and sim.V[1:4] == [5, 1000, 2]
    finally:
        sim.close()
