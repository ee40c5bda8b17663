"""The KPI formulas of docs/kpi.md on small traces whose figures were worked out by hand.

Every expected number is a literal, with the arithmetic beside it; none is computed by the
code under test. Times are seconds after T0, a moment aligned to the hour (2027-01-15
08:00 UTC)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.core.kpi import (
    By,
    Kpis,
    StateInterval,
    Window,
    buckets,
    clip,
    kpis,
    rolling,
    state_intervals,
)

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC: a multiple of 900 and of 3600
BUCKET = Window(T0, T0 + 900)  # the 15 minutes of the main trace
NEXT = Window(T0 + 900, T0 + 1800)
UNTIL = T0 + 1800


class Call:
    """One call's events as dicts (docs/mqtt.md), steps numbered as they are added."""

    def __init__(self, call: int, *, queue: str = "support", direction: str = "inbound"):
        self.call, self.queue, self.direction = call, queue, direction
        self.events: list[dict[str, Any]] = []

    def __call__(self, kind: str, t: float, **fields: Any) -> Call:
        step = len(self.events) + 1
        event = {"v": 1, "id": f"p1-{self.call}-{step}", "pbx": "p1", "call": self.call,
                 "step": step, "type": kind, "t": T0 + t, "direction": self.direction,
                 "queue": self.queue, "seat": None, "number": "***1234", "arrived": T0,
                 "wait_s": None, "ring_s": None, "rings": None, "hold_s": None,
                 "talk_s": None, "by": None, "target": None, "campaign": None,
                 "detail": ""}  # fmt: skip
        event.update(fields)
        self.events.append(event)
        return self


class Seat:
    """One seat's events as dicts (docs/mqtt.md seat/{seat}/event), seq numbered."""

    def __init__(self, seat: str, *, board: str = "5EA70001", boot: int = 1):
        self.seat, self.board, self.boot, self.seq = seat, board, boot, 0
        self.events: list[dict[str, Any]] = []

    def _add(self, t: float, kind: str, data: dict[str, Any]) -> Seat:
        self.seq += 1
        self.events.append({"v": 1, "id": f"{self.board}-{self.boot}-{self.seq}",
                            "seat": self.seat, "gateway": "gw1", "board": self.board,
                            "boot": self.boot, "seq": self.seq, "t": T0 + t, "type": kind,
                            "data": data})  # fmt: skip
        return self

    def state(self, t: float, state: str, reason: str | None = None,
              call: int | None = None) -> Seat:  # fmt: skip
        return self._add(t, "event", {"event": "state", "state": state, "reason": reason,
                                      "call": call, "a": 1, "b": 0})  # fmt: skip

    def other(self, t: float, event: str, state: str) -> Seat:
        return self._add(t, "event", {"event": event, "state": state, "reason": None,
                                      "call": None, "a": 1, "b": 0})  # fmt: skip

    def snapshot(self, t: float, state: str, secs: int, reason: str | None = None,
                 call: int | None = None) -> Seat:  # fmt: skip
        return self._add(t, "snapshot", {"state": state, "reason": reason, "call": call,
                                         "secs": secs, "help": False, "off_hook": False,
                                         "hold_over_limit": False, "pending_state": None,
                                         "pending_reason": None, "misses": 0,
                                         "dropped": 0})  # fmt: skip

    def hello(self, t: float) -> Seat:
        return self._add(t, "hello", {"protocol": 1, "firmware": "x", "board_name": "pico"})


# --- the main trace: two seats, two queues, seven calls, one outbound -----------------------


def call_events() -> list[dict[str, Any]]:
    c1 = (Call(1)("enter_queue", 10)
          ("offer", 12, seat="s1", wait_s=2.0)
          ("answer", 17, seat="s1", wait_s=7.0, ring_s=5.0, rings=2)
          ("hold", 60, seat="s1")
          ("unhold", 80, seat="s1", hold_s=20.0)
          ("release", 137, seat="s1", talk_s=120.0, hold_s=20.0, by="caller"))  # fmt: skip
    blind_to_sales = {"kind": "blind", "seat": None, "queue": "sales", "note": "order"}
    c2 = (Call(2)("enter_queue", 100)
          ("offer", 101, seat="s2", wait_s=1.0)
          ("ring_no_answer", 116, seat="s2", ring_s=15.0, rings=3, detail="rang out")
          ("offer", 170, seat="s1", wait_s=70.0)
          ("answer", 175, seat="s1", wait_s=75.0, ring_s=5.0, rings=1)
          ("transfer", 200, seat="s1", target=blind_to_sales)
          ("release", 200, seat="s1", talk_s=25.0, hold_s=0.0, by="agent",
           detail="transferred")
          ("enter_queue", 200, queue="sales")
          ("offer", 201, seat="s2", queue="sales", wait_s=1.0)
          ("answer", 204, seat="s2", queue="sales", wait_s=4.0, ring_s=3.0, rings=1)
          ("release", 264, seat="s2", queue="sales", talk_s=60.0, hold_s=0.0,
           by="caller"))  # fmt: skip
    c3 = Call(3)("enter_queue", 300)("abandon", 312, wait_s=12.0, by="caller")
    c4 = (Call(4)("enter_queue", 400)
          ("offer", 420, seat="s1", wait_s=20.0)
          ("abandon", 430, seat="s1", wait_s=30.0, by="caller"))  # fmt: skip
    c5 = (Call(5)("enter_queue", 500)
          ("offer", 502, seat="s2", wait_s=2.0)
          ("answer", 525, seat="s2", wait_s=25.0, ring_s=23.0, rings=4)
          ("hold", 540, seat="s2")
          ("release", 585, seat="s2", talk_s=60.0, hold_s=45.0, by="caller"))  # fmt: skip
    c6 = (Call(6, queue="renewals", direction="outbound")
          ("dial", 600, seat="s1", campaign="renewals")
          ("answer", 610, seat="s1", ring_s=10.0, rings=2)
          ("hold", 620, seat="s1")
          ("release", 700, seat="s1", talk_s=90.0, hold_s=80.0, by="agent"))  # fmt: skip
    c8 = (Call(8, queue="renewals", direction="outbound")
          ("dial", 650, campaign="renewals")
          ("no_answer", 680, ring_s=30.0, rings=6))  # fmt: skip
    c7 = (Call(7)("enter_queue", 880)
          ("offer", 881, seat="s1", wait_s=1.0)
          ("answer", 885, seat="s1", wait_s=5.0, ring_s=4.0, rings=1)
          ("release", 950, seat="s1", talk_s=65.0, hold_s=0.0, by="caller"))  # fmt: skip
    return [e for c in (c1, c2, c3, c4, c5, c6, c7, c8) for e in c.events]


