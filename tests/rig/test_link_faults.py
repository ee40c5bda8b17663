"""FaultyLink: a TCP proxy that damages bytes and can be unplugged, between a gateway and a
seat link. Real sockets on 127.0.0.1; no QEMU needed (these tests use no rig fixture)."""

from __future__ import annotations

import math
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import serial

from gateway.rig.link_faults import TO_GATEWAY, TO_SEAT, FaultyLink
from gateway.seatlink.codec import Kind
from gateway.seatlink.session import Session
from gateway.virtual_farm import SeatFarm

N = 200_000


@contextmanager
def proxied(corrupt: float = 0.0, seed: int = 0) -> Iterator[
        tuple[FaultyLink, socket.socket, socket.socket, socket.socket]]:  # fmt: skip
    """A link to a plain TCP server of the test's: (link, gateway end, target end, server)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    try:
        with FaultyLink(target=server.getsockname()[:2], corrupt=corrupt, seed=seed) as link:
            gateway = socket.create_connection(address(link), timeout=5)
            target, _ = server.accept()
            target.settimeout(5)
            try:
                yield link, gateway, target, server
            finally:
                gateway.close()
                target.close()
    finally:
        server.close()


def address(link: FaultyLink) -> tuple[str, int]:
    host, port = link.url.removeprefix("socket://").rsplit(":", 1)
    return host, int(port)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, f"EOF after {len(out)} of {n} bytes"
        out += chunk
    return bytes(out)


def one_bit_flips(sent: bytes, got: bytes) -> int:
    assert len(sent) == len(got)
    diffs = [a ^ b for a, b in zip(sent, got, strict=True) if a != b]
    assert all(d & (d - 1) == 0 for d in diffs), "a damaged byte has more than one bit flipped"
    return len(diffs)


def test_bytes_pass_unchanged_both_ways_without_noise() -> None:
    data = random.Random(1).randbytes(N)
    with proxied() as (link, gateway, target, _):
        gateway.sendall(data)
        assert recv_exactly(target, N) == data
        target.sendall(data[::-1])
        assert recv_exactly(gateway, N) == data[::-1]
        assert link.counters() == {"forwarded": {TO_SEAT: N, TO_GATEWAY: N},
                                   "corrupted": {TO_SEAT: 0, TO_GATEWAY: 0}}


@pytest.mark.parametrize("p", [0.01, 0.001])
def test_about_the_asked_fraction_of_bytes_gets_one_bit_flipped(p: float) -> None:
    data = random.Random(2).randbytes(N)
    runs = []
    for _ in range(2):
        with proxied(corrupt=p, seed=42) as (link, gateway, target, _):
            gateway.sendall(data)
            to_seat = recv_exactly(target, N)
            target.sendall(data)
            to_gateway = recv_exactly(gateway, N)
            flips = (one_bit_flips(data, to_seat), one_bit_flips(data, to_gateway))
            counted = link.counters()
            assert flips == (counted["corrupted"][TO_SEAT], counted["corrupted"][TO_GATEWAY])
            assert counted["forwarded"] == {TO_SEAT: N, TO_GATEWAY: N}
        # binomial: mean N p; 6 standard deviations either way is never hit by chance
        mean, sd = N * p, math.sqrt(N * p * (1 - p))
        for n in flips:
            assert mean - 6 * sd <= n <= mean + 6 * sd
        runs.append((to_seat, to_gateway))
    assert runs[0] == runs[1]  # the same seed damages the same bytes


def test_unplug_gives_eof_and_refuses_connections_until_replug() -> None:
    with proxied() as (link, gateway, target, server):
        port = address(link)[1]
        gateway.sendall(b"before\n")
        assert recv_exactly(target, 7) == b"before\n"
        link.unplug()
        assert not link.plugged
        gateway.settimeout(5)
        assert gateway.recv(100) == b""  # EOF, as a pulled cable
        assert target.recv(100) == b""  # the seat side too
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address(link), timeout=5).close()
        link.replug()
        assert address(link)[1] == port and link.plugged
        # the proxy connects on to the same target server again
        again = socket.create_connection(address(link), timeout=5)
        seat_end, _ = server.accept()
        try:
            again.sendall(b"after\n")
            seat_end.settimeout(5)
            assert recv_exactly(seat_end, 6) == b"after\n"
            assert link.connections == 2  # counted before the connection to the target
        finally:
            again.close()
            seat_end.close()


def test_a_session_reaches_a_virtual_seat_through_the_link_and_after_a_replug() -> None:
    with SeatFarm(1) as farm:
        seat = farm.seats[0]
        while seat.passes < 3:  # hello and snapshot written: a resend brings the hello first
            time.sleep(0.01)
        host, port = seat.url.removeprefix("socket://").rsplit(":", 1)
        with FaultyLink(target=(host, int(port))) as link:
            with serial.serial_for_url(link.url, timeout=0.01) as s:
                session = Session(s, read_timeout=0.01)
                assert session.wait_for(lambda f: f.kind is Kind.HELLO).fields[3] == seat.uid
                session.sync()
                link.unplug()
                deadline = time.monotonic() + 2
                while seat.connected:  # the seat's side of the cable went too
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            link.replug()
            with serial.serial_for_url(link.url, timeout=0.01) as s:
                Session(s, read_timeout=0.01).sync()  # the same seat answers again
            assert seat.boot == 1 and seat.connections == 2
            forwarded = link.counters()["forwarded"]
            assert forwarded[TO_SEAT] > 0 and forwarded[TO_GATEWAY] > 0
