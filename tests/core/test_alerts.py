"""The alert engine (gateway/core/alerts.py, docs/alerts.md) on small traces built with the
contract's own models. Times are seconds after T0 (2027-01-15 08:00 UTC)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.contract.payloads import CallEvent, SeatEvent
from gateway.core.alerts import (
    RULES,
    AlertChange,
    AlertEngine,
    AlertSettings,
)

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


class Seat:
    """One seat's `seat/{seat}/event` payloads, as SeatEvent models, seq numbered."""

    def __init__(self, seat: str = "s1", *, boot: int = 1):
        self.seat, self.board, self.boot, self.seq = seat, f"5EA7-{seat}", boot, 0

    def _event(self, t: float, kind: str, data: dict[str, Any]) -> SeatEvent:
        self.seq += 1
        return SeatEvent(id=f"{self.board}-{self.boot}-{self.seq}", seat=self.seat,
                         gateway="gw1", board=self.board, boot=self.boot, seq=self.seq,
                         t=T0 + t, type=kind, data=data)  # type: ignore[arg-type]  # fmt: skip

    def state(self, t: float, state: str, reason: str | None = None,
              call: int | None = None) -> SeatEvent:  # fmt: skip
        return self._event(t, "event", {"event": "state", "state": state, "reason": reason,
                                        "call": call, "a": 1, "b": 0})  # fmt: skip

    def help(self, t: float, on: bool) -> SeatEvent:
        return self._event(t, "event", {"event": "help", "state": "ready", "reason": None,
                                        "call": None, "a": int(on), "b": 0})  # fmt: skip

    def snapshot(self, t: float, state: str, secs: int, reason: str | None = None,
                 help: bool = False) -> SeatEvent:  # fmt: skip
        return self._event(t, "snapshot", {"state": state, "reason": reason, "call": None,
                                           "secs": secs, "help": help, "off_hook": False,
                                           "hold_over_limit": False, "pending_state": None,
                                           "pending_reason": None, "misses": 0,
                                           "dropped": 0})  # fmt: skip

    def hello(self, t: float) -> SeatEvent:
        return self._event(t, "hello", {"protocol": 1, "firmware": "x", "board_name": "pico"})

    def raw(self, t: float, kind: str, data: dict[str, Any]) -> SeatEvent:
        return self._event(t, kind, data)


class Call:
    """One call's `call/{call}/event` payloads, as CallEvent models, steps numbered."""

    def __init__(self, call: int, *, direction: str = "inbound", queue: str = "support"):
        self.call, self.direction, self.queue, self.step = call, direction, queue, 0

    def __call__(self, kind: str, t: float, **fields: Any) -> CallEvent:
        self.step += 1
        event: dict[str, Any] = {
            "v": 1, "id": f"p1-{self.call}-{self.step}", "pbx": "p1", "call": self.call,
            "step": self.step, "type": kind, "t": T0 + t, "direction": self.direction,
            "queue": self.queue, "seat": None, "number": "***1234", "arrived": T0,
        }  # fmt: skip
        event.update(fields)
        return CallEvent.model_validate(event)


Input = SeatEvent | CallEvent | tuple[str, float] | tuple[str, str, bool, float]


def tick(t: float) -> tuple[str, float]:
    return ("tick", T0 + t)


def avail(seat: str, online: bool, t: float) -> tuple[str, str, bool, float]:
    return ("availability", seat, online, T0 + t)


def feed(engine: AlertEngine, inputs: Iterable[Input]) -> list[AlertChange]:
    out: list[AlertChange] = []
    for item in inputs:
        if isinstance(item, SeatEvent):
            out += engine.on_seat_event(item)
        elif isinstance(item, CallEvent):
            out += engine.on_call_event(item)
        elif item[0] == "tick":
            out += engine.tick(item[1])  # type: ignore[arg-type]
        else:
            _, seat, online, t = item  # type: ignore[misc]
            out += engine.on_availability(seat, online, t)
    return out


def raised(changes: list[AlertChange], rule: str | None = None) -> list[AlertChange]:
    return [c for c in changes if c.change == "raised" and rule in (None, c.alert.rule)]


def cleared(changes: list[AlertChange], rule: str | None = None) -> list[AlertChange]:
    return [c for c in changes if c.change == "cleared" and rule in (None, c.alert.rule)]