def seat_events() -> list[dict[str, Any]]:
    s1 = (Seat("s1").state(-100, "ready")
          .state(12, "ringing", call=1).state(17, "talking", call=1)
          .state(60, "hold", call=1).state(80, "talking", call=1).state(137, "acw", call=1)
          .state(167, "ready")
          .state(170, "ringing", call=2).state(175, "talking", call=2)
          .state(200, "acw", call=2).state(210, "ready")
          .state(420, "ringing", call=4).state(430, "ready")
          .state(500, "not_ready", "break").state(560, "ready")
          .state(610, "talking", call=6).state(620, "hold", call=6).state(700, "acw", call=6)
          .state(720, "ready")
          .state(881, "ringing", call=7).state(885, "talking", call=7)
          .state(950, "acw", call=7).state(960, "ready"))  # fmt: skip
    s2 = (Seat("s2", board="5EA70002").hello(40).state(50, "ready")
          .state(101, "ringing", call=2).state(116, "not_ready", "no_answer")
          .state(150, "ready")
          .state(201, "ringing", call=2).state(204, "talking", call=2)
          .state(264, "acw", call=2).state(324, "ready")
          .state(502, "ringing", call=5).state(525, "talking", call=5)
          .state(540, "hold", call=5).state(585, "acw", call=5).state(600, "ready")
          .state(700, "not_ready", "meal").other(800, "help", "not_ready")
          .snapshot(850, "not_ready", 150, "meal").state(870, "logged_out"))  # fmt: skip
    return s1.events + s2.events


def main(window: Window = BUCKET, by: By = "site", **kw: Any) -> dict[str, Kpis]:
    intervals = state_intervals(seat_events(), until=UNTIL)
    return kpis(call_events(), intervals, window=window, by=by, **kw)


def test_site_figures_of_the_main_trace() -> None:
    k = main()["site"]
    # enter_queue in the window: calls 1, 2 (support), 2 (sales), 3, 4, 5, 7
    assert k.offered == 7
    # queue answers (transfer answers and the outbound answer are not): 1, 2@s1, 2@s2, 5, 7
    assert k.answered == 5
    assert k.abandoned == 2  # calls 3 and 4
    assert k.abandon_rate == pytest.approx(2 / 7)  # 2 / (5 + 2)
    assert k.asa_s == pytest.approx(23.2)  # (7 + 75 + 4 + 25 + 5) / 5 = 116 / 5
    assert k.avg_rings == pytest.approx(1.8)  # (2 + 1 + 1 + 4 + 1) / 5 = 9 / 5
    assert k.within_ring_limit == pytest.approx(0.8)  # all but call 5's 4 rings: 4 / 5
    assert k.service_level == pytest.approx(0.6)  # waits <= 20: 7, 4, 5: 3 / 5
    # answered within 20 (3) + abandoned within 20 (call 3's 12 s; not call 4's 30): 4 / 7
    assert k.service_level_abandoned == pytest.approx(4 / 7)
    # inbound legs released in the window: 1@s1, 2@s1, 2@s2, 5@s2 (7 is released at 950)
    assert k.handled == 4
    # talk without holds: 120 - 20 = 100, 25, 60, 60 - 45 = 15 (released on hold at 585)
    assert k.avg_talk_s == pytest.approx(50.0)  # (100 + 25 + 60 + 15) / 4 = 200 / 4
    assert k.max_talk_s == pytest.approx(100.0)
    assert k.holds == 2  # call 1's 20 s, call 5's 45 s; call 6's is outbound
    assert k.avg_hold_s == pytest.approx(32.5)  # (20 + 45) / 2
    assert k.max_hold_s == pytest.approx(45.0)
    # ACW of those legs from the seats' states: 137-167 = 30, 200-210 = 10, 264-324 = 60,
    # 585-600 = 15
    assert k.avg_acw_s == pytest.approx(28.75)  # (30 + 10 + 60 + 15) / 4 = 115 / 4
    # (100+20+30) + (25+0+10) + (60+0+60) + (15+45+15) = 150 + 35 + 120 + 75 = 380; / 4
    assert k.aht_s == pytest.approx(95.0)
    assert k.outbound_handled == 1  # call 6
    assert k.rona == 1  # call 2 at s2
    assert k.transfers == 1  # call 2 by s1
    # answered calls without any transfer: 1, 5, 7 (call 2 answered twice, transferred)
    assert k.one_stop_rate == pytest.approx(0.6)  # 3 / 5
    # seat time: s1 the whole 900 s logged in; s2 known from 40, logged out 40-50, 870-900
    assert k.logged_in_s == pytest.approx(1720.0)  # 900 + (860 - 10 - 30)
    assert k.busy_s == pytest.approx(505.0)  # s1 150+100+60 = 310; s2 75+45+75 = 195
    assert k.available_s == pytest.approx(951.0)  # s1 506 + 24 = 530; s2 380 + 41 = 421
    assert k.occupancy == pytest.approx(505 / 1456)  # 505 / (505 + 951)
    assert dict(k.not_ready_s) == pytest.approx({"break": 60.0, "meal": 170.0,
                                                 "no_answer": 34.0})  # fmt: skip


