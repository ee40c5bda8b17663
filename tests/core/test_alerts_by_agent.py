"""Alerts with agents signed in at the seats (issue 19, part 2, docs/alerts.md "Agents"):
each alert names the agent as well as the seat, and the rules over a window (average ACW
and talk, frequent Not Ready, repeated no-answer) count the agent's own calls, wherever the
agent sat. Times are seconds after T0, as in test_alerts.py."""

from __future__ import annotations

from pathlib import Path

from gateway.core.alerts import AlertEngine, AlertSettings
from gateway.core.service import CoreService
from gateway.core.settings import CoreSettings
from tests.core.test_alerts import T0, Call, Input, Seat, cleared, feed, raised


def signed(engine: AlertEngine, *changes: tuple[str, str | None, float]) -> AlertEngine:
    for k, (seat, agent, t) in enumerate(changes):
        engine.sign_in(seat, agent, T0 + t, f"api-{k}")
    return engine


def acw_calls(seat: Seat, first: int, start: float, n: int, acw: float) -> list[Input]:
    out: list[Input] = []
    for i in range(n):
        t = start + 300 * i
        out += [seat.state(t + 10, "acw", call=first + i), seat.state(t + 10 + acw, "ready")]
    return out


def test_an_alert_names_the_agent_signed_in_and_its_seat() -> None:
    engine = signed(AlertEngine(), ("s1", "ann", -60), ("s2", None, -60))
    c1, c2 = Call(1), Call(2)
    changes = feed(engine, [
        c1("answer", 0, seat="s1", rings=1), c1("hold", 10, seat="s1"),
        c1("unhold", 50, seat="s1", hold_s=40.0),
        c2("answer", 0, seat="s2", rings=1), c2("hold", 10, seat="s2"),
        c2("unhold", 50, seat="s2", hold_s=40.0)])  # fmt: skip
    ann, nobody = (c.alert for c in raised(changes, "hold"))
    assert (ann.seat, ann.agent) == ("s1", "ann")
    assert ann.message.startswith("s1 (ann): caller on hold for")
    assert (nobody.seat, nobody.agent) == ("s2", None)  # nobody signed in: said, not guessed
    assert nobody.message.startswith("s2: caller on hold")


def test_a_hold_is_the_agent_s_who_answered_though_another_signs_in_meanwhile() -> None:
    engine = signed(AlertEngine(), ("s1", "ann", -60), ("s1", "bob", 20))
    c = Call(1)
    changes = feed(engine, [c("answer", 0, seat="s1", rings=1), c("hold", 10, seat="s1"),
                            c("unhold", 50, seat="s1", hold_s=40.0)])  # fmt: skip
    [hold] = raised(changes, "hold")
    assert hold.alert.agent == "ann"  # the hold began under ann, at 10


def test_the_average_acw_follows_the_agent_from_seat_to_seat() -> None:
    """ann takes 3 calls with 90 s of ACW at s1, moves to s2 and takes 2 more: 5 calls over
    60 s on average, ann's, raised at s2. bob, at s1 after her with short ACW, is not
    alerted, and his calls do not dilute hers."""
    engine = signed(AlertEngine(), ("s1", "ann", -60), ("s1", "bob", 1000),
                    ("s2", "ann", 1000))  # fmt: skip
    s1, s2 = Seat("s1"), Seat("s2")
    trace: list[Input] = [s1.state(0, "ready"), *acw_calls(s1, 1, 0, 3, 90.0),
                          s2.state(1010, "ready"), s1.state(1010, "ready"),
                          *acw_calls(s1, 10, 1100, 3, 5.0), *acw_calls(s2, 20, 1100, 2, 90.0)]
    changes = feed(engine, trace)
    [avg] = raised(changes, "avg_acw")
    assert (avg.alert.seat, avg.alert.agent, avg.measured) == ("s2", "ann", 90.0)
    assert "average ACW 90 s over the last 5 calls" in avg.alert.message
    assert [c.alert.agent for c in raised(changes)] == ["ann"]  # nothing for bob


def test_an_agent_s_window_alerts_end_when_it_signs_out() -> None:
    engine = signed(AlertEngine(AlertSettings(avg_min_calls=2)), ("s1", "ann", -60),
                    ("s1", None, 1000))  # fmt: skip
    s1 = Seat("s1")
    changes = feed(engine, [s1.state(0, "ready"), *acw_calls(s1, 1, 0, 2, 90.0),
                            s1.state(1100, "logged_out")])  # fmt: skip
    [up] = raised(changes, "avg_acw")
    [down] = cleared(changes, "avg_acw")
    assert up.alert.agent == "ann" and down.alert.id == up.alert.id
    assert down.why == "ann signed out of s1"


def test_the_after_shift_alert_follows_the_agent_s_shift(tmp_path: Path) -> None:
    """The schedule names agents: at s1 the shift asked for is that of the agent signed in
    there (the core worker's shift_end), none when nobody is."""
    (tmp_path / "schedule.toml").write_text(
        'zone = "UTC"\n[[agent]]\nid = "ann"\nweek = "daily 08:00-09:00"\n'
        '[[agent]]\nid = "bob"\nweek = "daily 08:00-12:00"\n')  # fmt: skip
    core = CoreService(CoreSettings(site="hq", store=str(tmp_path / "core.db"),
                                    schedule=tmp_path / "schedule.toml"))  # fmt: skip
    signed(core.alerts, ("s1", "ann", -60), ("s1", "bob", 600), ("s2", None, -60))
    assert core._shift_end("s1", T0 + 60) == T0 + 3600  # ann's shift (T0 is 08:00 UTC)
    assert core._shift_end("s1", T0 + 700) == T0 + 4 * 3600  # bob's, at the same seat
    assert core._shift_end("s2", T0 + 60) is None  # nobody: no shift to be past


def test_nobody_s_window_alerts_end_when_an_agent_signs_in() -> None:
    engine = signed(AlertEngine(AlertSettings(avg_min_calls=2)), ("s1", "ann", 1000))
    s1 = Seat("s1")
    changes = feed(engine, [s1.state(0, "ready"), *acw_calls(s1, 1, 0, 2, 90.0),
                            s1.state(1100, "not_ready", "break")])  # fmt: skip
    [up] = raised(changes, "avg_acw")
    [down] = cleared(changes, "avg_acw")
    assert up.alert.agent is None and down.alert.id == up.alert.id
    assert down.why == "ann signed in at s1"
