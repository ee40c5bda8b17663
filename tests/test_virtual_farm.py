"""A farm of virtual seats: the real firmware bundle per seat, each on its own serial link
(a TCP port for pyserial's socket://, or a pseudo-terminal), one scheduler thread for all."""

from __future__ import annotations

import csv
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from gateway.bundle import FIRMWARE_DIR, constants
from gateway.seatlink.codec import EventCode, Frame, FrameError, Kind, decode, encode
from gateway.seatlink.session import Session
from gateway.virtual_farm import TO_GATEWAY, TO_SEAT, SeatFarm
from gateway.virtual_seat import IN_HANGER, IN_READY

HELP_BIT = 8
HELP_FLAG = 1  # snapshot flags, bit 0: help requested
_TX_SEQ = constants({"tx.py": (FIRMWARE_DIR / "tx.py").read_text()})["SEQ"]  # newest seq queued


def until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll predicate until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    return host, int(port)


class RawHost:
    """A host that only reads (and writes what the test gives it): it never acks, so the
    seat keeps every frame queued and resends them all, round after round."""

    def __init__(self, url: str) -> None:
        self.sock = socket.create_connection(address(url), timeout=5)
        self.sock.setblocking(False)
        self.received = bytearray()

    def read(self, timeout: float) -> None:
        if select.select([self.sock], [], [], timeout)[0]:
            self.received.extend(self.sock.recv(65536))

    def frames(self) -> list[Frame]:
        """The reliable frames received whole, resends included."""
        out = []
        for line in bytes(self.received).split(b"\n")[:-1]:
            try:
                out.append(decode(line))
            except FrameError:
                pass
        return [f for f in out if f.seq]

    def close(self) -> None:
        self.sock.close()


def let_go(farm: SeatFarm) -> None:
    """Stop the load and wait until every seat's finger is up: each press made its event."""
    farm.load_hz = 0
    until(lambda: not any(s.pressing or s.board.bits & HELP_BIT for s in farm.seats), 5,
          "the load generator lets go")  # fmt: skip


@contextmanager
def session_on(url: str) -> Iterator[Session]:
    port = serial.serial_for_url(url, timeout=0.01)
    try:
        yield Session(port, read_timeout=0.01)
    finally:
        port.close()


def booted(farm: SeatFarm) -> SeatFarm:
    """Wait until every seat has written its hello and snapshot (one a pass): a host that
    connects between the two would take the snapshot as the start of its count and drop
    the resent hello as a repeat."""
    deadline = time.monotonic() + 5
    while min(s.passes for s in farm.seats) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return farm


def is_hello(f: Frame) -> bool:
    return f.kind is Kind.HELLO


def is_help(f: Frame) -> bool:
    return f.kind is Kind.EVENT and f.fields[0] == EventCode.HELP


def press_help(farm: SeatFarm, index: int) -> None:
    board = farm.seats[index].board
    board.bits |= HELP_BIT
    time.sleep(0.1)  # longer than the firmware's 30 ms debounce
    board.bits &= ~HELP_BIT
    time.sleep(0.1)


def test_each_seat_greets_with_its_own_uid_over_socket() -> None:
    with SeatFarm(3, first_uid=0x5EA70010) as farm:
        booted(farm)
        assert [s.uid for s in farm.seats] == ["5EA70010", "5EA70011", "5EA70012"]
        assert len({s.url for s in farm.seats}) == 3
        for seat in (farm.seats[0], farm.seats[2]):
            assert seat.url.startswith("socket://127.0.0.1:")
            with session_on(seat.url) as session:
                # the hello was written before anyone listened: it comes as a resend
                hello = session.wait_for(is_hello, timeout=5)
            assert hello.fields[1] == seat.boot == 1
            assert hello.fields[3] == seat.uid
            assert hello.fields[4] == "virtual"


def test_a_reconnecting_gateway_finds_the_same_firmware_and_its_unacked_events() -> None:
    with SeatFarm(1) as farm:
        seat = booted(farm).seats[0]
        with session_on(seat.url) as session:
            session.wait_for(is_hello, timeout=5)
            session.sync()
        time.sleep(0.1)  # the seat sees the hang-up
        assert not seat.connected
        press_help(farm, 0)  # queued; written to nobody
        with session_on(seat.url) as session:
            event = session.wait_for(is_help, timeout=5)  # resent from the seat's queue
            assert event.fields[4] == 1  # help asked
            session.sync()
            snapshot = session.wait_for(lambda f: f.kind is Kind.SNAPSHOT, timeout=5)
            assert int(snapshot.fields[4]) & HELP_FLAG  # the state lived on
            assert not any(is_hello(r.frame) for r in session.received if r.frame)
        assert seat.boot == 1 and seat.boots == 1
        assert seat.connections == 2