def test_agent_figures_of_the_main_trace() -> None:
    got = main(by="seat")
    assert sorted(got) == ["s1", "s2"]
    s1, s2 = got["s1"], got["s2"]
    # s1: queue offers of calls 1, 2, 4, 7; answers 1, 2, 7; call 4 abandoned while ringing
    assert (s1.offered, s1.answered, s1.abandoned) == (4, 3, 1)
    assert s1.abandon_rate == pytest.approx(0.25)  # 1 / (3 + 1)
    assert s1.asa_s == pytest.approx(29.0)  # (7 + 75 + 5) / 3 = 87 / 3
    assert s1.avg_rings == pytest.approx(4 / 3)  # (2 + 1 + 1) / 3
    assert s1.within_ring_limit == pytest.approx(1.0)
    assert s1.service_level == pytest.approx(2 / 3)  # 7 and 5 within 20; 75 not
    assert s1.service_level_abandoned == pytest.approx(0.5)  # (2 + 0) / (3 + 1); call 4 30 s
    assert s1.handled == 2  # calls 1 and 2 (7 is released in the next bucket)
    assert s1.avg_talk_s == pytest.approx(62.5)  # (100 + 25) / 2
    assert s1.max_talk_s == pytest.approx(100.0)
    assert (s1.holds, s1.avg_hold_s, s1.max_hold_s) == (1, 20.0, 20.0)
    assert s1.avg_acw_s == pytest.approx(20.0)  # (30 + 10) / 2
    assert s1.aht_s == pytest.approx(92.5)  # (150 + 35) / 2
    assert (s1.outbound_handled, s1.rona, s1.transfers) == (1, 0, 1)
    assert s1.one_stop_rate == pytest.approx(2 / 3)  # 1 and 7; s1 transferred call 2
    # s1 in the window: ready 12+3+210+70+50+161 = 506, ringing 5+5+10+4 = 24,
    # talking 43+57+25+10+15 = 150, hold 20+80 = 100, acw 30+10+20 = 60, break 60
    assert s1.logged_in_s == pytest.approx(900.0)
    assert s1.busy_s == pytest.approx(310.0)
    assert s1.available_s == pytest.approx(530.0)
    assert s1.occupancy == pytest.approx(31 / 84)  # 310 / 840
    assert dict(s1.not_ready_s) == pytest.approx({"break": 60.0})

    # s2: queue offers of calls 2 (support), 2 (sales), 5; answers 2 (sales) and 5
    assert (s2.offered, s2.answered, s2.abandoned) == (3, 2, 0)
    assert s2.abandon_rate == pytest.approx(0.0)  # 0 / 2
    assert s2.asa_s == pytest.approx(14.5)  # (4 + 25) / 2
    assert s2.avg_rings == pytest.approx(2.5)  # (1 + 4) / 2
    assert s2.within_ring_limit == pytest.approx(0.5)
    assert s2.service_level == pytest.approx(0.5)
    assert s2.service_level_abandoned == pytest.approx(0.5)
    assert s2.handled == 2
    assert s2.avg_talk_s == pytest.approx(37.5)  # (60 + 15) / 2
    assert (s2.holds, s2.avg_hold_s) == (1, 45.0)
    assert s2.avg_acw_s == pytest.approx(37.5)  # (60 + 15) / 2
    assert s2.aht_s == pytest.approx(97.5)  # (120 + 75) / 2
    assert (s2.rona, s2.transfers) == (1, 0)
    assert s2.one_stop_rate == pytest.approx(1.0)  # s2 transferred neither
    assert s2.logged_in_s == pytest.approx(820.0)  # 860 known - 40 logged out
    assert s2.occupancy == pytest.approx(195 / 616)  # 195 / (195 + 421)
    assert dict(s2.not_ready_s) == pytest.approx({"meal": 170.0, "no_answer": 34.0})


