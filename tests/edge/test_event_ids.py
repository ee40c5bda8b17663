"""Seat event ids past the seq's wrap: a link (gateway.edge.link) fed the seat's lines
directly, storing into a real outbox file. `<board>-<boot>-<n>`, n counting the reliable
frames of a boot on where the seq wraps after 65535 (docs/mqtt.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.contract.payloads import CommandResult, SeatEvent, seat_event_n
from gateway.edge.inventory import SeatBinding
from gateway.edge.link import SeatLink
from gateway.edge.outbox import Outbox
from gateway.edge.store import AsyncOutbox
from gateway.seatlink.codec import MAX_SEQ, Kind, encode, next_seq

BOARD = "5EA70001"
SEAT = "s101"


class Hub:
    """What a link needs of the edge service: one seat bound to BOARD, the outbox."""

    gateway = "gw1"

    def __init__(self, outbox: AsyncOutbox) -> None:
        self.outbox = outbox
        self._binding = SeatBinding(board=BOARD, seat=SEAT, name=None, settings={})

    def binding(self, board: str) -> SeatBinding | None:
        return self._binding if board == BOARD else None

    def changed(self, link: SeatLink) -> None:
        pass

    def result(self, result: CommandResult) -> None:
        pass

    def sign_in(self, seat: str) -> None:
        return None  # the gateway never tells these seats who is signed in


def hello(seq: int, boot: int) -> bytes:
    return encode(seq, Kind.HELLO, [1, boot, "1.0", BOARD, "desk"])


def heartbeat(boot: int) -> bytes:
    return encode(0, Kind.HEARTBEAT, [5, 100_000, 3, 0, 0, 2, 0, 0, boot, "1.0", BOARD])


def event(seq: int) -> bytes:
    # answered after `seq` ms of ringing: a frame says which it is, whatever id it gets
    return encode(seq, Kind.EVENT, [2, 3, 0, 1, seq, 0])


def seqs(first: int, count: int) -> list[int]:
    out, seq = [], first
    for _ in range(count):
        out.append(seq)
        seq = next_seq(seq)
    return out


class Gateway:
    """One gateway process's part: an outbox opened on the file and a link of the seat's,
    its count placed as the gateway places it (from the newest stored) before frames come."""

    def __init__(self, path: Path) -> None:
        self.db = Outbox(path)
        self.box = AsyncOutbox(self.db)
        self.link = SeatLink("socket://seat.invalid:1", hub=Hub(self.box))

    async def heard(self, boot: int) -> None:
        """The board's heartbeat names it and a boot whose count is not under way: the link
        holds the seat's frames until its sender task has placed the count."""
        await self.link._feed(heartbeat(boot))
        assert self.link.rx.holding and (self.link.board, self.link.boot) == (BOARD, boot)
        await self.link._place_count(BOARD, boot)
        assert not self.link.rx.holding

    async def feed(self, lines: Iterable[bytes], chunk: int = 4000) -> None:
        data = list(lines)
        for at in range(0, len(data), chunk):
            await self.link._feed(b"".join(data[at : at + chunk]))

    def events(self) -> list[dict[str, Any]]:
        """Everything stored and not yet published, oldest first."""
        return [json.loads(e.payload) for e in self.db.pending(limit=1_000_000)]

    def close(self) -> None:
        self.box.close()
        self.db.close()


def published_before(path: Path, boot: int, seq: int) -> None:
    """An earlier gateway process took this boot's frames up to `seq` (no wrap yet) and the
    broker has them: where a long boot's count stands, without 65,535 frames to get there."""
    with Outbox(path) as db:
        db.put(board=BOARD, boot=boot, seq=seq, seat=SEAT, payload=b"{}")
        db.remember_link("socket://seat.invalid:1", board=BOARD, boot=boot)
        db.delivered(e.id for e in db.pending())


def check(events: list[dict[str, Any]]) -> list[int]:
    """Every id is its payload's own (board, boot, seq) with the frame's ordinal; the n."""
    ns = []
    for body in events:
        e = SeatEvent.model_validate(body)
        n = seat_event_n(e)
        assert n is not None, f"id {e.id} is not one of seq {e.seq}"
        if e.type == "event":
            assert e.data["a"] == e.seq  # the frame the seat sent with this seq
        ns.append(n)
    return ns


def test_a_boot_past_the_wrap_gets_distinct_increasing_ids(tmp_path: Path) -> None:
    """65,535 frames and 100 more: the seq starts again at 1, the id's n does not. A
    retransmitted frame (the seat resends what it has no ack for) is no new event."""

    async def scenario() -> None:
        gw = Gateway(tmp_path / "o.db")
        try:
            await gw.heard(7)
            lines = [hello(1, 7)] + [event(s) for s in seqs(2, MAX_SEQ - 1 + 100)]
            # the seat's go-back-N resend of its last few, across the wrap too
            lines[MAX_SEQ + 5 : MAX_SEQ + 5] = lines[MAX_SEQ - 5 : MAX_SEQ + 5]
            await gw.feed(lines)
            events = gw.events()
            ns = check(events)
            assert ns == list(range(1, MAX_SEQ + 101))
            assert len({e["id"] for e in events}) == len(events) == MAX_SEQ + 100
            after = events[MAX_SEQ]
            assert (after["seq"], after["id"]) == (1, f"{BOARD}-7-{MAX_SEQ + 1}")
            assert events[MAX_SEQ - 1]["id"] == f"{BOARD}-7-{MAX_SEQ}"  # seq 65535
            assert gw.link.rx.duplicates == 10  # the resent ones, stored once
        finally:
            gw.close()

    asyncio.run(scenario())