def test_a_new_connection_replaces_the_old_one() -> None:
    with SeatFarm(1) as farm:
        host, port = farm.seats[0].url.removeprefix("socket://").rsplit(":", 1)
        first = socket.create_connection((host, int(port)), timeout=5)
        second = socket.create_connection((host, int(port)), timeout=5)
        try:
            deadline = time.monotonic() + 5
            while first.recv(4096):  # whatever it got before: then EOF
                assert time.monotonic() < deadline
            with session_on(farm.seats[0].url) as session:  # a third one still works
                session.sync()
        finally:
            first.close()
            second.close()


def test_reset_reboots_the_seat_behind_a_connection_that_stays_up() -> None:
    with SeatFarm(2, trace=True) as farm:
        seat = booted(farm).seats[1]
        with session_on(seat.url) as session:
            assert session.wait_for(is_hello, timeout=5).fields[1] == 1
            session.sync()
            assert farm.reset(1) == 2
            hello = session.wait_for(is_hello, timeout=5)
            assert hello.fields[1] == 2 and hello.fields[3] == seat.uid
            assert session.reboots == 1
            session.sync()  # the new firmware takes commands on the same connection
        assert seat.boot == 2 and seat.boots == 2 and seat.connections == 1
        assert farm.seats[0].boot == 1  # the other seat ran on
        assert {(seat.uid, 1, 1), (seat.uid, 2, 1)} <= set(farm.first_writes())


def test_pty_links_open_as_serial_devices() -> None:
    with SeatFarm(2, pty=True) as farm:
        booted(farm)
        for seat in farm.seats:
            assert seat.url.startswith("/dev/")
        seat = farm.seats[1]
        port = serial.Serial(seat.url, timeout=0.01)
        try:
            session = Session(port, read_timeout=0.01)
            hello = session.wait_for(is_hello, timeout=5)
            assert hello.fields[3] == seat.uid
            session.sync()
        finally:
            port.close()
        deadline = time.monotonic() + 2
        while seat.connected:  # the farm sees the device closed
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with serial.Serial(seat.url, timeout=0.01) as port:
            Session(port, read_timeout=0.01).sync()  # same firmware, still answering


def test_the_load_generator_makes_about_load_hz_help_events_per_seat() -> None:
    seats, hz, window = 4, 10.0, 3.0
    with SeatFarm(seats, load_hz=hz) as farm:
        ports = [serial.serial_for_url(s.url, timeout=0) for s in farm.seats]
        try:
            sessions = [Session(p, read_timeout=0) for p in ports]

            def serve() -> None:
                for session in sessions:
                    session.poll(0)

            def helps() -> list[int]:
                return [len({f.seq for f in s.frames if is_help(f)}) for s in sessions]

            end = time.monotonic() + window
            while time.monotonic() < end:  # the window the rate is measured over
                serve()
                time.sleep(0.002)
            pressed = farm.pressed
            farm.load_hz = 0  # the fingers let go; the events of the last presses come in
            until(lambda: serve() or (not any(s.pressing or s.board.bits & HELP_BIT
                                              for s in farm.seats)
                                      and helps() == farm.pressed), 15,
                  "one help event per press")  # fmt: skip
        finally:
            for p in ports:
                p.close()
    for before in pressed:
        assert hz * window * 0.5 <= before <= hz * window * 1.5


