"""The call distributor's decisions, driven directly (no broker, no seats): which seat gets
a call, what happens on no answer, abandon, hold, transfers and outbound calls, and that a
bad request changes nothing. The same engine runs against virtual seats over MQTT in
test_flows.py."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.contract.payloads import CallEvent
from gateway.pbx.acd import Acd, AcdError, SeatCommand
from gateway.pbx.calls import Action


def acd(**kw: Any) -> Acd:
    queues = kw.pop("queues", {"support": ["s1", "s2", "s3"], "sales": ["s3", "s4"]})
    return Acd(pbx="p1", queues=queues, **kw)


def ready(a: Acd, seat: str, at: float) -> None:
    a.seat_state(seat, state="ready", as_of=at)


def events(effects: list[Any]) -> list[tuple[str, str | None]]:
    return [(e.type, e.seat) for e in effects if isinstance(e, CallEvent)]


def commands(effects: list[Any]) -> list[tuple[str, str, int | None]]:
    return [(c.seat, c.body["command"], c.body.get("call")) for c in effects
            if isinstance(c, SeatCommand)]  # fmt: skip


def test_each_call_goes_to_the_longest_idle_ready_seat() -> None:
    a = acd()
    ready(a, "s1", 10.0)
    ready(a, "s2", 5.0)
    ready(a, "s3", 7.0)
    first = a.arrive(queue="support", at=20.0)
    second = a.arrive(queue="support", at=21.0)
    out = a.take()
    assert commands(out) == [("s2", "offer", first), ("s3", "offer", second)]
    offer = next(c for c in out if isinstance(c, SeatCommand))
    assert offer.body["ring_limit"] == 3 and offer.body["ring_ms"] == 5000
    assert events(out) == [("enter_queue", None), ("offer", "s2"), ("enter_queue", None),
                           ("offer", "s3")]  # fmt: skip


def test_a_call_waits_until_a_seat_of_its_queue_is_ready() -> None:
    a = acd()
    ready(a, "s1", 1.0)  # s1 is not in sales
    call = a.arrive(queue="sales", at=2.0)
    assert commands(a.take()) == []
    assert [c.id for c in a.waiting("sales")] == [call]
    ready(a, "s4", 9.0)
    out = a.take()
    assert commands(out) == [("s4", "offer", call)]
    offer = next(e for e in out if isinstance(e, CallEvent) and e.type == "offer")
    assert offer.wait_s == 7.0


def test_a_seat_in_two_queues_takes_the_call_that_waited_longest() -> None:
    a = acd()
    older = a.arrive(queue="sales", at=1.0)
    a.arrive(queue="support", at=2.0)
    a.take()
    ready(a, "s3", 3.0)
    assert commands(a.take()) == [("s3", "offer", older)]


def test_ring_no_answer_requeues_at_the_front_and_offers_the_next_agent() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    first = a.arrive(queue="support", at=10.0)
    second = a.arrive(queue="support", at=11.0)  # waits: nobody else is Ready
    a.take()
    a.seat_event("s1", event="ring_no_answer", call=first, a=15000, b=1, at=25.0)
    out = a.take()
    rona = next(e for e in out if isinstance(e, CallEvent) and e.type == "ring_no_answer")
    assert (rona.seat, rona.ring_s, rona.rings, rona.detail) == ("s1", 15.0, 3, "rang out")
    assert [c.id for c in a.waiting("support")] == [first, second]  # at the front
    ready(a, "s3", 26.0)
    out = a.take()
    assert commands(out) == [("s3", "offer", first)]


def test_a_seat_that_rang_out_comes_after_the_other_ready_seats() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    ready(a, "s2", 3.0)
    call = a.arrive(queue="support", at=10.0)
    a.take()
    # the seat's state (Ready again, below its miss limit) and its ring-no-answer event
    # travel different paths from the gateway: the state may come first
    a.seat_state("s1", state="ready", as_of=25.1)
    a.seat_event("s1", event="ring_no_answer", call=call, a=15000, b=1, at=25.0)
    # s1 has been idle longest, but it just rang out on this call: the next agent gets it
    assert commands(a.take()) == [("s2", "offer", call)]


def test_the_seat_that_rang_out_gets_the_call_again_when_it_is_the_only_one() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    call = a.arrive(queue="support", at=2.0)
    a.seat_event("s1", event="ring_no_answer", call=call, a=15000, b=1, at=17.0)
    a.take()
    ready(a, "s1", 17.1)
    assert commands(a.take()) == [("s1", "offer", call)]


def test_an_offer_the_seat_refuses_goes_to_the_next_agent() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    ready(a, "s2", 2.0)
    call = a.arrive(queue="support", at=3.0)
    offer = a.take()[1]
    assert isinstance(offer, SeatCommand) and offer.seat == "s1"
    a.command_result("s1", command=offer.body["id"], status="rejected", error="wrong_state",
                     at=3.1)  # fmt: skip
    out = a.take()
    assert commands(out) == [("s1", "cancel", call), ("s2", "offer", call)]
    rona = next(e for e in out if isinstance(e, CallEvent) and e.type == "ring_no_answer")
    assert rona.detail == "offer rejected: wrong_state" and rona.rings == 0


def test_a_seat_that_never_reports_is_timed_out() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    ready(a, "s2", 2.0)
    call = a.arrive(queue="support", at=3.0)
    a.take()
    assert a.next_due() == 3.0 + 15.0 + 5.0
    a.tick(22.9)
    assert a.take() == []
    a.tick(23.0)
    out = a.take()
    assert commands(out) == [("s1", "cancel", call), ("s2", "offer", call)]


def test_callers_abandon_after_their_patience_while_queued_or_ringing() -> None:
    a = acd()
    queued = a.arrive(queue="support", at=0.0, patience_s=30.0)
    a.tick(29.9)
    assert events(a.take()) == [("enter_queue", None)]
    a.tick(30.0)
    out = a.take()
    ab = [e for e in out if isinstance(e, CallEvent)]
    assert [(e.type, e.wait_s, e.by) for e in ab] == [("abandon", 30.0, "caller")]
    assert queued not in a.calls and a.waiting("support") == []
    ready(a, "s1", 31.0)
    ringing = a.arrive(queue="support", at=40.0, patience_s=5.0)
    a.take()
    a.tick(45.0)
    out = a.take()
    assert commands(out) == [("s1", "cancel", ringing)]
    assert events(out) == [("abandon", "s1")]
    assert a.seat_call("s1") is None


def test_an_answer_just_after_the_caller_gave_up_releases_the_seat() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    call = a.arrive(queue="support", at=2.0, patience_s=5.0)
    a.tick(7.0)  # the caller hangs up; the seat is sent cancel
    a.take()
    a.seat_event("s1", event="answered", call=call, a=4990, at=7.01)  # lifted meanwhile
    assert commands(a.take()) == [("s1", "released", call)]
    assert a.counts["answered_after_end"] == 1 and call not in a.calls


def test_answer_hold_unhold_and_the_caller_hanging_up() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    call = a.arrive(queue="support", at=10.0, talk_s=60.0,
                    actions=[Action(after_s=5, do="hold"), Action(after_s=40, do="unhold")])
    a.take()
    a.seat_event("s1", event="answered", call=call, a=4200, at=14.3)
    out = a.take()
    answer = out[0]
    assert isinstance(answer, CallEvent) and answer.type == "answer"
    assert (answer.wait_s, answer.ring_s, answer.rings) == (4.3, 4.2, 1)
    a.tick(19.3)
    assert commands(a.take()) == [("s1", "hold", call)]
    a.tick(54.3)
    out = a.take()
    assert commands(out) == [("s1", "hold", call)]
    assert next(c for c in out if isinstance(c, SeatCommand)).body["on"] is False
    unhold = next(e for e in out if isinstance(e, CallEvent))
    assert (unhold.type, unhold.hold_s) == ("unhold", 35.0)
    a.tick(74.3)
    out = a.take()
    assert commands(out) == [("s1", "released", call)]
    release = next(e for e in out if isinstance(e, CallEvent))
    assert (release.type, release.by, release.talk_s, release.hold_s) == (
        "release", "caller", 60.0, 35.0)
    assert call not in a.calls


def test_the_agent_hanging_up_by_hook_releases_the_call() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    call = a.arrive(queue="support", at=10.0)
    a.seat_event("s1", event="answered", call=call, a=1000, at=11.0)
    a.take()
    a.seat_event("s1", event="released", call=call, a=2, at=41.0)
    out = a.take()
    assert commands(out) == []  # the seat did it itself
    assert [(e.type, e.by, e.talk_s) for e in out if isinstance(e, CallEvent)] == [
        ("release", "agent", 30.0)]


def answered_call(a: Acd, seat: str = "s1") -> int:
    ready(a, seat, 1.0)
    call = a.arrive(queue="support", at=10.0)
    a.seat_event(seat, event="answered", call=call, a=1000, at=11.0)
    a.take()
    return call


def test_blind_transfer_to_a_seat_that_answers() -> None:
    a = acd()
    call = answered_call(a)
    ready(a, "s2", 12.0)
    a.transfer(call, kind="blind", seat="s2", note="billing question, account 7", at=20.0)
    out = a.take()
    assert commands(out) == [("s1", "hold", call), ("s2", "offer", call)]
    offer = [c for c in out if isinstance(c, SeatCommand)][1]
    assert offer.body["ring_limit"] == 5  # seed 004
    transfer = out[0]
    assert isinstance(transfer, CallEvent) and transfer.type == "transfer"
    assert transfer.target is not None and transfer.target.note == "billing question, account 7"
    a.seat_event("s2", event="answered", call=call, a=6000, at=26.0)
    out = a.take()
    assert commands(out) == [("s1", "released", call)]
    assert events(out) == [("answer", "s2"), ("unhold", "s1"), ("release", "s1")]
    assert a.seat_call("s1") is None and a.seat_call("s2") == call
    a.seat_event("s2", event="released", call=call, a=2, at=50.0)
    assert events(a.take()) == [("release", "s2")]


def test_a_transfer_unanswered_after_five_rings_returns_to_the_sender() -> None:
    a = acd()
    call = answered_call(a)
    ready(a, "s2", 12.0)
    a.transfer(call, kind="blind", seat="s2", at=20.0)
    a.take()
    a.seat_event("s2", event="ring_no_answer", call=call, a=25000, b=1, at=45.0)
    out = a.take()
    assert events(out) == [("ring_no_answer", "s2"), ("transfer_return", "s1"),
                           ("unhold", "s1")]  # fmt: skip
    assert commands(out) == [("s1", "hold", call)]  # off hold: the sender has the caller
    assert a.calls[call].seat == "s1" and a.seat_call("s2") is None


def test_consultative_transfer_completed_and_called_off() -> None:
    a = acd()
    call = answered_call(a)
    ready(a, "s2", 12.0)
    a.transfer(call, kind="consultative", seat="s2", note="wants a refund", at=20.0)
    a.take()
    a.seat_event("s2", event="answered", call=call, a=3000, at=23.0)
    out = a.take()
    assert events(out) == [("answer", "s2")]  # the agents talk, the caller still on hold
    assert a.calls[call].seat == "s1"
    a.complete(call, at=40.0)
    out = a.take()
    assert events(out) == [("unhold", "s1"), ("release", "s1")]
    assert a.calls[call].seat == "s2"

    b = acd()
    call = answered_call(b)
    ready(b, "s2", 12.0)
    b.transfer(call, kind="consultative", seat="s2", at=20.0)
    b.seat_event("s2", event="answered", call=call, a=3000, at=23.0)
    b.take()
    b.unhold(call, at=30.0)  # the sender takes the caller back
    out = b.take()
    assert events(out) == [("release", "s2"), ("unhold", "s1")]
    assert b.calls[call].seat == "s1" and b.seat_call("s2") is None


def _releases(out: list[Any]) -> dict[str | None, tuple[float | None, float | None, str]]:
    return {e.seat: (e.talk_s, e.hold_s, e.detail) for e in out
            if isinstance(e, CallEvent) and e.type == "release"}  # fmt: skip


def _consulting(at_answer: float = 23.0) -> tuple[Acd, int]:
    """s1 answered at 11, consults s2 from 20 (the caller on hold at s1), s2 answers."""
    a = acd()
    call = answered_call(a)
    ready(a, "s2", 12.0)
    a.transfer(call, kind="consultative", seat="s2", note="refund", at=20.0)
    a.seat_event("s2", event="answered", call=call, a=3000, at=at_answer)
    a.take()
    return a, call


def test_a_consultative_transfer_s_talk_s_is_each_seat_s_answer_to_release() -> None:
    """docs/mqtt.md: a release's `talk_s` is this seat's answer -> release, holds included.
    The consulted seat's leg runs from its own answer (23), not from the hand-over: the
    consultation is its handling time too (its seat is talking from 23, docs/kpi.md AHT)."""
    a, call = _consulting()
    a.complete(call, at=40.0)
    assert _releases(a.take()) == {"s1": (29.0, 20.0, "transferred")}  # 11 .. 40, held 20 ..
    a.hangup(call, at=70.0, by="caller")
    assert _releases(a.take()) == {"s2": (47.0, 20.0, "")}  # 23 .. 70: not 30 (40 .. 70)

    # a consultation that ends before the hand-over: the consulted seat's leg still has its
    # length (docs/kpi.md leaves it out of handling by its detail, not by a talk_s of 0)
    a, call = _consulting()
    a.unhold(call, at=30.0)  # the sender takes the caller back
    assert _releases(a.take())["s2"][0] == 7.0
    a, call = _consulting()
    a.seat_event("s2", event="released", call=call, at=33.0)  # the consulted agent hangs up
    assert _releases(a.take()) == {"s2": (10.0, 0.0, "consultation ended")}
    a, call = _consulting()
    a.hangup(call, at=35.0, by="caller")  # the caller hangs up on hold
    assert _releases(a.take()) == {"s2": (12.0, 0.0, "the caller hung up"),
                                   "s1": (24.0, 15.0, "")}  # fmt: skip


def test_blind_transfer_to_a_queue_releases_the_sender() -> None:
    a = acd()
    call = answered_call(a)
    a.transfer(call, kind="blind", queue="sales", note="upgrade", at=20.0)
    out = a.take()
    assert events(out) == [("transfer", "s1"), ("release", "s1"), ("enter_queue", None)]
    # the sender's transfer and release are of the queue it answered from; the new queue's
    # visit starts at enter_queue (docs/mqtt.md `queue`, docs/kpi.md Keys)
    assert [e.queue for e in out if isinstance(e, CallEvent)] == ["support", "support", "sales"]
    assert commands(out) == [("s1", "released", call)]
    ready(a, "s4", 21.0)
    out = a.take()
    assert commands(out) == [("s4", "offer", call)]
    offer = next(e for e in out if isinstance(e, CallEvent))
    assert offer.queue == "sales"


def test_outbound_unanswered_hangs_up_after_six_rings() -> None:
    a = acd()
    call = a.dial(queue="sales", number="+862161234568", campaign="c1", at=0.0)
    assert events(a.take()) == [("dial", None)]
    a.tick(29.9)
    assert a.take() == []
    a.tick(30.0)  # 6 rings x 5 s (seed 003)
    out = a.take()
    [ev] = [e for e in out if isinstance(e, CallEvent)]
    assert (ev.type, ev.rings, ev.ring_s, ev.number) == ("no_answer", 6, 30.0, "***4568")
    assert call not in a.calls


def test_outbound_answered_goes_to_an_agent_or_is_dropped() -> None:
    a = acd()
    ready(a, "s4", 1.0)
    first = a.dial(queue="sales", number="+862161234568", answer_after_rings=2, talk_s=30,
                   at=0.0)  # fmt: skip
    second = a.dial(queue="sales", number="+862161234569", answer_after_rings=2, at=0.0)
    a.take()
    a.tick(7.5)
    out = a.take()
    assert commands(out) == [("s4", "connected", first)]
    assert events(out) == [("answer", "s4"), ("drop", None)]
    assert second not in a.calls
    a.tick(37.5)
    assert events(a.take()) == [("release", "s4")]


def test_a_manual_dial_keeps_its_agent() -> None:
    a = acd()
    a.seat_state("s4", state="not_ready", as_of=1.0)
    call = a.dial(queue="sales", number="+862161234568", seat="s4", answer_after_rings=1,
                  at=2.0)  # fmt: skip
    ready(a, "s3", 2.0)
    inbound = a.arrive(queue="sales", at=2.1)
    assert ("s3", "offer", inbound) in commands(a.take())
    a.tick(4.5)
    assert commands(a.take()) == [("s4", "connected", call)]


def test_stale_seat_state_is_ignored() -> None:
    a = acd()
    a.seat_state("s1", state="not_ready", as_of=10.0)
    a.seat_state("s1", state="ready", as_of=9.0)  # published before the pause
    a.arrive(queue="support", at=11.0)
    assert commands(a.take()) == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (lambda a, c: a.arrive(queue="nope", at=1.0), "no queue 'nope'"),
        (lambda a, c: a.hold(999, at=1.0), "no call 999"),
        (lambda a, c: a.transfer(c, kind="blind", seat="s9", at=20.0), "no seat 's9'"),
        (lambda a, c: a.transfer(c, kind="blind", seat="s2", at=20.0), "seat s2 is not Ready"),
        (lambda a, c: a.transfer(c, kind="blind", seat="s1", queue="sales", at=20.0),
         "exactly one of seat and queue"),
        (lambda a, c: a.transfer(c, kind="consultative", queue="sales", at=20.0),
         "no Ready seat in queue sales"),
        (lambda a, c: a.unhold(c, at=20.0), "not on hold"),
        (lambda a, c: a.complete(c, at=20.0), "no answered consultation"),
        (lambda a, c: a.dial(queue="sales", number="1", seat="s1", at=20.0),
         "seat s1 cannot dial now"),
        (lambda a, c: a.dial(queue="sales", number="1", ring_limit=7, at=20.0), "seed 003"),
        (lambda a, c: a.arrive(queue="support", patience_s=-1, at=20.0), "negative"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(request_: Any, message: str) -> None:
    a = acd()
    call = answered_call(a)
    a.seat_state("s2", state="not_ready", as_of=12.0)
    before = (dict(a.calls), a.seat_call("s1"), a.counts.copy(), a.next_due())
    with pytest.raises(AcdError, match=message):
        request_(a, call)
    assert a.take() == []
    assert (dict(a.calls), a.seat_call("s1"), a.counts.copy(), a.next_due()) == before
    assert a.calls[call].phase.value == "talking"


def test_hold_of_a_call_still_ringing_is_refused() -> None:
    a = acd()
    ready(a, "s1", 1.0)
    call = a.arrive(queue="support", at=2.0)
    a.take()
    with pytest.raises(AcdError, match="only a call in talk can be held"):
        a.hold(call, at=3.0)
