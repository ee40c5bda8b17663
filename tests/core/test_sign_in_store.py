"""The store keeps every change of who is signed in at a seat once (issue 19, part 2)."""

from __future__ import annotations

import json

from gateway.contract.payloads import SeatAgent
from tests.core.test_store import NOW, SITE, Message, opened, sql


def sign_in(seat: str, agent: str | None, t: float, *, id: str | None = None,
            previous: str | None = None) -> Message:  # fmt: skip
    change = SeatAgent(id=id or f"si-{seat}-{int(t)}", seat=seat, agent=agent,
                       name=None if agent is None else agent.title(), t=t, by="sup.li",
                       cause="self" if agent else "supervisor", previous=previous)  # fmt: skip
    return SITE.topic("seat_agent", seat=seat), change.dump()


def test_a_sign_in_is_stored_once_and_its_retained_copy_again_is_a_repeat(
        store_url: str) -> None:  # fmt: skip
    first = sign_in("s101", "a.lee", NOW - 3600)
    with opened(store_url) as store:
        result = store.ingest([first, first])
        assert (result.stored, result.duplicates) == (1, 1)
        assert [s.agent for s in result.new_sign_ins] == ["a.lee"]
        # the broker hands the retained copy over again after a reconnect
        again = store.ingest([first])
        assert (again.stored, again.duplicates, again.rejected) == (0, 1, {})
        assert store.counts()["db"]["sign_ins"] == 1
        assert store.counts()["db"]["events"] == 0
    assert sql(store_url, "SELECT count(*) FROM sign_in") == [(1,)]


def test_bad_sign_ins_are_counted_by_reason_and_never_stored(store_url: str) -> None:
    good = sign_in("s101", "a.lee", NOW - 60)
    obj = json.loads(good[1])
    with opened(store_url, known_seats={"s101"}) as store:
        result = store.ingest([
            (good[0], b"not json"),
            (good[0], json.dumps({**obj, "v": 2}).encode()),
            (good[0], json.dumps({**obj, "cause": "magic"}).encode()),
            (SITE.topic("seat_agent", seat="s102"), good[1]),  # the topic's seat is another
            (SITE.topic("seat_agent", seat="s999"),
             sign_in("s999", "a.lee", NOW - 60)[1]),  # not a seat of this site
            sign_in("s101", "b.wu", NOW + 3600),  # an hour ahead of the store's clock
            (good[0], json.dumps({**obj, "agent": "no spaces"}).encode()),
        ])
        assert result.stored == 0
        assert result.rejected == {"not_json": 1, "wrong_version": 1, "schema": 2,
                                   "topic_mismatch": 1, "unknown_seat": 1, "clock_skew": 1}
        # the same id with another agent later is a conflict, not a new change
        store.ingest([good])
        conflict = store.ingest([(good[0], json.dumps({**obj, "agent": "b.wu"}).encode())])
        assert conflict.rejected == {"id_conflict": 1}
        assert [s.agent for s in store.sign_ins()] == ["a.lee"]


def test_an_agent_signed_in_long_ago_is_still_taken(store_url: str) -> None:
    """The retained change of an agent signed in 40 days ago is the truth, not a clock
    never set (events that old are refused)."""
    with opened(store_url) as store:
        assert store.ingest([sign_in("s101", "a.lee", NOW - 40 * 86400)]).stored == 1


def test_the_sign_ins_of_a_window_start_with_who_was_signed_in_at_its_start(
        store_url: str) -> None:  # fmt: skip
    with opened(store_url) as store:
        store.ingest([sign_in("s101", "a.lee", NOW - 5000), sign_in("s101", None, NOW - 4000),
                      sign_in("s101", "b.wu", NOW - 3000), sign_in("s102", "c.ma", NOW - 9000),
                      sign_in("s101", "c.ma", NOW - 100)])  # fmt: skip
        got = [(s.seat, s.agent, s.t) for s in store.sign_ins(since=NOW - 3500,
                                                               until=NOW - 200)]  # fmt: skip
        # nobody at s101 when the window starts (a.lee signed out), then b.wu
        assert got == [("s101", None, NOW - 4000), ("s101", "b.wu", NOW - 3000),
                       ("s102", "c.ma", NOW - 9000)]  # fmt: skip
        tail = store.sign_in_tail(0)
        assert len(tail) == 5 and store.sign_in_position() == tail[-1][0]
        assert store.sign_in_tail(tail[2][0]) == tail[3:]