def test_queue_figures_of_the_main_trace() -> None:
    got = main(by="queue")
    assert sorted(got) == ["renewals", "sales", "support"]
    support, sales, renewals = got["support"], got["sales"], got["renewals"]
    assert (support.offered, support.answered, support.abandoned) == (6, 4, 2)
    assert support.abandon_rate == pytest.approx(1 / 3)  # 2 / (4 + 2)
    assert support.asa_s == pytest.approx(28.0)  # (7 + 75 + 25 + 5) / 4 = 112 / 4
    # legs released from support: 1@s1 (150), 2@s1 (35, released before it left), 5@s2 (75)
    assert support.handled == 3
    assert support.aht_s == pytest.approx(260 / 3)  # (150 + 35 + 75) / 3
    assert support.transfers == 1
    assert support.one_stop_rate == pytest.approx(0.75)  # 1, 5, 7 of 1, 2, 5, 7
    assert (sales.offered, sales.answered, sales.asa_s, sales.handled) == (1, 1, 4.0, 1)
    assert sales.one_stop_rate == pytest.approx(0.0)  # call 2 came by a transfer
    # the outbound campaign's queue: only its leg count, no inbound figure
    assert (renewals.offered, renewals.answered, renewals.handled) == (0, 0, 0)
    assert renewals.outbound_handled == 1
    assert renewals.asa_s is None and renewals.aht_s is None
    # seats are not in queues: no seat-time figure per queue
    assert support.occupancy is None and support.logged_in_s is None
    assert dict(support.not_ready_s) == {}


def test_a_call_across_a_bucket_boundary_counts_each_figure_where_it_was_decided() -> None:
    # call 7: enter_queue 880, answer 885 (bucket 1); release 950, ACW 950-960 (bucket 2)
    first, second = main(BUCKET)["site"], main(NEXT)["site"]
    assert (first.offered, first.answered) == (7, 5)  # call 7 among them
    assert (second.offered, second.answered, second.handled) == (0, 0, 1)
    assert second.avg_talk_s == pytest.approx(65.0)
    assert second.avg_acw_s == pytest.approx(10.0)
    assert second.aht_s == pytest.approx(75.0)  # 65 + 0 + 10
    assert second.asa_s is None and second.service_level is None
    assert second.abandon_rate is None and second.one_stop_rate is None
    # s1's states from 900: talking 900-950, acw 950-960, ready 960-1800; s2 logged out
    assert second.busy_s == pytest.approx(60.0)
    assert second.occupancy == pytest.approx(60 / 900)
    assert second.logged_in_s == pytest.approx(900.0)


def test_repeats_and_any_order_give_the_same_figures() -> None:
    rng = random.Random(7)
    calls = call_events()
    seats = seat_events()
    calls = calls + rng.sample(calls, 12)  # each of these delivered twice
    seats = seats + rng.sample(seats, 12)
    rng.shuffle(calls)
    rng.shuffle(seats)
    intervals = state_intervals(seats, until=UNTIL)
    assert intervals == state_intervals(seat_events(), until=UNTIL)
    views: tuple[By, ...] = ("seat", "queue", "site")
    for by in views:
        assert kpis(calls, intervals, window=BUCKET, by=by) == main(by=by)
    # models or dicts alike
    models = [CallEvent.model_validate(e) for e in calls]
    seat_models = [SeatEvent.model_validate(e) for e in seats]
    again = kpis(models, state_intervals(seat_models, until=UNTIL), window=BUCKET, by="site")
    assert again == main()


def test_an_empty_window_gives_none_not_an_error() -> None:
    empty = kpis([], [], window=rolling(T0, 300), by="site")
    k = empty["site"]
    assert (k.offered, k.answered, k.abandoned, k.handled, k.holds) == (0, 0, 0, 0, 0)
    for name in ("abandon_rate", "asa_s", "avg_rings", "within_ring_limit", "service_level",
                 "service_level_abandoned", "avg_talk_s", "max_talk_s", "avg_hold_s",
                 "max_hold_s", "avg_acw_s", "aht_s", "one_stop_rate", "occupancy"):  # fmt: skip
        assert getattr(k, name) is None, name
    assert (k.logged_in_s, k.busy_s, k.available_s) == (0.0, 0.0, 0.0)
    assert kpis([], [], window=BUCKET, by="seat") == {}
    assert kpis([], [], window=BUCKET, by="queue") == {}
    # events on both sides of a window with nothing in it
    quiet = main(Window(T0 + 2000, T0 + 2100), by="seat")
    assert quiet == {}  # no seat state is known past UNTIL either
    zero = kpis([], [], window=Window(T0, T0), by="site")["site"]
    assert zero.offered == 0 and zero.occupancy is None


# --- the formulas one at a time ---------------------------------------------------------------


def test_both_service_level_variants() -> None:
    events: list[dict[str, Any]] = []
    # answers after 5, 20, 21, 40 s; abandons after 3, 20, 60 s; "within T" is <= T
    for n, wait in enumerate((5.0, 20.0, 21.0, 40.0), start=1):
        events += Call(n)("enter_queue", 0)("answer", wait, seat="s1", wait_s=wait).events
    for n, wait in enumerate((3.0, 20.0, 60.0), start=10):
        events += Call(n)("enter_queue", 0)("abandon", wait, wait_s=wait).events
    k = main_site(events)
    assert k.service_level == pytest.approx(0.5)  # 5, 20 of 4 answers
    assert k.service_level_abandoned == pytest.approx(4 / 7)  # (2 + 2: 3, 20) / (4 + 3)
    assert k.abandon_rate == pytest.approx(3 / 7)  # 3 / (4 + 3)
    k10 = main_site(events, sl_threshold_s=10)
    assert k10.service_level == pytest.approx(0.25)  # 5 of 4
    assert k10.service_level_abandoned == pytest.approx(2 / 7)  # (1 + 1: 3 s) / 7