def answered_call(n: int, t: float, *, seat: str = "s1", talk_s: float = 60.0,
                  rings: int = 1) -> list[CallEvent]:  # fmt: skip
    c = Call(n)
    return [c("enter_queue", t), c("offer", t + 1, seat=seat, wait_s=1.0),
            c("answer", t + 2, seat=seat, wait_s=2.0, ring_s=1.0, rings=rings),
            c("release", t + 2 + talk_s, seat=seat, talk_s=talk_s, hold_s=0.0,
              by="caller")]  # fmt: skip


# --- every rule: over its threshold fires, at or under it does not ---------------------------


def hold_trace(x: float) -> list[Input]:
    c = Call(1)
    return [c("answer", 0, seat="s1", rings=1), c("hold", 10, seat="s1"),
            c("unhold", 10 + x, seat="s1", hold_s=x)]  # fmt: skip


def acw_trace(x: float) -> list[Input]:
    s = Seat()
    return [s.state(0, "ready"), s.state(10, "acw", call=7), s.state(10 + x, "ready")]


def not_ready_trace(reason: str) -> Callable[[float], list[Input]]:
    def trace(x: float) -> list[Input]:
        s = Seat()
        return [s.state(0, "ready"), s.state(10, "not_ready", reason),
                s.state(10 + x, "ready")]  # fmt: skip

    return trace


def offline_trace(x: float) -> list[Input]:
    return [avail("s1", False, 0), avail("s1", True, x)]


def after_shift_trace(x: float) -> list[Input]:
    s = Seat()
    return [s.state(60, "ready"), s.state(3600 + x, "logged_out")]


def shift_until_t0_plus_3600(seat: str, t: float) -> float | None:
    return T0 + 3600 if T0 <= t < T0 + 3600 else None


def late_answer_trace(rings: float) -> list[Input]:
    c = Call(1)
    return [c("enter_queue", 0), c("offer", 1, seat="s1"),
            c("answer", 25, seat="s1", wait_s=25.0, ring_s=24.0, rings=int(rings))]


def no_answer_trace(n: float) -> list[Input]:
    return [Call(10 + i)("ring_no_answer", 60 * i, seat="s1", ring_s=15.0, rings=3,
                         detail="rang out") for i in range(int(n))]  # fmt: skip


def frequent_not_ready_trace(n: float) -> list[Input]:
    s = Seat()
    out: list[Input] = [s.state(0, "ready")]
    for i in range(int(n)):
        out += [s.state(100 * i + 10, "not_ready", "break"), s.state(100 * i + 20, "ready")]
    return out


def avg_acw_trace(x: float) -> list[Input]:
    s = Seat()
    out: list[Input] = [s.state(0, "ready")]
    for i in range(5):
        out += [s.state(300 * i + 10, "acw", call=i + 1), s.state(300 * i + 10 + x, "ready")]
    return out


def avg_talk_trace(x: float) -> list[Input]:
    return [e for i in range(5) for e in answered_call(i + 1, 600 * i, talk_s=x)]


THRESHOLDS: list[tuple[str, Callable[[float], list[Input]], float, float]] = [
    # rule, trace of a measured value, the threshold, a value just over it
    ("hold", hold_trace, 30.0, 30.001),
    ("long_acw", acw_trace, 120.0, 120.001),
    ("long_not_ready", not_ready_trace("restroom"), 600.0, 600.001),
    ("long_not_ready", not_ready_trace("meal"), 3600.0, 3600.001),
    ("long_not_ready", not_ready_trace("wrap"), 120.0, 120.001),
    ("offline", offline_trace, 60.0, 60.001),
    ("after_shift", after_shift_trace, 600.0, 600.001),
    ("late_answer", late_answer_trace, 3, 4),
    ("no_answer", no_answer_trace, 2, 3),
    ("frequent_not_ready", frequent_not_ready_trace, 4, 5),
    ("avg_acw", avg_acw_trace, 60.0, 60.001),
    ("avg_talk", avg_talk_trace, 180.0, 180.001),
]


def _engine() -> AlertEngine:
    return AlertEngine(shift_end=shift_until_t0_plus_3600)


@pytest.mark.parametrize(("rule", "trace", "threshold", "over"), THRESHOLDS,
                         ids=[f"{r[0]}-{r[2]}" for r in THRESHOLDS])  # fmt: skip