def test_trace_keeps_the_first_write_of_each_reliable_frame(tmp_path: Path) -> None:
    with SeatFarm(2, trace=True) as farm:
        seat = farm.seats[0]
        time.sleep(0.2)
        connected_at = time.time()
        with session_on(seat.url) as session:
            hello = session.wait_for(is_hello, timeout=5)
            session.sync()
            press_help(farm, 0)
            event = session.wait_for(is_help, timeout=5)
            seen = time.time()
        first = farm.first_writes()
        rows = farm.write_trace(tmp_path / "trace.csv")
    # the hello was first written at boot, to nobody: its resend does not count
    assert first[(seat.uid, 1, hello.seq)] < connected_at
    assert connected_at < first[(seat.uid, 1, event.seq)] < seen
    assert (farm.seats[1].uid, 1, 1) in first  # every seat is traced
    assert all(key[2] > 0 for key in first)  # acks and heartbeats are not
    with open(tmp_path / "trace.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == rows == len(first)
    assert {(r["uid"], int(r["boot"]), int(r["seq"])) for r in table} == set(first)


def test_trace_takes_a_frame_written_in_pieces_at_its_first_piece() -> None:
    farm = SeatFarm(1, trace=True)  # not started: the test is the only writer
    try:
        board = farm.seats[0].board
        uid = farm.seats[0].uid
        hello = f"1 B 1 4 0.1.0 {uid} virtual*0000\n".encode()
        event = b"2 E 6 0 0 0 1 0*0000\n"
        board.write(hello + event[:3], len(hello) + 3)
        before = time.time()
        time.sleep(0.01)
        board.write(event[3:9], 6)
        board.write(event[9:] + b"0 H 1 2 3*0000\n", len(event) - 9 + 15)
        board.write(event, len(event))  # a resend
        board.write(b"3 S 1 0 0 0 0 -1 0 0 0*0000\n", 28)
        first = farm.first_writes()
    finally:
        farm.stop()
    assert set(first) == {(uid, 4, 1), (uid, 4, 2), (uid, 4, 3)}  # boot from the hello
    assert first[(uid, 4, 2)] < before < first[(uid, 4, 3)]


def test_seatlink_seats_writes_a_map_and_a_trace_and_stops_on_sigterm(tmp_path: Path) -> None:
    seat_map, trace = tmp_path / "seats.json", tmp_path / "trace.csv"
    cmd = [sys.executable, "-m", "gateway.cli", "seats", "--count", "2", "--map", str(seat_map),
           "--trace", str(trace)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split() for _ in range(2)]
        deadline = time.monotonic() + 10
        while not seat_map.exists():
            assert time.monotonic() < deadline, "no seat map"
            time.sleep(0.05)
        seats = json.loads(seat_map.read_text())["seats"]
        assert [[s["uid"], s["url"]] for s in seats] == lines
        time.sleep(0.2)  # as booted(): the hello and snapshot are out
        with session_on(seats[1]["url"]) as session:
            assert session.wait_for(is_hello, timeout=5).fields[3] == seats[1]["uid"]
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    with open(trace, newline="") as f:
        uids = {row["uid"] for row in csv.DictReader(f)}
    assert uids == {s["uid"] for s in seats}


def test_trace_takes_a_seq_ahead_of_the_newest_as_new_after_a_jump_or_the_wrap() -> None:
    farm = SeatFarm(1, trace=True)  # not started: the test is the only writer
    try:
        board, uid = farm.seats[0].board, farm.seats[0].uid
        for line in (f"1 B 1 3 0.1.0 {uid} virtual*0000", "2 S 1 0 0 0 0 -1 0 0 0*0000",
                     "3 E 6 0 0 0 1 0*0000",
                     # 4..13 dropped by a full queue before they were written: a snapshot
                     "14 S 1 0 0 0 0 -1 0 0 10*0000", "15 E 6 0 0 0 0 0*0000",
                     "3 E 6 0 0 0 1 0*0000", "14 S 1 0 0 0 0 -1 0 0 10*0000",  # resends
                     "32783 E 6 0 0 0 1 0*0000",  # half the seqs ahead of 15: behind
                     "32782 E 6 0 0 0 1 0*0000",  # 32767 ahead: new
                     # the next boot, its count near the wrap
                     f"65534 B 1 4 0.1.0 {uid} virtual*0000", "65535 S 1 0 0 0 0 -1 0 0 0*0000",
                     "1 E 6 0 0 0 1 0*0000", "65535 S 1 0 0 0 0 -1 0 0 0*0000",
                     "2 E 6 0 0 0 0 0*0000"):  # fmt: skip
            data = line.encode() + b"\n"
            board.write(data, len(data))
        first = farm.first_writes()
    finally:
        farm.stop()
    assert set(first) == {(uid, 3, seq) for seq in (1, 2, 3, 14, 15, 32782)} \
        | {(uid, 4, seq) for seq in (65534, 65535, 1, 2)}  # fmt: skip


def test_trace_keeps_recording_after_an_overflow_dropped_frames_never_written() -> None:
    """A host that asks for resends (Q) every pass and acks nothing: each Q rewinds the seat's
    queue to its oldest frame, so the newer ones wait unwritten until the queue overflows and
    drops them; the snapshot after that jumps ahead in seq. The trace, the expected set of
    the fault tests, must still take it and every frame after it as new."""
    with SeatFarm(1, trace=True, load_hz=12, load_after_connect=True) as farm:
        seat = booted(farm).seats[0]
        host = RawHost(seat.url)
        try:
            q = 0
            deadline = time.monotonic() + 30
            while seat.dropped < 20:  # two overflows under the Qs
                assert time.monotonic() < deadline, f"no overflow: {seat.dropped} dropped"
                q += 1
                host.sock.send(encode(q, Kind.SYNC))
                host.read(0.005)
            let_go(farm)
            assert seat.firmware is not None
            newest = seat.firmware.module("tx").L[_TX_SEQ]  # no frame is queued any more
            deadline = time.monotonic() + 10
            while newest not in {f.seq for f in host.frames()}:  # its (re)send reached us
                assert time.monotonic() < deadline, f"seq {newest} never came"
                host.read(0.05)
        finally:
            host.close()
        first = farm.first_writes()
    came = sorted({f.seq for f in host.frames()})
    assert any(b - a > 1 for a, b in zip(came, came[1:], strict=False)), \
        f"no frame was dropped unwritten, the case under test: {came}"  # fmt: skip
    seqs = sorted(seq for _, _, seq in first)
    missing = sorted(set(came) - set(seqs))
    assert not missing, f"frames written but not in the trace: {missing} (trace: {seqs})"


def test_unplug_drops_the_host_refuses_it_and_the_seat_queues_until_replug() -> None:
    with SeatFarm(2) as farm:
        seat = booted(farm).seats[0]
        url = seat.url
        with socket.create_connection(address(url), timeout=5) as sock:
            until(lambda: seat.connected, 5, "the farm takes the connection")
            assert farm.unplug(0) is True
            assert farm.unplug(0) is False  # already out
            sock.settimeout(5)
            while sock.recv(4096):  # what was on its way, then EOF
                pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address(url), timeout=5).close()
        status = farm.status(0)
        assert not status.plugged and not status.connected and not seat.plugged
        assert farm.status(1).plugged  # the other seat's cable is in

        # the seat runs on with its host gone: its events wait in its queue
        farm.load_hz = 5
        until(lambda: farm.pressed[0] >= 2, 10, "presses while unplugged")
        let_go(farm)
        pressed = farm.pressed[0]
        discarded = farm.status(0).discarded
        until(lambda: farm.status(0).discarded > discarded, 10, "writes that reach nobody")

        assert farm.replug(0) is True
        assert farm.replug(0) is False
        assert seat.url == url and farm.status(0).plugged
        host = RawHost(url)  # the same url takes a host again
        try:
            def helps() -> set[int]:
                return {f.seq for f in host.frames() if is_help(f)}

            until(lambda: host.read(0.05) or len(helps()) >= pressed, 15,
                  f"the {pressed} help events queued while unplugged")  # fmt: skip
        finally:
            host.close()
        assert all(f.fields[1] == 1 for f in host.frames() if is_hello(f))  # the same boot
        assert len(helps()) == pressed and seat.boot == 1 and seat.dropped == 0