def test_transfers_consultations_and_holds_per_leg() -> None:
    consult_s2 = {"kind": "consultative", "seat": "s2", "queue": None, "note": "refund"}
    # 20: consulted and completed: s1 answer 3 .. release 50 (hold 30-50); s2 answer 35 ..
    # release 110, the consultation included (talk_s is each seat's answer -> release).
    # The PBX's release of s2 says hold_s 20 (all the call's holds): s2 held nothing itself.
    c20 = (Call(20)("enter_queue", 0)("offer", 1, seat="s1", wait_s=1.0)
           ("answer", 3, seat="s1", wait_s=3.0, rings=1)
           ("transfer", 30, seat="s1", target=consult_s2)("hold", 30, seat="s1")
           ("offer", 30, seat="s2", target=consult_s2)
           ("answer", 35, seat="s2", target=consult_s2, rings=1)
           ("unhold", 50, seat="s1", hold_s=20.0, detail="transfer completed")
           ("release", 50, seat="s1", talk_s=47.0, hold_s=20.0, detail="transferred")
           ("release", 110, seat="s2", talk_s=75.0, hold_s=20.0, by="caller"))  # fmt: skip
    # 21: consultation called off: s2's leg (214 .. 230) is no handling; s1 202 .. 300
    c21 = (Call(21)("enter_queue", 200)("offer", 201, seat="s1", wait_s=1.0)
           ("answer", 202, seat="s1", wait_s=2.0, rings=1)
           ("transfer", 210, seat="s1", target=consult_s2)("hold", 210, seat="s1")
           ("offer", 210, seat="s2", target=consult_s2)
           ("answer", 214, seat="s2", target=consult_s2, rings=1)
           ("release", 230, seat="s2", talk_s=16.0, hold_s=0.0, detail="consultation ended")
           ("unhold", 230, seat="s1", hold_s=20.0)
           ("release", 300, seat="s1", talk_s=98.0, hold_s=20.0, by="agent"))  # fmt: skip
    # 22: the caller hangs up during the consultation, on hold at s1 since 410
    c22 = (Call(22)("enter_queue", 400)("offer", 401, seat="s1", wait_s=1.0)
           ("answer", 402, seat="s1", wait_s=2.0, rings=1)
           ("transfer", 410, seat="s1", target=consult_s2)("hold", 410, seat="s1")
           ("offer", 410, seat="s2", target=consult_s2)
           ("answer", 415, seat="s2", target=consult_s2, rings=1)
           ("release", 440, seat="s2", talk_s=25.0, hold_s=0.0, detail="the caller hung up")
           ("release", 440, seat="s1", talk_s=38.0, hold_s=30.0, by="caller"))  # fmt: skip
    # 23: blind to s2, which rings out: the call returns to s1
    blind_s2 = {"kind": "blind", "seat": "s2", "queue": None, "note": ""}
    c23 = (Call(23)("enter_queue", 600)("offer", 601, seat="s1", wait_s=1.0)
           ("answer", 602, seat="s1", wait_s=2.0, rings=1)
           ("transfer", 610, seat="s1", target=blind_s2)("hold", 610, seat="s1")
           ("offer", 610, seat="s2", target=blind_s2)
           ("ring_no_answer", 635, seat="s2", target=blind_s2, ring_s=25.0, rings=5)
           ("transfer_return", 635, seat="s1", target=blind_s2)
           ("unhold", 635, seat="s1", hold_s=25.0, detail="transfer returned")
           ("release", 662, seat="s1", talk_s=60.0, hold_s=25.0, by="caller"))  # fmt: skip
    events = c20.events + c21.events + c22.events + c23.events
    site = kpis(events, [], window=BUCKET, by="site")["site"]
    # legs (talk without holds, hold): 20@s1 (47-20 = 27, 20), 20@s2 (75, 0),
    # 21@s1 (98-20 = 78, 20), 22@s1 (38-30 = 8, 30), 23@s1 (60-25 = 35, 25)
    assert site.handled == 5
    assert site.avg_talk_s == pytest.approx(44.6)  # (27 + 75 + 78 + 8 + 35) / 5 = 223 / 5
    assert site.holds == 4  # 20, 20, 30 (ended by the release), 25
    assert site.avg_hold_s == pytest.approx(23.75)  # 95 / 4
    assert site.max_hold_s == pytest.approx(30.0)
    assert site.avg_acw_s is None and site.aht_s is None  # no seat state given
    assert site.transfers == 4
    assert site.rona == 1  # the transfer offer that rang out at s2
    assert site.answered == 4 and site.one_stop_rate == pytest.approx(0.0)
    agents = kpis(events, [], window=BUCKET, by="seat")
    s1, s2 = agents["s1"], agents["s2"]
    assert (s1.answered, s1.handled, s1.transfers, s1.one_stop_rate) == (4, 4, 4, 0.0)
    # s2 answered no queue call: transfer offers are not "offered", its one leg is handled
    assert (s2.offered, s2.answered, s2.handled, s2.rona) == (0, 0, 1, 1)
    assert s2.one_stop_rate is None
    assert s2.avg_talk_s == pytest.approx(75.0) and s2.holds == 0