def test_fires_just_over_its_threshold_and_not_at_or_under(
    rule: str, trace: Callable[[float], list[Input]], threshold: float, over: float
) -> None:
    under = threshold - 1 if isinstance(over, int) else threshold - 0.001
    for value, fires in ((under, False), (threshold, False), (over, True)):
        changes = feed(_engine(), trace(value))
        got = raised(changes, rule)
        assert len(got) == int(fires), (rule, value, changes)
        if fires:
            alert = got[0].alert
            assert alert.threshold == threshold
            assert alert.measured > alert.threshold
            assert alert.seed == RULES[rule].seed and alert.rule_text == RULES[rule].text
            assert alert.message.startswith("s1: ")
        assert raised(changes) == raised(changes, rule)  # no other rule fired


def test_every_rule_has_a_threshold_case_or_is_help() -> None:
    assert {r for r, *_ in THRESHOLDS} | {"help"} == set(RULES)


# --- hold ------------------------------------------------------------------------------------


def test_hold_fires_at_tick_over_30_s_while_on_hold_and_clears_at_unhold() -> None:
    c = Call(40213)
    engine = AlertEngine()
    assert feed(engine, [c("answer", 0, seat="s1", rings=1), c("hold", 100, seat="s1"),
                         tick(110), tick(130)]) == []  # fmt: skip
    [change] = engine.tick(T0 + 130.001)
    alert = change.alert
    assert change.change == "raised" and alert.rule == "hold"
    assert alert.id == f"hold-s1-{round((T0 + 100) * 1000)}"
    assert (alert.seat, alert.call, alert.t, alert.since) == ("s1", 40213, T0 + 130.001, T0 + 100)
    assert alert.measured == pytest.approx(30.001) and alert.threshold == 30.0
    assert (alert.unit, alert.severity, alert.seed) == ("s", "warning", "S3 1.6")
    assert alert.message == "s1: caller on hold for 30.001 s on call 40213 (limit 30 s)"
    assert engine.tick(T0 + 140) == []  # raised once
    assert engine.open_alerts() == [alert]
    [end] = engine.on_call_event(c("unhold", 145, seat="s1", hold_s=45.0))
    assert (end.change, end.alert, end.t, end.measured, end.why) == (
        "cleared", alert, T0 + 145, 45.0, "unhold")
    assert engine.open_alerts() == []
    # the next hold is a new condition: a new alert with an id of its own
    engine.on_call_event(c("hold", 200, seat="s1"))
    [again] = engine.tick(T0 + 231)
    assert again.alert.id == f"hold-s1-{round((T0 + 200) * 1000)}" != alert.id
    counts = engine.counts
    assert counts.raised == {"hold": 2} and counts.cleared == {"hold": 1}


def test_a_hold_over_30_s_without_any_tick_is_raised_and_cleared_at_its_end() -> None:
    changes = feed(AlertEngine(), hold_trace(40.0))
    assert [(c.change, c.t) for c in changes] == [("raised", T0 + 50), ("cleared", T0 + 50)]


def test_a_hold_ends_at_release_or_when_the_caller_hangs_up() -> None:
    c, d = Call(1), Call(2)
    engine = AlertEngine()
    feed(engine, [c("answer", 0, seat="s1", rings=1), c("hold", 10, seat="s1"),
                  d("answer", 0, seat="s2", rings=1), d("hold", 10, seat="s2"), tick(41)])
    assert len(engine.open_alerts()) == 2
    [a] = engine.on_call_event(c("release", 50, seat="s1", talk_s=50.0, hold_s=40.0,
                                 by="caller"))  # fmt: skip
    assert (a.change, a.why, a.measured) == ("cleared", "released on hold", 40.0)
    [b] = engine.on_call_event(d("abandon", 60, by="caller"))
    assert (b.change, b.alert.seat, b.why) == ("cleared", "s2", "the call ended")


# --- help and offline --------------------------------------------------------------------------


def test_help_is_raised_at_once_and_cleared_by_help_0() -> None:
    s = Seat()
    engine = AlertEngine()
    [up] = engine.on_seat_event(s.help(5, True))
    assert (up.change, up.alert.rule, up.alert.severity) == ("raised", "help", "critical")
    assert up.alert.id == f"help-s1-{round((T0 + 5) * 1000)}"
    assert engine.on_seat_event(s.help(6, True)) == []  # already asked
    [down] = engine.on_seat_event(s.help(65, False))
    assert (down.change, down.measured, down.why) == ("cleared", 60.0, "help cleared")
    assert engine.on_seat_event(s.help(66, False)) == []