def test_noise_flips_bits_per_direction_is_counted_and_clears() -> None:
    with SeatFarm(1) as farm:
        seat = booted(farm).seats[0]
        for bad in (1.5, -0.1, math.nan):
            with pytest.raises(ValueError):
                farm.set_noise(0, bad)
        with pytest.raises(ValueError):
            farm.set_noise(0, 0.1, "sideways")
        with pytest.raises(IndexError):
            farm.set_noise(1, 0.1)
        assert farm.status(0).noise == {TO_SEAT: 0.0, TO_GATEWAY: 0.0}
        with session_on(seat.url) as session:
            session.wait_for(is_hello, timeout=5)
            session.sync()

            # half the bytes the seat writes get a bit flipped: what it says arrives damaged
            assert farm.set_noise(0, 0.5, TO_GATEWAY) == {TO_SEAT: 0.0, TO_GATEWAY: 0.5}
            garbage = session.garbage

            def damaged() -> bool:
                session.ping()  # a heartbeat comes back
                session.poll(0.05)
                return session.garbage > garbage

            until(damaged, 10, "damaged lines from the seat")
            assert farm.status(0).corrupted[TO_GATEWAY] > 0
            assert farm.status(0).corrupted[TO_SEAT] == 0

            assert farm.set_noise(0, 0.0) == {TO_SEAT: 0.0, TO_GATEWAY: 0.0}  # both clear
            session.sync()  # a clean line again

            # every byte the host writes is damaged: the seat counts all of them
            farm.set_noise(0, 1.0, TO_SEAT)
            before = farm.status(0).corrupted
            ping = encode(0, Kind.PING)
            session.write(ping)
            until(lambda: farm.status(0).corrupted[TO_SEAT] == before[TO_SEAT] + len(ping), 10,
                  "the seat reads the damaged ping")  # fmt: skip
            assert farm.status(0).corrupted[TO_GATEWAY] == before[TO_GATEWAY]
            farm.set_noise(0, 0.0, TO_SEAT)
            session.sync()


