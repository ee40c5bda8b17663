"""The dialer's building blocks: outcome ledger, pacer, decision store, masked messages.

Real SQLite files under tmp_path, real phonenumbers metadata, a seeded simulation."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract.payloads import ComplianceDecisionMessage
from gateway.pbx.compliance import (
    AuthorisationCodes,
    BlockedCategory,
    BlockedEntry,
    BlockedNumbers,
    CallClass,
    ComplianceGate,
    DoNotCallList,
)
from gateway.pbx.dialer import (
    DecisionStore,
    DialLedger,
    Outcome,
    Pacer,
    decision_message,
    mask,
)

T0 = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
CALLER_ID = "010 6512 3456"


@pytest.fixture
def ledger(tmp_path: Path) -> DialLedger:
    return DialLedger(tmp_path / "ledger.sqlite3")


def fill(ledger: DialLedger, campaign: str, at: datetime, **counts: int) -> None:
    """Record counts[outcome] calls with that outcome at `at`, calls numbered 1, 2, ..."""
    call = 0
    for outcome, n in counts.items():
        for _ in range(n):
            call += 1
            ledger.record(campaign, call, outcome, at)


# --- ledger ----------------------------------------------------------------------------------


def test_counts_and_drop_rate(ledger: DialLedger) -> None:
    assert ledger.drop_rate("c1", at=T0) == 0.0  # nothing yet
    fill(ledger, "c1", T0, answered=97, drop=3, no_answer=40, busy=5, denied=2)
    assert ledger.counts("c1", at=T0) == {
        "answered": 97,
        "drop": 3,
        "no_answer": 40,
        "busy": 5,
        "denied": 2,
    }
    assert ledger.drop_rate("c1", at=T0) == pytest.approx(0.03)
    assert ledger.drop_counts("c1", at=T0) == (3, 100)
    # Unanswered, busy and denied calls are not live answers: they do not dilute the rate.
    assert ledger.drop_rate("c2", at=T0) == 0.0


def test_only_drops_is_a_rate_of_one(ledger: DialLedger) -> None:
    fill(ledger, "c1", T0, drop=2, no_answer=5)
    assert ledger.drop_rate("c1", at=T0) == 1.0


def test_thirty_day_window(ledger: DialLedger) -> None:
    ledger.record("c1", 1, Outcome.DROP, T0 - timedelta(days=31))  # outside
    ledger.record("c1", 2, Outcome.DROP, T0 - timedelta(days=30))  # exactly 30 days: outside
    ledger.record("c1", 3, Outcome.DROP, T0 - timedelta(days=29, hours=23))  # inside
    ledger.record("c1", 4, Outcome.ANSWERED, T0 - timedelta(days=1))
    ledger.record("c1", 5, Outcome.ANSWERED, T0)  # the window's end is inside
    ledger.record("c1", 6, Outcome.DROP, T0 + timedelta(seconds=1))  # the future: outside
    assert ledger.drop_counts("c1", at=T0) == (1, 3)
    assert ledger.drop_rate("c1", at=T0) == pytest.approx(1 / 3)
    assert ledger.counts("c1", at=T0)["drop"] == 1
    # A shorter window, as the pacer's recent rate: the last 2 days.
    assert ledger.drop_counts("c1", at=T0, days=2) == (0, 2)
    assert ledger.drop_counts("c1", at=T0, days=10 / 1440) == (0, 1)


def test_window_uses_the_instant_not_the_zone(ledger: DialLedger) -> None:
    shanghai = T0.astimezone(ZoneInfo("Asia/Shanghai"))
    ledger.record("c1", 1, "drop", shanghai - timedelta(days=29))
    assert ledger.drop_rate("c1", at=T0) == 1.0


def test_record_is_idempotent(ledger: DialLedger) -> None:
    assert ledger.record("c1", 7, "drop", T0) is True
    assert ledger.record("c1", 7, "drop", T0 + timedelta(minutes=5)) is False
    assert ledger.record("c1", 8, "answered", T0) is True
    assert ledger.counts("c1", at=T0 + timedelta(hours=1))["drop"] == 1
    assert ledger.drop_rate("c1", at=T0 + timedelta(hours=1)) == 0.5
    # The same call id in another campaign is another call.
    assert ledger.record("c2", 7, "drop", T0) is True


def test_a_call_both_dropped_and_answered_is_one_live_answer(ledger: DialLedger) -> None:
    # An agent came after the 2 seconds: still a drop, and still one callee.
    ledger.record("c1", 1, "drop", T0)
    ledger.record("c1", 1, "answered", T0 + timedelta(seconds=3))
    ledger.record("c1", 2, "answered", T0)
    assert ledger.drop_counts("c1", at=T0 + timedelta(minutes=1)) == (1, 2)


def test_purge_keeps_ninety_days(ledger: DialLedger) -> None:
    ledger.record("c1", 1, "drop", T0 - timedelta(days=91))
    ledger.record("c1", 2, "answered", T0 - timedelta(days=90))  # exactly 90 days: goes
    ledger.record("c1", 3, "answered", T0 - timedelta(days=89))
    ledger.record("c1", 4, "drop", T0)
    assert ledger.purge(at=T0) == 2
    assert ledger.counts("c1", at=T0, days=90) == {
        "answered": 1,
        "drop": 1,
        "no_answer": 0,
        "busy": 0,
        "denied": 0,
    }
    assert ledger.purge(at=T0) == 0


def test_ledger_survives_reopening(tmp_path: Path) -> None:
    first = DialLedger(tmp_path / "l.sqlite3")
    first.record("c1", 1, "drop", T0)
    first.record("c1", 2, "answered", T0)
    # A second connection sees the committed rows at once (the health reader's view).
    reader = DialLedger(tmp_path / "l.sqlite3")
    assert reader.drop_rate("c1", at=T0) == 0.5
    first.close()
    reader.close()
    again = DialLedger(tmp_path / "l.sqlite3")
    assert again.record("c1", 1, "drop", T0) is False
    assert again.drop_counts("c1", at=T0) == (1, 2)


def test_ledger_refuses_programming_errors(ledger: DialLedger) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.record("c1", 1, "drop", datetime(2024, 6, 3, 10))
    with pytest.raises(ValueError, match="'dropped' is not a valid Outcome"):
        ledger.record("c1", 1, "dropped", T0)
    with pytest.raises(ValueError, match="days must be in"):
        ledger.drop_rate("c1", at=T0, days=91)
    with pytest.raises(ValueError, match="days must be in"):
        ledger.counts("c1", at=T0, days=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.purge(at=datetime(2024, 6, 3))


# --- pacer -----------------------------------------------------------------------------------


def test_pacer_starts_progressive() -> None:
    p = Pacer()
    assert (p.ratio, p.reserve_agent) == (1.0, False)
    assert p.caution == pytest.approx(0.015)


def test_ratio_rises_with_no_drops_up_to_max() -> None:
    p = Pacer(max_ratio=2.0)
    seen = []
    for _ in range(15):
        p.observe(0.0, 0.0)
        seen.append(p.ratio)
    assert seen[:3] == [1.1, 1.2, 1.3]  # exact, not 1.2000000000000002
    assert seen[9:] == [2.0] * 6
    assert p.lines_to_dial(4, 0, 0.0, 0.0) == 8


def test_ratio_falls_as_the_30_day_rate_nears_target() -> None:
    p = Pacer()
    for _ in range(10):
        p.observe(0.0, 0.0)
    assert p.ratio == 2.0
    p.observe(0.0149, 0.0)  # below caution (1.5 %): still rising
    assert p.ratio == 2.1
    p.observe(0.015, 0.0)  # at caution: down
    assert p.ratio == 2.0
    p.observe(0.029, 0.0)
    assert p.ratio == 1.9
    p.observe(0.0, 0.02)  # the recent rate alone near the target: down too
    assert p.ratio == 1.8
    assert not p.reserve_agent


def test_recent_burst_goes_straight_to_min_ratio() -> None:
    p = Pacer()
    for _ in range(20):
        p.observe(0.0, 0.0)
    assert p.ratio == 3.0
    p.observe(0.01, 0.05)
    assert (p.ratio, p.reserve_agent) == (1.0, False)


def test_at_target_min_ratio_then_reserve_agent() -> None:
    p = Pacer()
    for _ in range(5):
        p.observe(0.0, 0.0)
    assert p.ratio == 1.5
    p.observe(0.03, 0.0)  # at the target: straight to 1.0
    assert (p.ratio, p.reserve_agent) == (1.0, False)
    p.observe(0.031, 0.0)  # still above at 1.0: dial only for a reserved agent
    assert (p.ratio, p.reserve_agent) == (1.0, True)
    assert p.lines_to_dial(5, 2, 0.031, 0.0) == 3  # one line per free reserved agent
    # Between caution and target: stay reserved (no flapping around 3 %).
    p.observe(0.02, 0.0)
    assert p.reserve_agent
    p.observe(0.014, 0.0)  # below caution: leave reserve mode first ...
    assert (p.ratio, p.reserve_agent) == (1.0, False)
    p.observe(0.014, 0.0)  # ... then rise
    assert p.ratio == 1.1


def test_reserve_mode_dials_at_most_one_line_per_agent() -> None:
    p = Pacer(min_ratio=1.5)
    p.observe(0.05, 0.0)
    assert p.reserve_agent and p.ratio == 1.5
    assert p.lines_to_dial(4, 0, 0.05, 0.0) == 4


def test_no_ready_agents_no_lines_and_never_negative() -> None:
    p = Pacer()
    for _ in range(20):
        p.observe(0.0, 0.0)
    assert p.lines_to_dial(0, 0, 0.0, 0.0) == 0
    assert p.lines_to_dial(0, 5, 0.0, 0.0) == 0
    assert p.lines_to_dial(2, 50, 0.0, 0.0) == 0
    assert p.lines_to_dial(2, 1, 0.0, 0.0) == 5  # floor(2 * 3.0) - 1


def test_lines_floor_the_ratio() -> None:
    p = Pacer()
    for _ in range(5):
        p.observe(0.0, 0.0)
    assert p.ratio == 1.5
    # lines_to_dial observes too: one more step up to 1.6.
    assert p.lines_to_dial(3, 0, 0.0, 0.0) == 4  # floor(3 * 1.6)
    assert p.lines_to_dial(5, 1, 0.0, 0.0) == 7  # floor(5 * 1.7) - 1


@pytest.mark.parametrize(
    ("drops", "live", "affordable"),
    [
        (0, 0, 0),  # a new campaign: one drop is 100 %
        (0, 32, 0),  # 1/33 = 3.03 %
        (0, 33, 1),  # 1/34 = 2.94 %
        (0, 97, 2),  # 3/100 is not below 3 % (exact arithmetic)
        (0, 100, 3),
        (2, 100, 1),
        (3, 100, 0),
        (10, 100, 0),  # already over
        (30, 1000, 0),
        (29, 1000, 1),
    ],
)
def test_affordable_drops(drops: int, live: int, affordable: int) -> None:
    rate = drops / live if live else 0.0
    assert Pacer().affordable_drops(rate, live) == affordable
    if affordable:
        assert (drops + affordable) / (live + affordable) < 0.03
    assert (drops + affordable + 1) / (live + affordable + 1) >= 0.03


def test_drop_budget_caps_the_lines_beyond_ready_agents() -> None:
    p = Pacer()
    for _ in range(20):
        p.observe(0.0, 0.0)
    assert p.ratio == 3.0
    # A new campaign: no drop affordable, so no line beyond the Ready agents.
    assert p.lines_to_dial(4, 0, 0.0, 0.0, live_answers_30d=0) == 4
    assert p.lines_to_dial(4, 3, 0.0, 0.0, live_answers_30d=10) == 1
    # 100 answers, none dropped: 3 lines may go beyond the 4 agents.
    assert p.lines_to_dial(4, 0, 0.0, 0.0, live_answers_30d=100) == 7
    assert p.lines_to_dial(4, 6, 0.0, 0.0, live_answers_30d=100) == 1
    # Plenty of room: the ratio decides.
    assert p.lines_to_dial(4, 0, 0.0, 0.0, live_answers_30d=10_000) == 12


def test_pacer_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="min_ratio"):
        Pacer(min_ratio=0.8)
    with pytest.raises(ValueError, match="min_ratio"):
        Pacer(min_ratio=3.0, max_ratio=2.0)
    with pytest.raises(ValueError, match="target_drop_rate"):
        Pacer(0.0)
    with pytest.raises(ValueError, match="step"):
        Pacer(step=0)
    with pytest.raises(ValueError, match="margin"):
        Pacer(margin=1.0)
    p = Pacer()
    with pytest.raises(ValueError, match="rate in 0..1"):
        p.observe(float("nan"), 0.0)
    with pytest.raises(ValueError, match="recent drop rate"):
        p.observe(0.0, 1.5)
    with pytest.raises(ValueError, match="cannot be negative"):
        p.lines_to_dial(-1, 0, 0.0, 0.0)
    with pytest.raises(ValueError, match="live_answers_30d"):
        p.lines_to_dial(1, 0, 0.0, 0.0, live_answers_30d=-1)


_rates = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 50),
            st.integers(0, 200),
            _rates,
            _rates,
            st.none() | st.integers(0, 10**6),
        ),
        max_size=40,
    )
)
def test_pacer_invariants(steps: list[tuple[int, int, float, float, int | None]]) -> None:
    p = Pacer()
    for ready, in_progress, rate_30d, recent, live in steps:
        n = p.lines_to_dial(ready, in_progress, rate_30d, recent, live_answers_30d=live)
        assert n >= 0
        assert 1.0 <= p.ratio <= 3.0
        assert n <= max(0, 3 * ready - in_progress)
        if ready == 0:
            assert n == 0
        if p.reserve_agent:
            assert p.ratio == 1.0 and n <= max(0, ready - in_progress)


# --- simulation: pacer + ledger --------------------------------------------------------------


@dataclass
class Sim:
    """A seeded outbound floor: callees answer with p = 0.3 after 3-25 s, else ring out at
    6 rings (30 s at the CN cadence); an answered callee waits up to 2 s for an agent (the
    2-second rule), else it is a drop; an agent talks for 10 s + an exponential 150 s."""

    ledger: DialLedger
    rng: random.Random
    agents: int = 8
    campaign: str = "sim"
    busy_until: list[int] = field(default_factory=list)
    ringing: list[tuple[int, int, bool]] = field(default_factory=list)  # call, settles at, answers
    waiting: list[tuple[int, int]] = field(default_factory=list)  # call, drop deadline
    next_call: int = 1

    def __post_init__(self) -> None:
        self.busy_until = [0] * self.agents

    def settle(self, tick: int, at: datetime) -> list[int]:
        free = [a for a in range(self.agents) if self.busy_until[a] <= tick]

        def connect(call: int) -> None:
            agent = free.pop()
            self.busy_until[agent] = tick + 10 + int(self.rng.expovariate(1 / 150))
            self.ledger.record(self.campaign, call, Outcome.ANSWERED, at)

        still_waiting = []
        for call, deadline in self.waiting:
            if free:
                connect(call)
            elif tick >= deadline:
                self.ledger.record(self.campaign, call, Outcome.DROP, at)
            else:
                still_waiting.append((call, deadline))
        self.waiting = still_waiting
        still_ringing = []
        for call, settles, answers in self.ringing:
            if settles > tick:
                still_ringing.append((call, settles, answers))
            elif not answers:
                self.ledger.record(self.campaign, call, Outcome.NO_ANSWER, at)
            elif free:
                connect(call)
            else:
                self.waiting.append((call, tick + 2))
        self.ringing = still_ringing
        return free

    def dial(self, tick: int, lines: int) -> None:
        for _ in range(lines):
            answers = self.rng.random() < 0.3
            settles = tick + (self.rng.randint(3, 25) if answers else 30)
            self.ringing.append((self.next_call, settles, answers))
            self.next_call += 1


def test_simulated_campaign_stays_below_three_percent(tmp_path: Path) -> None:
    # Checked beyond this seed while writing it: 200 seeds, every one below 3 % at every tick,
    # every one with drops and a ratio above 1.0.
    ledger = DialLedger(tmp_path / "sim.sqlite3")
    sim = Sim(ledger, random.Random(20240603))
    pacer = Pacer()
    worst = 0.0
    ratios = []
    for tick in range(90 * 60):  # 90 minutes, one tick a second, paced every 5 s
        at = T0 + timedelta(seconds=tick)
        free = sim.settle(tick, at)
        if tick % 5:
            continue
        drops, live = ledger.drop_counts(sim.campaign, at=at)
        rate_30d = drops / live if live else 0.0
        recent = ledger.drop_rate(sim.campaign, at=at, days=10 / 1440)  # last 10 minutes
        in_progress = len(sim.ringing) + len(sim.waiting)
        sim.dial(tick, pacer.lines_to_dial(len(free), in_progress, rate_30d, recent,
                                           live_answers_30d=live))  # fmt: skip
        worst = max(worst, rate_30d)
        ratios.append(pacer.ratio)
    end = T0 + timedelta(minutes=90)
    counts = ledger.counts(sim.campaign, at=end)
    assert counts["answered"] > 150 and counts["no_answer"] > counts["answered"]
    assert counts["drop"] > 0  # the pacer did take risks ...
    assert max(ratios) > 1.0  # ... by dialling above one line per agent
    assert ledger.drop_rate(sim.campaign, at=end) < 0.03
    assert worst < 0.03  # at every pacing tick, not only at the end


# --- decision store and messages -------------------------------------------------------------


@pytest.fixture
def gate() -> ComplianceGate:
    dnc = DoNotCallList(":memory:", region="CN")
    dnc.add("010 6512 7777", at=T0 - timedelta(days=1))
    return ComplianceGate(
        dnc=dnc,
        blocked=BlockedNumbers(entries=[BlockedEntry("12320", BlockedCategory.HEALTH_CARE)]),
        codes=AuthorisationCodes.from_plain({CallClass.INTERNATIONAL: ["3333"]}, iterations=1000),
        home_region="CN",
        home_area_code="010",
    )


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+86 21 6123 4568", "***4568"),
        ("138-0013-8000", "***8000"),
        ("1234", "***1234"),
        ("120", "***"),
        ("", "***"),
        ("call me", "***"),
    ],
)
def test_mask(number: str, masked: str) -> None:
    assert mask(number) == masked


def test_store_keeps_full_numbers_newest_first(tmp_path: Path, gate: ComplianceGate) -> None:
    store = DecisionStore(tmp_path / "decisions.sqlite3")
    allowed = gate.check("010 6512 9999", caller_id=CALLER_ID, when=T0)
    denied = gate.check("010 6512 7777", caller_id=CALLER_ID, when=T0 + timedelta(seconds=1))
    assert store.add(allowed, campaign="c1", seat="s01", call=41, caller_id="+861065123456") == 1
    assert store.add(denied, campaign="c1", seat=None, call=None, caller_id="+861065123456") == 2
    latest = store.recent(10)
    assert [d.row_id for d in latest] == [2, 1]
    assert latest[0].decision == denied  # every field, the full number and aware `at` included
    assert latest[1].decision == allowed
    assert latest[1].decision.number == "+861065129999"
    assert (latest[1].campaign, latest[1].seat, latest[1].call) == ("c1", "s01", 41)
    assert latest[0].call is None and latest[0].seat is None
    assert [d.row_id for d in store.recent(1)] == [2]
    assert store.recent(0) == []


def test_row_ids_are_never_reused(tmp_path: Path, gate: ComplianceGate) -> None:
    decision = gate.check("010 6512 9999", caller_id=CALLER_ID, when=T0)
    store = DecisionStore(tmp_path / "d.sqlite3")
    for _ in range(3):
        store.add(decision, campaign=None, seat="s01", call=None, caller_id=CALLER_ID)
    store._db.execute("DELETE FROM decision WHERE id = 3")  # e.g. a retention purge
    store._db.commit()
    store.close()
    assert (
        DecisionStore(tmp_path / "d.sqlite3").add(
            decision, campaign=None, seat="s01", call=None, caller_id=CALLER_ID
        )
        == 4
    )


def test_count_by_rule_since(gate: ComplianceGate) -> None:
    store = DecisionStore()
    for i, number in enumerate(["010 6512 9999", "010 6512 7777", "120", "010 6512 7777"]):
        d = gate.check(number, caller_id=CALLER_ID, when=T0 + timedelta(minutes=i))
        store.add(d, campaign="c1", seat=None, call=None, caller_id=CALLER_ID)
    assert store.count_by_rule(T0) == {"allowed": 1, "blocked_class": 1, "dnc": 2}
    assert store.count_by_rule(T0 + timedelta(minutes=2)) == {"blocked_class": 1, "dnc": 1}
    assert store.count_by_rule(T0 + timedelta(hours=1)) == {}
    with pytest.raises(ValueError, match="timezone-aware"):
        store.count_by_rule(datetime(2024, 6, 3))


def test_decision_message(gate: ComplianceGate) -> None:
    d = gate.check("010 6512 9999", caller_id=CALLER_ID, when=T0)
    msg = decision_message(
        d, pbx="pbx1", row_id=17, campaign="c1", seat="s01", call=41, caller_id="+861065123456"
    )
    assert isinstance(msg, ComplianceDecisionMessage)
    doc = json.loads(msg.dump())
    assert doc == {
        "v": 1,
        "id": "pbx1-d17",
        "pbx": "pbx1",
        "allowed": True,
        "rule": "allowed",
        "seed": "",
        "reason": "***9999 passed every rule",
        "number": "***9999",
        "caller_id": "+861065123456",
        "campaign": "c1",
        "seat": "s01",
        "call": 41,
        "at": T0.timestamp(),
    }
    assert ComplianceDecisionMessage.model_validate_json(msg.dump()) == msg


@pytest.mark.parametrize(
    ("number", "when", "rule", "kept"),
    [
        ("010 6512 7777", T0, "dnc", "Do-Not-Call"),
        ("+86 21 6123 4568", T0, "authorisation", "domestic_long_distance"),
        ("010 6512 9999", T0 + timedelta(hours=13), "calling_window", "2024-06-03 23:00"),
        ("12320", T0, "blocked_class", "health_care"),
        ("120", T0, "blocked_class", "emergency number in CN"),
        ("+86 120", T0, "blocked_class", "emergency number"),
        ("0120", T0, "parse", "not a valid dialable number"),
        ("12", T0, "parse", "not a valid dialable number"),
        ("call 555", T0, "parse", "not a valid dialable number"),
        ("hello", T0, "parse", "not a phone number"),
        ("+44 20 7946 0958", T0, "authorisation", "international"),
    ],
)
def test_published_reason_never_carries_the_number(
    gate: ComplianceGate, number: str, when: datetime, rule: str, kept: str
) -> None:
    d = gate.check(number, caller_id=CALLER_ID, when=when)
    assert d.rule == rule, d
    msg = decision_message(
        d, pbx="pbx1", row_id=1, campaign=None, seat="s01", call=None, caller_id=CALLER_ID
    )
    assert msg.number == mask(number)
    assert kept in msg.reason  # the reason still says why
    digits = "".join(ch for ch in number if ch.isdigit())
    published = msg.model_dump_json().replace(CALLER_ID, "")
    assert number not in published.replace(mask(number), "")
    if len(digits) > 4:  # four digits or fewer: the mask shows them all (its definition)
        assert digits not in published
        assert mask(number) in msg.reason, msg.reason