def test_help_from_a_snapshot_and_cleared_by_a_restart() -> None:
    s = Seat()
    engine = AlertEngine()
    [up] = engine.on_seat_event(s.snapshot(0, "ready", 30, help=True))
    assert up.alert.rule == "help"
    [down] = engine.on_seat_event(s.hello(10))
    assert (down.change, down.why) == ("cleared", "the board restarted")


def test_offline_fires_only_after_its_grace_and_clears_when_back_online() -> None:
    engine = AlertEngine()
    assert feed(engine, [avail("s1", False, 0), tick(30), avail("s1", False, 50),
                         tick(60)]) == []  # fmt: skip
    [up] = engine.tick(T0 + 60.001)
    # the repeated (retained) offline at 50 did not restart the grace
    assert (up.alert.rule, up.alert.since, up.alert.severity) == ("offline", T0, "critical")
    [down] = engine.on_availability("s1", True, T0 + 90)
    assert (down.change, down.measured, down.why) == ("cleared", 90.0, "back online")
    # a short outage is no alert
    assert feed(engine, [avail("s1", False, 100), tick(150), avail("s1", True, 160)]) == []


# --- logged in after the shift --------------------------------------------------------------


def at(day: int, hh: int, mm: int = 0) -> float:
    """Unix seconds of 2027-01-<day> hh:mm UTC."""
    return datetime(2027, 1, day, hh, mm, tzinfo=UTC).timestamp()