def test_load_after_connect_waits_for_a_host_and_the_load_pauses_and_resumes() -> None:
    with SeatFarm(2, load_hz=10, load_after_connect=True) as farm:
        until(lambda: min(s.passes for s in farm.seats) >= 100, 10, "half a second of passes")
        assert farm.pressed == [0, 0] and not any(s.pressing for s in farm.seats)
        seat = farm.seats[1]
        with session_on(seat.url) as session:
            until(lambda: session.poll(0.02) is not None and farm.pressed[1] >= 3, 10,
                  "presses once a host is there")  # fmt: skip
            assert farm.pressed[0] == 0 and not farm.seats[0].pressing  # no host: no presses

            let_go(farm)  # load 0: paused
            paused, passes = farm.pressed[1], seat.passes
            until(lambda: session.poll(0.02) is not None and seat.passes >= passes + 100, 10,
                  "half a second paused")  # fmt: skip
            assert farm.pressed[1] == paused

            farm.load_hz = 10  # resumed
            until(lambda: session.poll(0.02) is not None and farm.pressed[1] > paused, 10,
                  "presses again")  # fmt: skip
            let_go(farm)
            helps: set[int] = set()

            def all_helps() -> bool:
                session.poll(0.02)
                helps.update(f.seq for f in session.frames if is_help(f))
                return len(helps) >= farm.pressed[1]

            until(all_helps, 10, "one help event per press")
        assert farm.pressed[0] == 0


def test_an_unplugged_pty_stays_open_and_passes_nothing_until_replug() -> None:
    with SeatFarm(1, pty=True) as farm:
        seat = booted(farm).seats[0]
        for op in (farm.unplug, farm.replug, farm.status):
            with pytest.raises(IndexError):
                op(1)
        with serial.Serial(seat.url, timeout=0.01) as port:
            session = Session(port, read_timeout=0.01)
            session.sync()
            assert farm.unplug(0) is True
            status = farm.status(0)
            assert not status.plugged and not status.connected  # the device is still open
            farm.load_hz = 5  # events the seat writes to nobody
            until(lambda: farm.status(0).discarded > status.discarded, 10, "writes dropped")
            let_go(farm)
            pressed = farm.pressed[0]
            assert not [f for f in session.poll(0) if is_help(f)]  # nothing came through
            assert farm.replug(0) is True
            until(lambda: len({f.seq for f in session.poll(0.02) + session.frames
                               if is_help(f)}) >= pressed, 15,
                  "the help events resent once replugged")  # fmt: skip
            session.sync()
        assert farm.status(0).plugged and seat.dropped == 0


def test_the_agents_hands_lift_the_headset_and_press_buttons_between_passes() -> None:
    with SeatFarm(2) as farm:
        assert all(farm.status(i).on_hanger for i in range(2))  # empty desks
        port = serial.serial_for_url(farm.seats[0].url, timeout=0.01)
        try:
            session = Session(port, read_timeout=0.01)
            session.sync()
            assert farm.set_input(0, IN_HANGER, False) is True  # the agent wears it
            assert farm.set_input(0, IN_HANGER, False) is False  # lifted already
            assert not farm.status(0).on_hanger and farm.status(1).on_hanger
            farm.press(0, IN_READY)
            ready = session.wait_for(lambda f: f.kind is Kind.EVENT and f.fields[:2] == (
                EventCode.STATE, 1), timeout=5)  # fmt: skip
            assert ready.fields[4] == 1  # why: the button
            assert farm.seats[0].board.bits == 0  # let go: only the headset worn
        finally:
            port.close()
        with pytest.raises(ValueError, match="no input bit 32"):
            farm.set_input(0, 32, True)
        with pytest.raises(ValueError, match="not a button"):
            farm.press(0, IN_HANGER)
        with pytest.raises(IndexError):
            farm.set_input(2, IN_HANGER, True)