def test_agent_one_stop_is_about_the_agent_s_own_transfers() -> None:
    to_s2 = {"kind": "blind", "seat": "s2", "queue": None, "note": ""}
    # s1 answers and keeps the call; s3 answers and transfers to s2
    kept = (Call(30)("enter_queue", 0)("answer", 4, seat="s1", wait_s=4.0, rings=1)
            ("release", 40, seat="s1", talk_s=36.0))  # fmt: skip
    passed = (Call(31)("enter_queue", 0)("answer", 4, seat="s3", wait_s=4.0, rings=1)
              ("transfer", 20, seat="s3", target=to_s2)("hold", 20, seat="s3")
              ("offer", 20, seat="s2", target=to_s2)
              ("answer", 25, seat="s2", target=to_s2, rings=1)
              ("unhold", 25, seat="s3", hold_s=5.0)
              ("release", 25, seat="s3", talk_s=21.0, detail="transferred")
              ("release", 85, seat="s2", talk_s=60.0))  # fmt: skip
    got = kpis(kept.events + passed.events, [], window=BUCKET, by="seat")
    assert got["s1"].one_stop_rate == pytest.approx(1.0)  # 1 of 1
    assert got["s3"].one_stop_rate == pytest.approx(0.0)  # 0 of 1
    assert got["s2"].one_stop_rate is None  # answered no queue call
    assert got["s2"].handled == 1  # the blind transfer's receiver handles the caller
    assert got["s3"].avg_talk_s == pytest.approx(16.0)  # 21 - 5 on hold
    site = kpis(kept.events + passed.events, [], window=BUCKET, by="site")["site"]
    assert site.one_stop_rate == pytest.approx(0.5)  # call 30 of 30, 31


def test_ring_limit_is_a_parameter() -> None:
    events = [
        e
        for n, rings in enumerate((1, 2, 3, 4), start=1)
        for e in Call(n)("answer", 10, seat="s1", wait_s=10.0, rings=rings).events
    ]
    assert main_site(events, ring_limit=3).within_ring_limit == pytest.approx(0.75)  # 3 of 4
    assert main_site(events, ring_limit=2).within_ring_limit == pytest.approx(0.5)  # 2 of 4
    assert main_site(events).avg_rings == pytest.approx(2.5)  # 10 / 4


def main_site(events: list[dict[str, Any]], **kw: Any) -> Kpis:
    return kpis(events, [], window=BUCKET, by="site", **kw)["site"]


def test_outbound_calls_count_only_as_outbound_legs_and_in_seat_time() -> None:
    out = (Call(40, queue="renewals", direction="outbound")
           ("dial", 0, seat="s1", campaign="renewals")
           ("answer", 12, seat="s1", rings=3)
           ("hold", 20, seat="s1")("unhold", 30, seat="s1", hold_s=10.0)
           ("release", 72, seat="s1", talk_s=60.0, hold_s=10.0))  # fmt: skip
    seat = (Seat("s1").state(0, "ready").state(12, "talking", call=40)
            .state(20, "hold", call=40).state(30, "talking", call=40)
            .state(72, "acw", call=40).state(92, "ready"))  # fmt: skip
    intervals = state_intervals(seat.events, until=T0 + 100)
    k = kpis(out.events, intervals, window=Window(T0, T0 + 100), by="seat")["s1"]
    assert (k.offered, k.answered, k.handled, k.holds, k.outbound_handled) == (0, 0, 0, 0, 1)
    assert k.asa_s is None and k.aht_s is None and k.avg_rings is None
    # seat time: ready 12 + 8 = 20; talking 8 + 42 = 50, hold 10, acw 20: busy 80
    assert k.occupancy == pytest.approx(0.8)  # 80 / (80 + 20)


# --- seat state intervals ---------------------------------------------------------------------


def test_state_intervals_from_state_events() -> None:
    s = (Seat("s7").state(0, "ready").state(10, "ringing", call=5)
         .state(12, "talking", call=5).other(13, "hook", "talking")
         .state(30, "acw", call=5).state(40, "not_ready", "break")
         .state(50, "not_ready", "break")  # the same state again: one interval
         .state(60, "not_ready", "meal"))  # fmt: skip
    got = state_intervals(s.events, until=T0 + 100)
    assert got == [
        StateInterval("s7", "ready", None, T0, T0 + 10),
        StateInterval("s7", "ringing", None, T0 + 10, T0 + 12, 5),
        StateInterval("s7", "talking", None, T0 + 12, T0 + 30, 5),
        StateInterval("s7", "acw", None, T0 + 30, T0 + 40, 5),
        StateInterval("s7", "not_ready", "break", T0 + 40, T0 + 60),
        StateInterval("s7", "not_ready", "meal", T0 + 60, T0 + 100),
    ]
    # cut to a window: since and until, or clip()
    cut = state_intervals(s.events, until=T0 + 35, since=T0 + 11)
    assert [(i.state, i.start - T0, i.end - T0) for i in cut] == [
        ("ringing", 11, 12), ("talking", 12, 30), ("acw", 30, 35)]  # fmt: skip
    assert clip(got, Window(T0 + 11, T0 + 35)) == cut