def schedule(seat: str, t: float) -> float | None:
    """Seat s1: day shifts 08:00-17:00. Seat n1: night shifts 22:00-06:00 (crossing
    midnight). Seat d1: 08:00-17:00 then straight on 17:00-22:00."""
    day = datetime.fromtimestamp(t, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    shifts: dict[str, list[tuple[int, int]]] = {
        "s1": [(8, 17)], "n1": [(-2, 6), (22, 30)], "d1": [(8, 17), (17, 22)],
    }  # fmt: skip
    for start, end in shifts[seat]:
        a, b = day + timedelta(hours=start), day + timedelta(hours=end)
        if a.timestamp() <= t < b.timestamp():
            return b.timestamp()
    return None


def test_logged_in_after_a_night_shift_that_crosses_midnight() -> None:
    s = Seat("n1")
    engine = AlertEngine(shift_end=schedule)
    assert engine.on_seat_event(s._event(at(15, 22, 5) - T0, "event", {
        "event": "state", "state": "ready", "reason": None, "call": None})) == []
    for t in (at(15, 23, 59), at(16, 0, 1), at(16, 6), at(16, 6, 10)):
        assert engine.tick(t) == [], t
    [up] = engine.tick(at(16, 6, 10) + 0.001)
    alert = up.alert
    assert (alert.rule, alert.since, alert.threshold) == ("after_shift", at(16, 6), 600.0)
    assert alert.id == f"after_shift-n1-{round(at(16, 6) * 1000)}"
    assert alert.seed == "S3 1.4; S1 现场 10"
    [down] = engine.on_seat_event(s._event(at(16, 7) - T0, "event", {
        "event": "state", "state": "logged_out", "reason": None, "call": None}))
    assert (down.change, down.measured, down.why) == ("cleared", 3600.0, "logged out")


def test_logged_in_before_the_shift_and_on_a_following_shift() -> None:
    early, double = Seat("s1"), Seat("d1")
    engine = AlertEngine(shift_end=schedule)
    ready = {"event": "state", "state": "ready", "reason": None, "call": None}
    changes = feed(engine, [early._event(at(15, 7, 45) - T0, "event", ready)]
                   + [("tick", at(15, 7, 50) + 60 * i) for i in range(10)]
                   + [double._event(at(15, 8, 0) - T0 + 1, "event", ready)]
                   + [("tick", at(15, 8, 0) + 60 * i) for i in range(1, 11)])  # fmt: skip
    assert changes == []
    changes += engine.tick(at(15, 17, 10))
    changes += engine.tick(at(15, 17, 10) + 0.001)
    # s1 came before its shift, and is asked again once the shift started: it ended at 17:00
    # d1 went on to its evening shift at 17:00: nothing
    assert [c.alert.seat for c in raised(changes)] == ["s1"]
    assert engine.tick(at(15, 22, 10)) == []
    [late] = engine.tick(at(15, 22, 10) + 0.001)
    assert (late.alert.seat, late.alert.since) == ("d1", at(15, 22))


def test_without_a_schedule_nobody_is_after_a_shift() -> None:
    s = Seat()
    engine = AlertEngine()
    assert feed(engine, [s.state(0, "ready"), tick(86_400 * 3)]) == []


# --- windows ---------------------------------------------------------------------------------


def test_repeated_no_answer_window_edge() -> None:
    def run(third: float) -> tuple[AlertEngine, list[AlertChange]]:
        engine = AlertEngine()
        return engine, feed(engine, [Call(i + 1)("ring_no_answer", t, seat="s1", rings=3,
                                                  ring_s=15.0, detail="rang out")
                                     for i, t in enumerate((0, 900, third))])  # fmt: skip

    # the window is the last 1800 s: a ring-no-answer exactly 1800 s old has left it
    assert raised(run(1800)[1]) == []
    engine, changes = run(1799.999)
    [up] = raised(changes, "no_answer")
    assert (up.alert.measured, up.alert.threshold, up.alert.call) == (3, 2, 3)
    assert up.alert.unit == "ring-no-answers in 30 min"
    assert engine.tick(T0 + 1799.999) == []
    # the first one leaves the window at 1800: two left, not more than 2
    [down] = engine.tick(T0 + 1800)
    assert (down.change, down.measured) == ("cleared", 2.0)


def test_average_acw_needs_the_minimum_of_calls_and_ages_out() -> None:
    s = Seat()
    engine = AlertEngine()
    inputs: list[Input] = [s.state(0, "ready")]
    for i in range(4):
        inputs += [s.state(100 * i + 10, "acw", call=i + 1), s.state(100 * i + 90, "ready")]
    assert feed(engine, inputs) == []  # 4 spells of 80 s: fewer than 5 calls
    changes = feed(engine, [s.state(500, "acw", call=5), s.state(580, "ready")])
    [up] = raised(changes, "avg_acw")
    assert up.alert.measured == 80.0 and up.alert.since == T0 + 580
    assert up.alert.message == "s1: average ACW 80 s over the last 5 calls in 60 min (limit 60 s)"
    # the first spell (ended at 90) leaves the 60-minute window at 3690: 4 calls are no average
    assert engine.tick(T0 + 3689) == []
    [down] = engine.tick(T0 + 3690)
    assert (down.change, down.why) == ("cleared", "4 calls in the window, fewer than 5")


def test_the_same_condition_start_twice_gets_a_new_id() -> None:
    s = Seat()
    engine = AlertEngine(AlertSettings(avg_min_calls=1))
    changes = feed(engine, [s.state(0, "acw", call=1), s.state(90, "ready"),
                            s.state(100, "acw", call=2), s.state(130, "ready"),
                            s.state(200, "acw", call=3), s.state(290, "ready")])  # fmt: skip
    # 90 (over), 90 30 (60: not over), 90 30 90 (70: over)
    assert [(c.change, c.measured) for c in changes] == [("raised", 90), ("cleared", 60),
                                                         ("raised", 70)]  # fmt: skip
    assert [c.change for c in engine.tick(T0 + 3690)] == ["cleared"]  # 30 90: 60
    [again] = engine.tick(T0 + 3730)  # 90 alone: over again, with no new spell
    first = changes[2].alert.id
    assert first == f"avg_acw-s1-{round((T0 + 290) * 1000)}" and again.alert.id == first + "-2"


def test_an_outbound_calls_acw_is_not_in_the_average() -> None:
    s = Seat()
    inputs: list[Input] = [s.state(0, "ready")]
    for i in range(5):
        c = Call(i + 1, direction="outbound" if i == 4 else "inbound")
        inputs += [c("answer", 200 * i, seat="s1", rings=1),
                   c("release", 200 * i + 10, seat="s1", talk_s=10.0, hold_s=0.0, by="agent"),
                   s.state(200 * i + 10, "acw", call=i + 1), s.state(200 * i + 90, "ready")]
    assert raised(feed(AlertEngine(), inputs), "avg_acw") == []


def test_average_talk_leaves_holds_out() -> None:
    inputs: list[Input] = []
    for i in range(5):
        c = Call(i + 1)
        inputs += [c("answer", 600 * i, seat="s1", rings=1), c("hold", 600 * i + 10, seat="s1"),
                   c("unhold", 600 * i + 30, seat="s1", hold_s=20.0),
                   c("release", 600 * i + 200, seat="s1", talk_s=200.0, hold_s=20.0,
                     by="caller")]  # fmt: skip
    # 200 s answer to release, 20 s of it on hold: 180 s of talk, not over 180
    assert raised(feed(AlertEngine(), inputs)) == []
    consult = Call(99)
    more: list[Input] = [consult("answer", 3000, seat="s1", rings=1),
            consult("release", 3500, seat="s1", talk_s=500.0, hold_s=0.0, by="agent",
                    detail="consultation ended")]  # fmt: skip
    engine = AlertEngine()
    assert raised(feed(engine, inputs + more)) == []  # a consultation is no handled call


def test_frequent_not_ready_does_not_count_the_seats_own_no_answer_pauses() -> None:
    s = Seat()
    inputs: list[Input] = [s.state(0, "ready")]
    for i in range(8):
        inputs += [s.state(100 * i + 10, "not_ready", "no_answer"), s.state(100 * i + 20, "ready")]
    assert feed(AlertEngine(), inputs) == []


def test_a_reason_change_is_a_new_not_ready_spell() -> None:
    s = Seat()
    engine = AlertEngine()
    feed(engine, [s.state(0, "not_ready", "restroom"), tick(500)])
    # restroom for 500 s, then meal: the meal's own 60 minutes start now
    changes = feed(engine, [s.state(500, "not_ready", "meal"), tick(1200)])
    assert changes == []
    [up] = engine.tick(T0 + 4100.001)
    assert (up.alert.rule, up.alert.since) == ("long_not_ready", T0 + 500)
    assert up.alert.message == ("s1: Not Ready (meal) for 60 min 0.001 s (limit for meal: "
                                "60 min)")


def test_a_snapshot_of_a_long_not_ready_fires_at_once() -> None:
    s = Seat()
    [up] = AlertEngine().on_seat_event(s.snapshot(2000, "not_ready", 700, "restroom"))
    assert (up.alert.since, up.alert.t, up.alert.measured) == (T0 + 1300, T0 + 2000, 700.0)


def test_windows_are_trimmed() -> None:
    s = Seat()
    engine = AlertEngine()
    inputs: list[Input] = []
    for i in range(500):  # a call every 10 minutes for three and a half days
        inputs += answered_call(i + 1, 600 * i, talk_s=30.0)
        inputs += [s.state(600 * i + 32, "acw", call=i + 1), s.state(600 * i + 40, "ready"),
                   s.state(600 * i + 100, "not_ready", "break"), s.state(600 * i + 110, "ready")]
    feed(engine, inputs)
    seat = engine._seats["s1"]
    assert len(seat.talk_samples) <= 6 and len(seat.acw_samples) <= 6
    assert len(seat.nr_starts) <= 6
    assert not seat.holds and not seat.leg_hold and not seat.answered


# --- robustness ------------------------------------------------------------------------------


def busy_trace() -> list[Input]:
    """Something of every rule but after_shift."""
    s, s2 = Seat("s1"), Seat("s2")
    out: list[Input] = [s.state(0, "ready"), s2.state(0, "ready")]
    out += hold_trace(45.0)
    out += [s.help(60, True), tick(70), s.help(80, False)]
    out += [Call(20 + i)("ring_no_answer", 100 + i, seat="s2", rings=3, ring_s=15.0,
                         detail="rang out") for i in range(3)]  # fmt: skip
    c = Call(2)
    out += [c("enter_queue", 110), c("offer", 111, seat="s1"),
            c("answer", 135, seat="s1", wait_s=25.0, ring_s=24.0, rings=5)]  # fmt: skip
    out += [avail("s2", False, 200), tick(300), avail("s2", True, 320)]
    out += [s.state(400, "acw", call=3), s2.state(400, "not_ready", "restroom"), tick(600),
            s.state(700, "ready"), tick(1100), s2.state(1200, "ready")]  # fmt: skip
    return out


def test_replay_and_repeats_give_the_same_alerts() -> None:
    once = feed(AlertEngine(), busy_trace())
    assert {c.alert.rule for c in once} == set(RULES) - {"after_shift", "avg_acw", "avg_talk",
                                                         "frequent_not_ready"}
    again = feed(AlertEngine(), busy_trace())
    assert again == once  # a fresh engine on the same input: the same alerts, ids and all
    doubled: list[Input] = []
    for item in busy_trace():
        doubled += [item, item] if isinstance(item, SeatEvent | CallEvent) else [item]
    engine = AlertEngine()
    assert feed(engine, doubled) == once
    events = sum(isinstance(i, SeatEvent | CallEvent) for i in busy_trace())
    counts = engine.counts
    assert counts.duplicates == events and counts.late == 0 and counts.bad == 0
    assert counts.raised == {rule: 1 for rule in sorted({c.alert.rule for c in once})}
    assert counts.cleared == {rule: 1 for rule in sorted({c.alert.rule for c in cleared(once)})}
    assert len({c.alert.id for c in raised(once)}) == len(raised(once))


def test_a_late_event_is_counted_and_still_processed() -> None:
    c = Call(1)
    engine = AlertEngine()
    feed(engine, [c("answer", 0, seat="s1", rings=1), c("hold", 10, seat="s1")])
    [up] = engine.tick(T0 + 100)  # the unhold is held up (a broker outage, say)
    [down] = engine.on_call_event(c("unhold", 25, seat="s1", hold_s=15.0))
    # it was a 15 s hold after all: cleared with its real length, never before its raise
    assert (down.change, down.alert, down.measured, down.t) == ("cleared", up.alert, 15.0,
                                                                T0 + 100)  # fmt: skip
    assert engine.counts.late == 1 and engine.now == T0 + 100
    # within the tolerance it is not late
    engine.on_call_event(Call(2)("enter_queue", 96))
    assert engine.counts.late == 1


@pytest.mark.parametrize("data", [
    {},  # no event at all
    {"event": "state", "state": "flying"},
    {"event": "state"},
    {"event": "help", "a": "yes"},
    {"event": "help", "a": True},
    {"event": 7},
])  # fmt: skip
def test_bad_data_in_a_valid_seat_event_is_counted(data: dict[str, Any]) -> None:
    engine = AlertEngine()
    assert engine.on_seat_event(Seat().raw(0, "event", data)) == []
    assert engine.counts.bad == 1 and engine.counts.events == 1


def test_bad_snapshots_and_call_events_are_counted() -> None:
    s = Seat()
    engine = AlertEngine()
    engine.on_seat_event(s.raw(0, "snapshot", {"state": "ready"}))  # no help: state taken
    engine.on_seat_event(s.raw(1, "snapshot", {"state": "ready", "secs": -5, "help": False}))
    engine.on_call_event(Call(1)("hold", 2))  # whose hold?
    engine.on_call_event(Call(2)("release", 3, seat="s1", by="caller"))  # no talk_s, no answer
    assert engine.counts.bad == 4
    assert engine.on_seat_event(s.raw(4, "reject", {"command_seq": 1})) == []
    assert engine.counts.bad == 4


def test_only_queue_answers_are_judged_on_rings() -> None:
    out = Call(1, direction="outbound")
    transfer = Call(2)
    target = {"kind": "blind", "seat": "s1", "queue": None, "note": ""}
    changes = feed(AlertEngine(), [
        out("answer", 0, seat="s1", rings=6),
        transfer("answer", 10, seat="s1", rings=5, target=target),
        Call(3)("answer", 20, seat="s1", rings=None),  # the Asterisk backend may not know
    ])  # fmt: skip
    assert changes == []


# --- settings --------------------------------------------------------------------------------


def test_settings_from_a_toml_table() -> None:
    doc = tomllib.loads("""
        [alerts]
        hold_max_s = 20
        avg_min_calls = 3
        not_ready_spells_exempt = []
        [alerts.not_ready_max_s_by_reason]
        meal = 2700
    """)
    s = AlertSettings.from_mapping(doc["alerts"])
    assert s.hold_max_s == 20.0 and isinstance(s.hold_max_s, float)
    assert s.avg_min_calls == 3 and s.not_ready_spells_exempt == frozenset()
    assert s.not_ready_limit("meal") == 2700.0
    assert s.not_ready_limit("restroom") == 600.0  # the rest of the table is the default's
    assert s.not_ready_limit(None) == s.not_ready_max_s == 900.0
    assert AlertSettings.from_mapping({}) == AlertSettings()


@pytest.mark.parametrize(("data", "key"), [
    ({"hold_limit_s": 30}, "alerts.hold_limit_s"),
    ({"hold_max_s": "30"}, "alerts.hold_max_s"),
    ({"hold_max_s": -1}, "alerts.hold_max_s"),
    ({"acw_avg_max_s": True}, "alerts.acw_avg_max_s"),
    ({"avg_min_calls": 5.0}, "alerts.avg_min_calls"),
    ({"avg_min_calls": 0}, "alerts.avg_min_calls"),
    ({"no_answer_max": -2}, "alerts.no_answer_max"),
    ({"avg_window_s": 0}, "alerts.avg_window_s"),
    ({"offline_grace_s": float("inf")}, "alerts.offline_grace_s"),
    ({"not_ready_max_s_by_reason": {"lunch": 600}}, "alerts.not_ready_max_s_by_reason.lunch"),
    ({"not_ready_max_s_by_reason": {"meal": -1}}, "alerts.not_ready_max_s_by_reason.meal"),
    ({"not_ready_max_s_by_reason": 600}, "alerts.not_ready_max_s_by_reason"),
    ({"not_ready_spells_exempt": "no_answer"}, "alerts.not_ready_spells_exempt"),
    ({"not_ready_spells_exempt": ["nap"]}, "alerts.not_ready_spells_exempt"),
    ({"hold_max_s": 20, "answer_max_rings": -1}, "alerts.answer_max_rings"),
])  # fmt: skip
def test_settings_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError) as err:
        AlertSettings.from_mapping(data)
    assert str(err.value).startswith(key + ":"), str(err.value)