def test_a_gateway_restart_after_the_wrap_goes_on_with_the_ids(tmp_path: Path) -> None:
    """The seat keeps what it had no ack for and resends it to the next gateway process: a
    frame stored before keeps its one id (refused as a repeat), the frames after it are
    numbered on from the newest stored, past the wrap."""
    path = tmp_path / "o.db"
    published_before(path, 7, MAX_SEQ - 80)

    async def before() -> list[str]:
        gw = Gateway(path)
        try:
            await gw.heard(7)
            await gw.feed(event(s) for s in seqs(MAX_SEQ - 79, 100))  # through the wrap
            return [e["id"] for e in gw.events()]
        finally:
            gw.close()  # killed: the seat heard no ack for its newest frames

    async def after() -> tuple[list[dict[str, Any]], int | None]:
        gw = Gateway(path)
        try:
            # the link is placed from the outbox: the seat's board, and where its count stood
            assert gw.db.linked_board("socket://seat.invalid:1") == (BOARD, 7)
            await gw.heard(7)
            assert (gw.link.rx.last, gw.link.rx.n) == (20, MAX_SEQ + 20)
            await gw.feed([event(s) for s in range(15, 31)])  # 15..20 again, then new
            return gw.events(), gw.db.last_ordinal(BOARD, 7)
        finally:
            gw.close()

    first = asyncio.run(before())
    assert first == [f"{BOARD}-7-{n}" for n in range(MAX_SEQ - 79, MAX_SEQ + 21)]
    events, newest = asyncio.run(after())
    ns = check(events)
    assert [e["id"] for e in events[: len(first)]] == first  # the same, stored once
    assert ns[len(first) :] == [MAX_SEQ + s for s in range(21, 31)]
    assert newest == MAX_SEQ + 30


def test_a_new_boot_counts_from_1_again(tmp_path: Path) -> None:
    """A board that restarts (its hello with a new boot counter) numbers its frames from 1,
    and so do its ids; so does a boot the gateway first hears of in a heartbeat."""

    published_before(tmp_path / "o.db", 7, MAX_SEQ - 2)

    async def scenario() -> None:
        gw = Gateway(tmp_path / "o.db")
        try:
            await gw.heard(7)
            await gw.feed(event(s) for s in seqs(MAX_SEQ - 1, 5))  # 65534 65535 1 2 3
            await gw.feed([hello(1, 8), event(2), event(3)])  # restarted mid-stream
            await gw.heard(9)  # restarted again: its heartbeat says so before its hello
            await gw.feed([hello(1, 9), event(2)])
            events = gw.events()
            check(events)
            assert [e["id"] for e in events] == [
                *(f"{BOARD}-7-{n}" for n in range(MAX_SEQ - 1, MAX_SEQ + 4)),
                f"{BOARD}-8-1", f"{BOARD}-8-2", f"{BOARD}-8-3", f"{BOARD}-9-1", f"{BOARD}-9-2"]
            assert gw.db.last_ordinal(BOARD, 7) == MAX_SEQ + 3  # boot 7's count is kept
        finally:
            gw.close()

    asyncio.run(scenario())


def test_a_consumer_checks_the_id_against_board_boot_and_seq() -> None:
    """docs/mqtt.md: the id's n satisfies (n - 1) % 65535 + 1 == seq, written as a
    canonical decimal after `<board>-<boot>-` (a board uid may hold `-` itself)."""

    def n_of(id_: str, seq: int, board: str = BOARD) -> int | None:
        return seat_event_n(SeatEvent(id=id_, seat=SEAT, gateway="gw1", board=board, boot=7,
                                      seq=seq, t=1.0, type="hello", data={}))  # fmt: skip

    assert n_of(f"{BOARD}-7-42", 42) == 42
    assert n_of(f"{BOARD}-7-{MAX_SEQ}", MAX_SEQ) == MAX_SEQ
    assert n_of(f"{BOARD}-7-{MAX_SEQ + 1}", 1) == MAX_SEQ + 1
    assert n_of(f"{BOARD}-7-{3 * MAX_SEQ + 42}", 42) == 3 * MAX_SEQ + 42
    assert n_of("A-B-7-9", 9, board="A-B") == 9
    # the last: its seq, but past what a 64-bit integer column holds
    for wrong, seq in [(f"{BOARD}-7-43", 42), (f"{BOARD}-7-{MAX_SEQ + 42}", 41),
                       (f"{BOARD}-7-042", 42), (f"{BOARD}-7-+42", 42), (f"{BOARD}-7-0", MAX_SEQ),
                       (f"{BOARD}-8-42", 42), (f"X{BOARD}-7-42", 42), (f"{BOARD}-7-42 ", 42),
                       (f"{BOARD}-7-{'1' * 19}", 8866)]:  # fmt: skip
        assert n_of(wrong, seq) is None, wrong