def test_same_time_events_keep_the_seat_s_order() -> None:
    # an offer cancelled in the same instant: ringing (seq 2) then ready (seq 3), both at 10
    s = Seat("s7").state(0, "ready").state(10, "ringing", call=9).state(10, "ready")
    for events in (s.events, list(reversed(s.events))):
        got = state_intervals(events, until=T0 + 20)
        assert got == [StateInterval("s7", "ready", None, T0, T0 + 20)]


def test_snapshots_are_the_truth_and_hello_is_a_reboot() -> None:
    s = (Seat("s7").state(0, "ready")
         # events lost (queue overflow); the snapshot at 100 says Not Ready meal for 30 s
         .snapshot(100, "not_ready", 30, "meal")
         .snapshot(120, "not_ready", 50, "meal"))  # fmt: skip
    s.boot = 2
    s.hello(150).snapshot(151, "logged_out", 1).state(160, "ready")
    got = state_intervals(s.events, until=T0 + 200)
    assert [(i.state, i.reason, i.start - T0, i.end - T0) for i in got] == [
        ("ready", None, 0, 70),  # 100 - 30
        ("not_ready", "meal", 70, 150),
        ("logged_out", None, 150, 160),
        ("ready", None, 160, 200),
    ]
    # a snapshot never reaches back past the state it replaces
    late = Seat("s8").state(0, "ready").state(50, "talking", call=3).snapshot(60, "acw", 40)
    got = state_intervals(late.events, until=T0 + 100)
    assert [(i.state, i.start - T0) for i in got] == [("ready", 0), ("acw", 50)]
    # a reconnection: the frame queued at 80 arrives at 100, then the snapshot says talking
    # for 20 s. It equals the current state, so it re-times nothing (docs/kpi.md, Inputs)
    back = Seat("s9").state(0, "ready").state(100, "talking", call=4)
    back.snapshot(100, "talking", 20, call=4)
    got = state_intervals(back.events, until=T0 + 120)
    assert [(i.state, i.start - T0, i.end - T0) for i in got] == [
        ("ready", 0, 100),
        ("talking", 100, 120),
    ]


def test_two_seats_and_unknown_events_are_kept_apart() -> None:
    a = Seat("a1").state(0, "ready")
    b = Seat("b1", board="5EA7000B").state(5, "not_ready", "meeting")
    got = state_intervals(a.events + b.events, until=T0 + 10)
    assert [(i.seat, i.state, i.seconds) for i in got] == [
        ("a1", "ready", 10.0), ("b1", "not_ready", 5.0)]  # fmt: skip
    assert state_intervals([], until=T0) == []


# --- windows ----------------------------------------------------------------------------------


def test_rolling_window() -> None:
    w = rolling(T0 + 900, 300)
    assert (w.start, w.end) == (T0 + 600, T0 + 900)
    assert T0 + 600 in w and T0 + 900 not in w  # half-open
    with pytest.raises(ValueError):
        rolling(T0, 0)


def test_daily_buckets_follow_local_midnight_across_dst() -> None:
    ny = ZoneInfo("America/New_York")
    # 2026-03-08 00:00 EST = 05:00 UTC = 1772928000 (20520 days) + 18000 = 1772946000;
    # 2026-03-09 00:00 EDT = 04:00 UTC = 1772928000 + 86400 + 14400 = 1773028800: 23 h
    day = buckets(1772946000 + 3600, 1772946000 + 7200, 86400, tz=ny)
    assert day == [Window(1772946000, 1773028800)]
    assert day[0].seconds == 82800  # 23 * 3600
    assert len(buckets(1772946000, 1773028800, 3600, tz=ny)) == 23
    assert len(buckets(1772946000, 1773028800, 900, tz=ny)) == 92  # 23 * 4
    # 2026-11-01 00:00 EDT = 1793491200 (20758 days) + 14400 = 1793505600;
    # 2026-11-02 00:00 EST = 1793491200 + 86400 + 18000 = 1793595600: 25 h
    fall = buckets(1793505600, 1793505601, 86400, tz=ny)
    assert fall == [Window(1793505600, 1793595600)]
    hours = buckets(1793505600, 1793595600, 3600, tz=ny)
    assert len(hours) == 25  # 01:00 happens twice
    assert all(h.seconds == 3600 for h in hours)
    # Shanghai has no DST: 2026-03-08 00:00 CST = 1772928000 - 28800 = 1772899200, 24 h
    sh = buckets(1772899200 + 1, 1772899200 + 2, 86400, tz=ZoneInfo("Asia/Shanghai"))
    assert sh == [Window(1772899200, 1772899200 + 86400)]