def test_settings_made_in_code_are_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^alerts\.hold_max_s:"):
        AlertSettings(hold_max_s=-1.0)
    settings = AlertSettings(hold_max_s=10)
    changes = feed(AlertEngine(settings), hold_trace(10.5))
    assert raised(changes, "hold")[0].alert.threshold == 10


# --- ticks change when an alert is seen, never which ----------------------------------------


def test_the_alerts_of_a_day_do_not_depend_on_how_often_the_clock_ticks() -> None:
    """Rules of elapsed time are judged from a heap of per-seat deadlines; windows (the
    averages and counts) at their own deadline. So a worker ticking every second and one
    replaying the store with no ticks at all raise the same alerts with the same ids:
    nothing is left open by one that the other would have cleared."""
    from tools.trace import generate

    trace = generate(seats=30, queues=3, start=1_800_000_000.0, hours=3, seed=5)
    settings = AlertSettings.from_mapping({"not_ready_max_spells": 1, "no_answer_max": 0,
                                           "hold_max_s": 20.0, "acw_max_s": 45.0})  # fmt: skip
    runs: list[list[AlertChange]] = []
    for every in (1, 7, 0):  # a tick after every event, after every 7th, never
        engine = AlertEngine(settings)
        changes: list[AlertChange] = []
        for i, (kind, payload) in enumerate(trace.events):
            if kind == "seat":
                changes += engine.on_seat_event(SeatEvent.model_validate(payload))
            else:
                changes += engine.on_call_event(CallEvent.model_validate(payload))
            if every and i % every == 0:
                changes += engine.tick(payload["t"] + 0.5)
        changes += engine.tick(trace.end + 7200)
        runs.append(changes)
    assert len(runs[0]) > 100
    assert {c.alert.rule for c in runs[0]} >= {"hold", "long_acw", "frequent_not_ready",
                                               "no_answer", "avg_talk"}  # fmt: skip

    def ids(changes: list[AlertChange]) -> list[tuple[str, str]]:
        return sorted((c.alert.id, c.change) for c in changes)

    def windows(changes: list[AlertChange]) -> list[tuple[str, str, float, float]]:
        return sorted((c.alert.id, c.change, c.t, c.measured) for c in changes
                      if c.alert.rule in ("avg_acw", "avg_talk", "frequent_not_ready",
                                          "no_answer"))  # fmt: skip

    assert ids(runs[0]) == ids(runs[1]) == ids(runs[2])
    assert windows(runs[0]) == windows(runs[1]) == windows(runs[2])
    # every alert raised was cleared by the end of the day (nothing stays open)
    assert sum(c.change == "raised" for c in runs[0]) == sum(
        c.change == "cleared" for c in runs[0]) + sum(
        c.change == "raised" and c.alert.rule == "late_answer" for c in runs[0])  # fmt: skip