def test_sub_day_buckets_align_to_the_local_clock() -> None:
    # Kolkata is UTC+5:30: its hours start at half past the UTC hour. 1772928000 is
    # 2026-03-08 00:00 UTC = 05:30 IST, so its hour is 05:00-06:00 IST = 23:30-00:30 UTC.
    ist = buckets(1772928000, 1772928001, 3600, tz=ZoneInfo("Asia/Kolkata"))
    assert ist == [Window(1772928000 - 1800, 1772928000 + 1800)]
    # 15-minute buckets over half an hour from T0 (aligned): two whole, a part is whole too
    utc = ZoneInfo("UTC")
    assert buckets(T0, T0 + 1800, 900, tz=utc) == [BUCKET, NEXT]
    assert buckets(T0 + 100, T0 + 1000, 900, tz=utc) == [BUCKET, NEXT]
    assert buckets(T0, T0, 900, tz=utc) == []
    with pytest.raises(ValueError):
        buckets(T0, T0 + 1, 7, tz=utc)


def test_bucketed_figures_add_up_to_the_day() -> None:
    # the trace's two 15-minute buckets hold every count of their half hour
    tz = ZoneInfo("Asia/Shanghai")
    parts = [main(w)["site"] for w in buckets(T0, T0 + 1800, 900, tz=tz)]
    whole = main(Window(T0, T0 + 1800))["site"]
    assert sum(p.offered for p in parts) == whole.offered == 7
    assert sum(p.handled for p in parts) == whole.handled == 5  # 4 + call 7
    assert datetime.fromtimestamp(T0, tz).hour == 16  # 08:00 UTC is 16:00 in Shanghai


# --- issue 18, defect 2: a seat that takes the same call twice ------------------------------


def transfer_back() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Call 30 at s1 twice: from support (leg 1, released 865, bucket 1) blind to sales, and
    from sales again (leg 2, released 993, bucket 2). The agent pressed WRAP the instant leg
    1 ended (its ACW has no length); leg 2 has 30 s of ACW. The gateway's clock is 0.2 s
    behind the PBX's: the call id joins them, not the time."""
    to_sales = {"kind": "blind", "seat": None, "queue": "sales", "note": "back to you"}
    c30 = (Call(30)("enter_queue", 800)("offer", 801, seat="s1", wait_s=1.0)
           ("answer", 805, seat="s1", wait_s=5.0, rings=1)
           ("transfer", 865, seat="s1", target=to_sales)
           ("release", 865, seat="s1", talk_s=60.0, hold_s=0.0, by="agent",
            detail="transferred")
           ("enter_queue", 865, queue="sales")
           ("offer", 950, seat="s1", queue="sales", wait_s=85.0)
           ("answer", 953, seat="s1", queue="sales", wait_s=88.0, rings=1)
           ("release", 993, seat="s1", queue="sales", talk_s=40.0, hold_s=0.0,
            by="caller"))  # fmt: skip
    s1 = (Seat("s1").state(700, "ready")
          .state(800.8, "ringing", call=30).state(804.8, "talking", call=30)
          .state(864.8, "acw", call=30).state(864.8, "ready")  # WRAP at once: no ACW time
          .state(949.8, "ringing", call=30).state(952.8, "talking", call=30)
          .state(992.8, "acw", call=30).state(1022.8, "ready"))  # fmt: skip
    return c30.events, s1.events


def test_a_zero_length_acw_does_not_hand_the_next_leg_s_acw_to_the_first() -> None:
    calls, seats = transfer_back()
    intervals = state_intervals(seats, until=UNTIL)
    day = Window(T0, UNTIL)
    queues = kpis(calls, intervals, window=day, by="queue")
    support, sales = queues["support"], queues["sales"]
    # each leg's ACW is the one its own release started: leg 1 none, leg 2 30 s
    assert (support.handled, support.avg_acw_s, support.aht_s) == (1, 0.0, 60.0)
    assert (sales.handled, sales.avg_acw_s, sales.aht_s) == (1, 30.0, 70.0)  # 40 + 30
    # per quarter hour the site's average ACW is that of the leg released in it
    first = kpis(calls, intervals, window=BUCKET, by="site")["site"]
    second = kpis(calls, intervals, window=NEXT, by="site")["site"]
    assert (first.handled, first.avg_acw_s) == (1, 0.0)
    assert (second.handled, second.avg_acw_s) == (1, 30.0)
    # the agent's own figures were never in doubt: 2 legs, 30 s of ACW between them
    s1 = kpis(calls, intervals, window=day, by="seat")["s1"]
    assert (s1.handled, s1.avg_acw_s) == (2, 15.0)


def test_acw_with_no_leg_of_its_own_goes_to_the_seat_s_last_leg_of_the_call() -> None:
    calls, _ = transfer_back()
    # the gateway lost leg 2's talking state: a snapshot says ACW, so the seat's timeline
    # shows two ends of the call (ACW after talk, ACW alone) for the PBX's two legs; a third
    # ACW of the call at the seat, after a break, has no leg of its own: the last leg's
    s1 = Seat("s1").state(700, "ready") \
        .state(800.8, "ringing", call=30).state(804.8, "talking", call=30) \
        .state(864.8, "acw", call=30).state(874.8, "ready") \
        .snapshot(1000, "acw", 7, call=30).state(1003, "ready") \
        .state(1100, "acw", call=30).state(1105, "ready")  # fmt: skip
    intervals = state_intervals(s1.events, until=UNTIL)
    queues = kpis(calls, intervals, window=Window(T0, UNTIL), by="queue")
    assert queues["support"].avg_acw_s == 10.0  # 864.8 .. 874.8
    assert queues["sales"].avg_acw_s == 15.0  # 993 .. 1003 and 1100 .. 1105
