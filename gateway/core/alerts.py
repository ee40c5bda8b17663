"""The policy alert engine: the seeds' per-agent rules (docs/alerts.md) turned into alerts a
supervisor can act on.

Sans-I/O and without a clock of its own. The service around it feeds, in time order, the
seat events (`seat/{seat}/event`), the call events (`call/{call}/event`), the seats'
availability (`seat/{seat}/availability`) and ticks of its own clock; each call returns the
`AlertChange`s (raised, cleared) that the input caused. Storage, publishing, acknowledge
and manual resolve are the service's: the engine never hears of them.

- Agents sign in to seats (`seat/{seat}/agent`, issue 19; `sign_in()`). Each alert names
  the seat and the agent signed in there when its condition started (a leg's hold: when
  the hold started). The rules over a window (average ACW and talk, frequent Not Ready,
  repeated no-answer) count the agent's own samples, wherever the agent sat: a seat's
  windows are the agent's signed in there at the time of each input, and go with the agent
  to the next seat. When an agent leaves a seat and no other seat took its windows, its
  window alerts are cleared ("signed out"). With nobody signed in the seat keeps windows of
  its own.
- Every input moves the engine's clock (`now`, the latest time seen) forward, never back, so
  a rule that fires on elapsed time (a hold still going at 30 s) fires at the first input
  after its threshold, a tick or an event of any seat.
- Alert ids are made from the time of the event that started the condition, so the same
  input always gives the same ids: reprocessing the same events gives the same alerts.
- Repeats (the same event id) count once. An event older than `now` by more than
  `late_tolerance_s` is counted `late` and still processed with its own time (a hold that a
  late unhold shows to have been short is cleared with its real length).
- A field a rule needs that is missing or of the wrong type in an otherwise valid event is
  counted `bad`; the event is skipped for that rule, never an exception.
- Memory is per seat, and every rolling window is trimmed as time moves on.
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from gateway.contract.payloads import CallEvent, ReasonName, SeatEvent, StateName
from gateway.core.kpi import SignIns

Severity = Literal["info", "warning", "critical"]
Change = Literal["raised", "cleared"]
ShiftEnd = Callable[[str, float], float | None]
"""(seat, t) -> the end of the shift that seat was on at t (Unix seconds), or None."""

STATES: Final = frozenset(get_args(StateName))
REASONS: Final = frozenset(get_args(ReasonName))
CONSULTATION: Final = "consultation ended"  # release detail of a consulted seat's leg

# Bounds of what is kept that is not a rolling window. A repeat arrives when a publisher
# resends after an outage: 100,000 ids is hours of a large site's traffic.
SEEN_IDS: Final = 100_000
OPEN_CALLS: Final = 8  # calls of one seat whose legs or holds are open: 1 or 2 in practice
RECENT_CALLS: Final = 16  # a seat's recently released calls, to tell an outbound call's ACW
SHIFT_RECHECK_S: Final = 60.0  # how often an unknown shift end is asked for again


def no_schedule(seat: str, t: float) -> float | None:
    """The default `shift_end`: no seat is ever on a shift, so nobody stays past one."""
    return None


# --- rules --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    seed: str  # where the rule comes from: shared/design/rules-from-seeds.md, seed files S0-S4
    text: str  # the seed's rule in English
    severity: Severity
    clears: str  # what clears it by itself; "never" for a rule about one event


RULES: Final[Mapping[str, Rule]] = MappingProxyType({r.name: r for r in (
    Rule("avg_acw", "S3 1.5", "The average after-call work time (ACW) must not exceed "
         "1 minute.", "info", "the average is back at or under the limit, or fewer calls "
         "than the minimum are left in the window"),
    Rule("avg_talk", "S3 1.7", "The average talk time (ACD) must not exceed 3 minutes.",
         "info", "the average is back at or under the limit, or fewer calls than the "
         "minimum are left in the window"),
    Rule("hold", "S3 1.6", "A caller must not be kept on hold longer than 30 seconds.",
         "warning", "the hold ends: unhold, release, or the caller hangs up"),
    Rule("late_answer", "S2 §二.2; S4", "An incoming call must be answered within three "
         "rings.", "warning", "never"),
    Rule("long_not_ready", "S3 1.4; S3 外呼现场制度 3.2, 3.3", "Breaks must not be too "
         "long; an unjustified busy status is a violation.", "warning",
         "the Not Ready spell ends (another state or another reason)"),
    Rule("frequent_not_ready", "S3 外呼现场制度 3.3", "An unjustified busy status is a "
         "violation.", "info", "the count in the window is back at or under the limit"),
    Rule("long_acw", "S3 外呼现场制度 3.3", "Padding time after hanging up (such as not "
         "submitting the call's form) is a violation.", "warning", "the ACW spell ends"),
    Rule("after_shift", "S3 1.4; S1 现场 10", "Log out of the system at the end of the "
         "shift: otherwise online time keeps accumulating.", "info", "the seat logs out"),
    Rule("help", "S1 现场 8; S3 1.4", "Any problem at work is raised with the manager at "
         "once and solved in time; agents support other seats (支援他席).", "critical",
         "help cleared (help 0, a snapshot without help, or the board restarted)"),
    Rule("offline", "S2 §四.1, §七.2", "Device faults are reported at once, with their "
         "time and symptom.", "critical", "the seat is online again"),
    Rule("no_answer", "S2 §二.2; S4", "An incoming call must be answered within three "
         "rings: a seat that rings out again and again is not answering.", "warning",
         "the count in the window is back at or under the limit"),
)})  # fmt: skip


# --- settings -----------------------------------------------------------------------------


def _default_not_ready_limits() -> Mapping[str, float]:
    # The seeds give no number for a break's length (S3 外呼现场制度 3.2 says only "not too
    # long"): these are the product's defaults, one per reason code of docs/protocol.md.
    return MappingProxyType({
        "break": 900.0, "meal": 3600.0, "meeting": 3600.0, "training": 7200.0,
        "restroom": 600.0, "coaching": 1800.0, "supervisor": 1800.0, "away": 600.0,
        "no_answer": 300.0, "wrap": 120.0,
    })  # fmt: skip


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The thresholds: the `[alerts]` table of the core's settings file. A measured value
    strictly over its threshold fires; at the threshold it does not (the seeds say "must not
    exceed" and "within"). Times are seconds, counts whole numbers."""

    acw_avg_max_s: float = 60.0  # S3 1.5 "平均后台工作时间(ACW)不超过1分钟"
    talk_avg_max_s: float = 180.0  # S3 1.7 "平均通话时间(ACD)不超过3分钟"
    # The averages are per seat over the calls of the last `avg_window_s`, and only once
    # there are `avg_min_calls` of them: one long call is no average (product defaults).
    avg_window_s: float = 3600.0
    avg_min_calls: int = 5
    hold_max_s: float = 30.0  # S3 1.6 "HOLD 最长不得超过30秒"
    answer_max_rings: int = 3  # S2 §二.2 "鈴響三聲內必須接聽"; S4 "响铃三声内必须接听"
    # S3 外呼现场制度 3.3 "挂机后...挂时长" has no number: twice the average ACW target
    acw_max_s: float = 120.0
    # S3 外呼现场制度 3.2 "休息时间不得过长": no number; product defaults, per reason
    not_ready_max_s: float = 900.0  # a reason not in the table, or no reason
    not_ready_max_s_by_reason: Mapping[str, float] = field(
        default_factory=_default_not_ready_limits
    )
    # S3 外呼现场制度 3.3 "无故示忙": no number; more than 4 spells an hour (product default)
    not_ready_max_spells: int = 4
    not_ready_window_s: float = 3600.0
    # Not Ready the seat itself chose after a ring-no-answer is the no_answer rule's
    not_ready_spells_exempt: frozenset[str] = frozenset({"no_answer"})
    # S3 1.4 "下班应正常退出系统"; S1 现场 10: no grace given; 10 min as S1 考勤 1 allows
    # for leaving late or early
    after_shift_grace_s: float = 600.0
    # S2 §四.1, §七.2 (faults reported at once): a grace for a brief reconnect (product)
    offline_grace_s: float = 60.0
    # S2 §二.2; S4 (three rings): more than 2 ring-no-answers in 30 min (product default)
    no_answer_max: int = 2
    no_answer_window_s: float = 1800.0
    late_tolerance_s: float = 5.0  # clock skew between gateway, PBX and the service

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "not_ready_max_s_by_reason":
                for reason, limit in value.items():
                    if reason not in REASONS:
                        raise ValueError(f"alerts.{f.name}.{reason}: not a reason ("
                                         f"{', '.join(sorted(REASONS))})")  # fmt: skip
                    _check_number(f"{f.name}.{reason}", limit, positive=False)
                object.__setattr__(self, f.name, MappingProxyType(dict(value)))
            elif f.name == "not_ready_spells_exempt":
                for reason in value:
                    if reason not in REASONS:
                        raise ValueError(f"alerts.{f.name}: {reason!r} is not a reason ("
                                         f"{', '.join(sorted(REASONS))})")  # fmt: skip
                object.__setattr__(self, f.name, frozenset(value))
            elif f.name in _INTS:
                _check_int(f.name, value, minimum=_INTS[f.name])
            else:
                _check_number(f.name, value, positive=f.name in _POSITIVE)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AlertSettings:
        """The settings of an `[alerts]` TOML table; missing keys keep their defaults, and
        a reason table is merged over the default one. An unknown key, a value of the wrong
        type or out of range is a ValueError naming the key: nothing is half applied."""
        if not isinstance(data, Mapping):
            raise ValueError(f"alerts: a table of settings, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"alerts.{key}: unknown setting (known: "
                                 f"{', '.join(sorted(known))})")  # fmt: skip
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "not_ready_max_s_by_reason":
                if not isinstance(value, Mapping):
                    raise ValueError(f"alerts.{key}: a table of reason = seconds, not "
                                     f"{type(value).__name__}")  # fmt: skip
                for reason, limit in value.items():
                    _check_number(f"{key}.{reason}", limit, positive=False)
                values[key] = {**_default_not_ready_limits(),
                               **{r: float(v) for r, v in value.items()}}  # fmt: skip
            elif key == "not_ready_spells_exempt":
                if not isinstance(value, list | tuple) or not all(
                    isinstance(r, str) for r in value
                ):
                    raise ValueError(f"alerts.{key}: a list of reason names")
                values[key] = frozenset(value)
            elif key in _INTS:
                _check_int(key, value, minimum=_INTS[key])
                values[key] = value
            else:
                _check_number(key, value, positive=key in _POSITIVE)
                values[key] = float(value)
        return cls(**values)

    def not_ready_limit(self, reason: str | None) -> float:
        if reason is None:
            return self.not_ready_max_s
        return self.not_ready_max_s_by_reason.get(reason, self.not_ready_max_s)


_INTS: Final = {"avg_min_calls": 1, "answer_max_rings": 0, "not_ready_max_spells": 0,
                "no_answer_max": 0}  # fmt: skip
_POSITIVE: Final = frozenset({"avg_window_s", "not_ready_window_s", "no_answer_window_s"})


def _check_number(key: str, value: object, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"alerts.{key}: a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"alerts.{key}: {value!r} is out of range (a finite number "
                         f"{'> 0' if positive else '>= 0'})")  # fmt: skip


def _check_int(key: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"alerts.{key}: a whole number, not {value!r}")
    if value < minimum:
        raise ValueError(f"alerts.{key}: {value} is out of range (a whole number >= "
                         f"{minimum})")  # fmt: skip


# --- what comes out -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One occurrence of a rule's condition on one seat."""

    id: str  # <rule>-<seat>-<since in ms>, "-2", "-3", ... if that was taken already
    rule: str
    seed: str
    rule_text: str
    seat: str
    call: int | None  # the call it is about (hold, long_acw, late_answer, no_answer)
    t: float  # raised: the time of the input that raised it
    since: float  # when the condition started: the time of the event that started it
    measured: float  # the value when raised
    threshold: float  # the setting it went over
    unit: str
    severity: Severity
    message: str  # one line for a supervisor
    agent: str | None = None  # signed in at the seat (None: nobody)


@dataclass(frozen=True, slots=True)
class AlertChange:
    change: Change
    alert: Alert
    t: float  # raised: alert.t; cleared: when the condition ended (never before alert.t)
    measured: float  # the value at this change: cleared, the final one (the whole hold)
    why: str = ""  # cleared: what ended the condition


@dataclass(frozen=True, slots=True)
class Counts:
    events: int  # every event given (seat, call, availability), repeats included
    duplicates: int  # repeats of an event id already taken, dropped
    late: int  # older than the engine's time by more than late_tolerance_s; processed
    bad: int  # a field a rule needs missing or of the wrong type; skipped for that rule
    raised: Mapping[str, int]  # rule -> alerts raised
    cleared: Mapping[str, int]  # rule -> alerts cleared by the engine


# --- per seat -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Spell:
    """A condition with a start that becomes an alert once it lasts longer than `limit`."""

    rule: str
    start: float
    limit: float
    call: int | None = None
    reason: str | None = None  # Not Ready's
    alert: Alert | None = None


@dataclass(slots=True)
class _Windows:
    """The samples of the rules over a window, and their open alerts: an agent's, wherever
    it sits, or a seat's own while nobody is signed in there."""

    acw_samples: list[tuple[float, float]] = field(default_factory=list)  # (t, s), by t
    talk_samples: list[tuple[float, float]] = field(default_factory=list)
    nr_starts: list[tuple[float, float]] = field(default_factory=list)  # (t, 1)
    no_answers: list[tuple[float, float]] = field(default_factory=list)  # (t, call)
    windowed: dict[str, Alert] = field(default_factory=dict)  # open window-rule alerts


@dataclass(slots=True)
class _Seat:
    id: str
    state: str | None = None  # None: not known yet
    reason: str | None = None
    call: int | None = None
    since: float = -math.inf
    help: Alert | None = None
    acw: _Spell | None = None
    not_ready: _Spell | None = None
    offline: _Spell | None = None
    shift: _Spell | None = None  # start: the shift's end; limit: the grace
    shift_asked: float = -math.inf
    holds: dict[int, _Spell] = field(default_factory=dict)  # call -> its open hold here
    leg_hold: dict[int, float] = field(default_factory=dict)  # call -> hold s in this leg
    answered: dict[int, float] = field(default_factory=dict)  # call -> answer t
    outbound: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_CALLS))
    own: _Windows = field(default_factory=_Windows)  # while nobody is signed in here
    agent: str | None = None  # whose windows `w` is (None: the seat's own)
    w: _Windows | None = None
    recent_ids: dict[str, deque[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.w is None:
            self.w = self.own

    @property
    def win(self) -> _Windows:
        assert self.w is not None
        return self.w

    @property
    def acw_samples(self) -> list[tuple[float, float]]:
        return self.win.acw_samples

    @property
    def talk_samples(self) -> list[tuple[float, float]]:
        return self.win.talk_samples

    @property
    def nr_starts(self) -> list[tuple[float, float]]:
        return self.win.nr_starts

    @property
    def no_answers(self) -> list[tuple[float, float]]:
        return self.win.no_answers

    @property
    def windowed(self) -> dict[str, Alert]:
        return self.win.windowed

    @property
    def logged_in(self) -> bool:
        return self.state is not None and self.state != "logged_out"

    def spells(self) -> Iterable[_Spell]:
        for spell in (self.acw, self.not_ready, self.offline):
            if spell is not None:
                yield spell
        yield from list(self.holds.values())


class _Seen:
    """The last `size` ids taken, to drop repeats in bounded memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.order: deque[str] = deque()
        self.ids: set[str] = set()

    def add(self, id: str) -> bool:
        """False if `id` was taken already."""
        if id in self.ids:
            return False
        self.ids.add(id)
        self.order.append(id)
        if len(self.order) > self.size:
            self.ids.discard(self.order.popleft())
        return True


# --- the engine ---------------------------------------------------------------------------


class AlertEngine:
    """The rules of docs/alerts.md over seat events, call events, availability and ticks,
    given in time order. Each input returns the alert changes it caused, in order."""

    def __init__(self, settings: AlertSettings | None = None, *,
                 shift_end: ShiftEnd = no_schedule) -> None:  # fmt: skip
        self.settings = settings or AlertSettings()
        self.shift_end = shift_end
        self._now = -math.inf
        self._seats: dict[str, _Seat] = {}
        self._seen_seat = _Seen(SEEN_IDS)
        self._seen_call = _Seen(SEEN_IDS)
        self._events = self._duplicates = self._late = self._bad = 0
        self._raised: Counter[str] = Counter()
        self._due: list[tuple[float, int, str]] = []  # (when, version, seat): next deadlines
        self._version: dict[str, int] = {}  # a seat's latest entry on the heap
        self._touched: set[str] = set()  # seats an input changed: their deadlines move
        self._holders: dict[int, str] = {}  # call -> the seat holding it
        self._cleared: Counter[str] = Counter()
        self.sign_ins = SignIns()  # who is signed in at each seat, when
        self._agents: dict[str, _Windows] = {}  # agent -> its windows
        self._sat: dict[str, str] = {}  # agent -> the seat holding its windows

    def sign_in(self, seat: str, agent: str | None, t: float, id: str) -> None:
        """A change of who is signed in at a seat; give it before the seat's events after
        it. It takes effect at the seat's next input."""
        self.sign_ins.add(seat, agent, t, id)

    # --- inputs ---------------------------------------------------------------------------

    def on_seat_event(self, e: SeatEvent) -> list[AlertChange]:
        out = self._on_seat_event(e)
        self._schedule_touched()
        return out

    def on_call_event(self, e: CallEvent) -> list[AlertChange]:
        out = self._on_call_event(e)
        self._schedule_touched()
        return out

    def on_availability(self, seat: str, online: bool, t: float) -> list[AlertChange]:
        """`seat/{seat}/availability`. A seat is available only while its gateway is: the
        service passes offline for every seat of a gateway whose status goes offline."""
        out = self._on_availability(seat, online, t)
        self._schedule_touched()
        return out

    def _on_seat_event(self, e: SeatEvent) -> list[AlertChange]:
        out: list[AlertChange] = []
        if not self._take(e.id, e.t, self._seen_seat, out):
            return out
        seat = self._seat(e.seat)
        self._follow(seat, e.t, out)
        d = e.data
        if e.type == "hello":  # a booted board is logged out and has forgotten help
            self._set_state(seat, "logged_out", None, None, e.t, e.t, out)
            self._help(seat, False, e.t, out, why="the board restarted")
        elif e.type == "snapshot":
            state, secs, help_on = d.get("state"), _seconds(d.get("secs", 0)), d.get("help")
            if not isinstance(state, str) or state not in STATES or secs is None:
                self._bad += 1
                return out
            self._set_state(seat, state, _reason(d.get("reason")), _call(d.get("call")),
                            e.t - secs, e.t, out)  # fmt: skip
            if isinstance(help_on, bool):
                self._help(seat, help_on, e.t, out, why="a snapshot without help")
            else:
                self._bad += 1
        elif e.type == "event":
            event = d.get("event")
            if event == "state":
                state = d.get("state")
                if not isinstance(state, str) or state not in STATES:
                    self._bad += 1
                    return out
                self._set_state(seat, state, _reason(d.get("reason")), _call(d.get("call")),
                                e.t, e.t, out)  # fmt: skip
            elif event == "help":
                a = d.get("a")
                if a not in (0, 1) or isinstance(a, bool):
                    self._bad += 1
                    return out
                self._help(seat, a == 1, e.t, out, why="help cleared")
            elif not isinstance(event, str):
                self._bad += 1
            # ring_no_answer is counted from the PBX's call event (which every seat's
            # ring-no-answer becomes, beside offers refused or never reported), so as not
            # to count it twice; hold_over_limit is the seat's own reminder: the hold rule
            # times the PBX's hold
        return out

    def _on_call_event(self, e: CallEvent) -> list[AlertChange]:
        out: list[AlertChange] = []
        if not self._take(e.id, e.t, self._seen_call, out):
            return out
        if e.type in ("abandon", "drop", "no_answer"):  # the caller is gone: no more hold
            holder = self._holders.pop(e.call, None)
            seat_on_hold = None if holder is None else self._seats.get(holder)
            spell = None if seat_on_hold is None else seat_on_hold.holds.pop(e.call, None)
            if seat_on_hold is not None and spell is not None:
                self._touched.add(seat_on_hold.id)
                self._end(seat_on_hold, spell, e.t, out, why="the call ended")
            return out
        if e.type not in ("answer", "hold", "unhold", "release", "ring_no_answer"):
            return out
        if e.seat is None:
            self._bad += 1
            return out
        seat = self._seat(e.seat)
        self._follow(seat, e.t, out)
        if e.type == "answer":
            seat.answered[e.call] = e.t
            seat.leg_hold[e.call] = 0.0
            _cap(seat.answered)
            _cap(seat.leg_hold)
            if e.direction == "inbound" and e.target is None:
                self._answer(seat, e, out)
        elif e.type == "hold":
            if e.call not in seat.holds:
                seat.holds[e.call] = _Spell("hold", e.t, self.settings.hold_max_s, e.call)
                self._holders[e.call] = seat.id
                while len(self._holders) > SEEN_IDS:  # a hold's end was lost: forget it
                    del self._holders[next(iter(self._holders))]
                while len(seat.holds) > OPEN_CALLS:  # their unholds and releases were lost
                    oldest = seat.holds.pop(next(iter(seat.holds)))
                    self._end(seat, oldest, e.t, out, why="forgotten: too many holds open")
        elif e.type == "unhold":
            self._unhold(seat, e, out)
        elif e.type == "release":
            self._release(seat, e, out)
        else:
            self._window_add(seat.no_answers, e.t, float(e.call), self.settings.no_answer_window_s)
            self._count_rule(seat, "no_answer", seat.no_answers, self.settings.no_answer_max,
                             self.settings.no_answer_window_s, e.t, out, call=e.call,
                             what="ring-no-answers")  # fmt: skip
        return out

    def _on_availability(self, seat: str, online: bool, t: float) -> list[AlertChange]:
        out: list[AlertChange] = []
        if not self._take(None, t, None, out):
            return out
        s = self._seat(seat)
        if not online:
            if s.offline is None:  # a repeated offline (retained) goes on from the first
                s.offline = _Spell("offline", t, self.settings.offline_grace_s)
        elif s.offline is not None:
            spell, s.offline = s.offline, None
            self._end(s, spell, t, out, why="back online")
        return out

    def tick(self, now: float) -> list[AlertChange]:
        """The service's clock: fires the rules of elapsed time and ages the windows. A tick
        before the engine's time changes nothing."""
        out: list[AlertChange] = []
        self._advance(now, out)
        return out

    # --- what the service reads -------------------------------------------------------------

    @property
    def now(self) -> float:
        """The latest time seen (-inf before the first input)."""
        return self._now

    @property
    def counts(self) -> Counts:
        return Counts(self._events, self._duplicates, self._late, self._bad,
                      dict(sorted(self._raised.items())),
                      dict(sorted(self._cleared.items())))  # fmt: skip

    def open_alerts(self) -> list[Alert]:
        """The alerts raised and not cleared yet (the engine's view: it knows nothing of
        acknowledge or resolve), by seat and time. late_answer alerts are never here."""
        found: list[Alert] = []
        for seat in self._seats.values():
            found.extend(s.alert for s in seat.spells() if s.alert is not None)
            for maybe in (seat.help, seat.shift.alert if seat.shift else None):
                if maybe is not None:
                    found.append(maybe)
            found.extend(seat.windowed.values())
        return sorted(found, key=lambda a: (a.seat, a.t, a.id))

    # --- time ---------------------------------------------------------------------------------

    def _take(self, id: str | None, t: float, seen: _Seen | None,
              out: list[AlertChange]) -> bool:  # fmt: skip
        """Count an input and move the clock to it; False for a repeat."""
        self._events += 1
        if id is not None and seen is not None and not seen.add(id):
            self._duplicates += 1
            return False
        if not math.isfinite(t):
            self._bad += 1
            return False
        if t < self._now - self.settings.late_tolerance_s:
            self._late += 1
        self._advance(t, out)
        return True

    def _advance(self, now: float, out: list[AlertChange]) -> None:
        """Judge, at `now`, the seats with something due by then (not every seat: a large
        site's seats each have their next deadline in a heap)."""
        if now <= self._now:
            return
        self._now = now
        due = self._due
        while due and due[0][0] <= now:
            when, version, seat_id = heapq.heappop(due)
            if self._version.get(seat_id) != version:
                continue  # rescheduled since
            seat = self._seats[seat_id]
            # the windows are judged at their deadline, not at `now`: which averages and
            # counts go over and back, with which ids, depends on the events only, never on
            # how often the clock ticks (a spell's id is its start's: ticks cannot move it)
            self._judge(seat, now, out, windows_at=when)
            self._schedule(seat, after=when)

    def _schedule_touched(self) -> None:
        for seat_id in self._touched:
            self._schedule(self._seats[seat_id])
        self._touched.clear()

    def _schedule(self, seat: _Seat, *, after: float | None = None) -> None:
        """Put the seat's next deadline on the heap (the next moment a rule of elapsed
        time or a window could change: judging it then is what the old every-seat pass
        did at each input)."""
        when = _next_due(seat, self.settings)
        version = self._version.get(seat.id, 0) + 1
        self._version[seat.id] = version
        if when is not None:
            # a window's edge computed in floating point may leave the item in: look again
            # just after now, never again now (which would never end)
            floor = self._now if after is None else after
            heapq.heappush(self._due, (max(when, math.nextafter(floor, math.inf)),
                                       version, seat.id))  # fmt: skip

    def _judge(self, seat: _Seat, now: float, out: list[AlertChange], *,
               windows_at: float | None = None) -> None:  # fmt: skip
        s = self.settings
        for spell in seat.spells():
            self._check(seat, spell, now, out)
        if seat.logged_in:
            self._check_shift(seat, now, out)
        if windows_at is not None:
            now = windows_at
        if _trim(seat.acw_samples, now, s.avg_window_s):
            self._average(seat, "avg_acw", seat.acw_samples, s.acw_avg_max_s, now, out)
        if _trim(seat.talk_samples, now, s.avg_window_s):
            self._average(seat, "avg_talk", seat.talk_samples, s.talk_avg_max_s, now, out)
        if _trim(seat.nr_starts, now, s.not_ready_window_s):
            self._count_rule(seat, "frequent_not_ready", seat.nr_starts,
                             s.not_ready_max_spells, s.not_ready_window_s, now, out,
                             what="Not Ready spells")  # fmt: skip
        if _trim(seat.no_answers, now, s.no_answer_window_s):
            self._count_rule(seat, "no_answer", seat.no_answers, s.no_answer_max,
                             s.no_answer_window_s, now, out,
                             what="ring-no-answers")  # fmt: skip

    def _check(self, seat: _Seat, spell: _Spell, now: float, out: list[AlertChange]) -> None:
        measured = now - spell.start
        if spell.alert is None and measured > spell.limit:
            spell.alert = self._raise(seat, spell.rule, since=spell.start, t=now,
                                      measured=measured, threshold=spell.limit,
                                      call=spell.call, out=out,
                                      message=_spell_message(seat.id, spell, measured))  # fmt: skip

    def _end(self, seat: _Seat, spell: _Spell, t: float, out: list[AlertChange], *, why: str,
             measured: float | None = None) -> None:  # fmt: skip
        """The condition is over at `t`: clear its alert. One that went over its limit
        between two inputs is raised here and cleared at once: it happened."""
        t = max(t, spell.start)
        length = t - spell.start if measured is None else measured
        if spell.alert is None and length > spell.limit:
            message = _spell_message(seat.id, spell, length)
            spell.alert = self._raise(seat, spell.rule, since=spell.start, t=t,
                                      measured=length, threshold=spell.limit, call=spell.call,
                                      out=out, message=message)  # fmt: skip
        if spell.alert is not None:
            self._clear(spell.alert, t, length, why, out)

    # --- seat state ---------------------------------------------------------------------------

    def _set_state(self, seat: _Seat, state: str, reason: str | None, call: int | None,
                   start: float, at: float, out: list[AlertChange]) -> None:  # fmt: skip
        """The seat is in `state` from `start` (an event's t, or a snapshot's t - secs, never
        before the state it replaces: a snapshot of the same state goes on from it), as told
        by an event at `at`."""
        if seat.state is not None:
            start = max(start, seat.since)
        same_nr = state == seat.state == "not_ready" and reason == seat.reason
        same_acw = state == seat.state == "acw" and call == seat.call
        if (state, reason, call) == (seat.state, seat.reason, seat.call) or same_nr or same_acw:
            seat.call = call
            return
        was_in = seat.logged_in
        if seat.acw is not None:
            spell, seat.acw = seat.acw, None
            self._end(seat, spell, start, out, why=f"ACW ended ({state})")
            self._acw_sample(seat, spell, start, at, out)
        if seat.not_ready is not None:
            spell, seat.not_ready = seat.not_ready, None
            now_in = _state_text(state, reason)
            self._end(seat, spell, start, out, why=f"Not Ready ended ({now_in})")
        seat.state, seat.reason, seat.call, seat.since = state, reason, call, start
        s = self.settings
        if state == "acw":
            seat.acw = _Spell("long_acw", start, s.acw_max_s, call)
        elif state == "not_ready":
            seat.not_ready = _Spell("long_not_ready", start, s.not_ready_limit(reason),
                                    reason=reason)  # fmt: skip
            if reason not in s.not_ready_spells_exempt:
                self._window_add(seat.nr_starts, start, 1.0, s.not_ready_window_s)
                self._count_rule(seat, "frequent_not_ready", seat.nr_starts,
                                 s.not_ready_max_spells, s.not_ready_window_s, at, out,
                                 what="Not Ready spells")  # fmt: skip
        if seat.logged_in and not was_in:
            seat.shift = None
            seat.shift_asked = -math.inf
            self._find_shift(seat, start)
        elif was_in and not seat.logged_in:
            if seat.shift is not None:
                spell, seat.shift = seat.shift, None
                self._end(seat, spell, start, out, why="logged out")
        if start < at:
            # a snapshot's state began `secs` ago: it may be over its limit already. (A late
            # event is judged at its own time: the next input judges it at the engine's.)
            for spell in seat.spells():
                self._check(seat, spell, at, out)
            if seat.logged_in:
                self._check_shift(seat, at, out)

    def _find_shift(self, seat: _Seat, t: float) -> None:
        seat.shift_asked = t
        end = self.shift_end(seat.id, t)
        if end is not None:
            seat.shift = _Spell("after_shift", end, self.settings.after_shift_grace_s)

    def _check_shift(self, seat: _Seat, now: float, out: list[AlertChange]) -> None:
        if seat.shift is None:
            # logged in off shift (early for it, say): ask again now and then until on one
            if now - seat.shift_asked >= SHIFT_RECHECK_S:
                self._find_shift(seat, now)
            return
        spell = seat.shift
        if spell.alert is not None or now - spell.start <= spell.limit:
            return
        later = self.shift_end(seat.id, now)
        if later is not None and later > spell.start:  # on the next shift now: no alert
            spell.start = later
            return
        self._check(seat, spell, now, out)

    def _acw_sample(self, seat: _Seat, spell: _Spell, end: float, at: float,
                    out: list[AlertChange]) -> None:  # fmt: skip
        # an outbound call's ACW is not in the average (the 60 s target is inbound's, as
        # in docs/kpi.md); a call the engine has not heard of counts
        if spell.call is not None and spell.call in seat.outbound:
            return
        s = self.settings
        if self._window_add(seat.acw_samples, end, end - spell.start, s.avg_window_s):
            self._average(seat, "avg_acw", seat.acw_samples, s.acw_avg_max_s, at, out)

    def _help(self, seat: _Seat, on: bool, t: float, out: list[AlertChange], *,
              why: str) -> None:  # fmt: skip
        if on and seat.help is None:
            seat.help = self._raise(seat, "help", since=t, t=t, measured=0.0, threshold=0.0,
                                    call=None, out=out,
                                    message=f"{seat.id}: the agent asks for help")  # fmt: skip
        elif not on and seat.help is not None:
            alert, seat.help = seat.help, None
            self._clear(alert, t, max(0.0, t - alert.since), why, out)

    # --- calls --------------------------------------------------------------------------------

    def _answer(self, seat: _Seat, e: CallEvent, out: list[AlertChange]) -> None:
        if e.rings is None:  # the Asterisk backend may not know: nothing to judge
            return
        limit = self.settings.answer_max_rings
        if e.rings > limit:
            self._raise(seat, "late_answer", since=e.t, t=e.t, measured=float(e.rings),
                        threshold=float(limit), call=e.call, out=out,
                        message=f"{seat.id}: call {e.call} answered on ring {e.rings} "
                                f"(limit {limit} rings)")  # fmt: skip

    def _unhold(self, seat: _Seat, e: CallEvent, out: list[AlertChange]) -> None:
        other = self._seats.get(self._holders.get(e.call, ""))
        holder = seat if e.call in seat.holds else (
            other if other is not None and e.call in other.holds else None)  # fmt: skip
        if holder is not None:
            self._touched.add(holder.id)
        if holder is None:  # its hold event was lost: the PBX's hold_s still counts for talk
            if e.hold_s is not None and e.call in seat.leg_hold:
                seat.leg_hold[e.call] += e.hold_s
            return
        spell = holder.holds.pop(e.call)
        held = e.hold_s if e.hold_s is not None else max(0.0, e.t - spell.start)
        self._end(holder, spell, e.t, out, why="unhold", measured=held)
        if e.call in holder.leg_hold:
            holder.leg_hold[e.call] += held

    def _release(self, seat: _Seat, e: CallEvent, out: list[AlertChange]) -> None:
        spell = seat.holds.pop(e.call, None)
        if spell is not None:  # released on hold: the hold ends here
            held = max(0.0, e.t - spell.start)
            self._end(seat, spell, e.t, out, why="released on hold", measured=held)
            if e.call in seat.leg_hold:
                seat.leg_hold[e.call] += held
        answered = seat.answered.pop(e.call, None)
        hold_s = seat.leg_hold.pop(e.call, 0.0)
        if e.direction == "outbound":
            seat.outbound.append(e.call)
            return
        if e.detail == CONSULTATION:  # no handling: not a talk sample (docs/kpi.md)
            return
        length = e.talk_s
        if length is None:
            if answered is None:
                self._bad += 1
                return
            length = e.t - answered
        talk = max(0.0, length - hold_s)  # talk excludes holds, as kpi.py's avg_talk_s
        s = self.settings
        if self._window_add(seat.talk_samples, e.t, talk, s.avg_window_s):
            self._average(seat, "avg_talk", seat.talk_samples, s.talk_avg_max_s, e.t, out)

    # --- windows ------------------------------------------------------------------------------

    def _window_add(self, items: list[tuple[float, float]], t: float, value: float,
                    seconds: float) -> bool:  # fmt: skip
        """Add a sample at t unless it is out of the window already (a late one)."""
        if t <= self._now - seconds:
            return False
        insort(items, (t, value))
        return True

    def _average(self, seat: _Seat, rule: str, samples: list[tuple[float, float]],
                 limit: float, t: float, out: list[AlertChange]) -> None:  # fmt: skip
        s = self.settings
        n = len(samples)
        avg = math.fsum(v for _, v in samples) / n if n else 0.0
        over = n >= s.avg_min_calls and avg > limit
        alert = seat.windowed.get(rule)
        what = "ACW" if rule == "avg_acw" else "talk time"
        if over and alert is None:
            seat.windowed[rule] = self._raise(
                seat, rule, since=samples[-1][0], t=t, measured=avg, threshold=limit,
                call=None, out=out,
                message=f"{seat.id}: average {what} {_duration(avg)} over the last {n} calls "
                        f"in {_duration(s.avg_window_s)} (limit {_duration(limit)})")  # fmt: skip
        elif not over and alert is not None:
            del seat.windowed[rule]
            why = (f"average back to {_duration(avg)}" if n >= s.avg_min_calls
                   else f"{n} calls in the window, fewer than {s.avg_min_calls}")  # fmt: skip
            self._clear(alert, t, avg, why, out)

    def _count_rule(self, seat: _Seat, rule: str, items: list[tuple[float, float]],
                    limit: int, window: float, t: float, out: list[AlertChange], *,
                    what: str, call: int | None = None) -> None:  # fmt: skip
        n = len(items)
        alert = seat.windowed.get(rule)
        if n > limit and alert is None:
            seat.windowed[rule] = self._raise(
                seat, rule, since=items[-1][0], t=t, measured=float(n), threshold=float(limit),
                call=call, out=out, unit=f"{what} in {_duration(window)}",
                message=f"{seat.id}: {n} {what} in the last {_duration(window)} (limit "
                        f"{limit})")  # fmt: skip
        elif n <= limit and alert is not None:
            del seat.windowed[rule]
            self._clear(alert, t, float(n), f"{n} in the last {_duration(window)}", out)

    # --- agents -------------------------------------------------------------------------------

    def _follow(self, seat: _Seat, t: float, out: list[AlertChange]) -> None:
        """The seat's windows become those of the agent signed in there at `t`."""
        agent = self.sign_ins.agent_at(seat.id, t)
        if agent == seat.agent:
            return
        old = seat.agent
        if old is not None and self._sat.get(old) == seat.id:
            # the agent left and sits nowhere else: what its windows said is over here
            del self._sat[old]
            for rule, alert in list(seat.windowed.items()):
                del seat.windowed[rule]
                self._clear(alert, t, alert.measured, f"{old} signed out of {seat.id}", out)
        if agent is None:
            seat.agent, seat.w = None, seat.own
            return
        if old is None:  # nobody's windows are not judged while an agent sits here
            for rule, alert in list(seat.own.windowed.items()):
                del seat.own.windowed[rule]
                self._clear(alert, t, alert.measured, f"{agent} signed in at {seat.id}", out)
        before = self._sat.get(agent)
        if before is not None and before != seat.id:  # moved here: its windows come along
            other = self._seats[before]
            other.agent, other.w = None, other.own
        self._sat[agent] = seat.id
        w = self._agents.get(agent)
        if w is None:
            w = self._agents[agent] = _Windows()
        seat.agent, seat.w = agent, w

    # --- alerts -------------------------------------------------------------------------------

    def _raise(self, seat: _Seat, rule: str, *, since: float, t: float, measured: float,
               threshold: float, call: int | None, out: list[AlertChange], message: str,
               unit: str | None = None) -> Alert:  # fmt: skip
        r = RULES[rule]
        # a window's alert is the agent's whose samples they are; any other, the agent's
        # signed in when its condition started
        agent = seat.agent if rule in _WINDOW_RULES else self.sign_ins.agent_at(seat.id, since)
        alert = Alert(id=self._id(seat, rule, since), rule=rule, seed=r.seed,
                      rule_text=r.text, seat=seat.id, call=call, t=t, since=since,
                      measured=measured, threshold=threshold,
                      unit=unit or _UNITS[rule], severity=r.severity,
                      message=message if agent is None else message.replace(
                          f"{seat.id}:", f"{seat.id} ({agent}):", 1),
                      agent=agent)  # fmt: skip
        self._raised[rule] += 1
        out.append(AlertChange("raised", alert, t, measured))
        return alert

    def _clear(self, alert: Alert, t: float, measured: float, why: str,
               out: list[AlertChange]) -> None:  # fmt: skip
        self._cleared[alert.rule] += 1
        out.append(AlertChange("cleared", alert, max(t, alert.t), measured, why))

    def _id(self, seat: _Seat, rule: str, since: float) -> str:
        # the same condition start twice (an average that goes over, under and over again
        # with no new call) gets -2, -3: still the same ids for the same input
        base = f"{rule}-{seat.id}-{round(since * 1000)}"
        recent = seat.recent_ids.setdefault(rule, deque(maxlen=16))
        id, n = base, 1
        while id in recent:
            n += 1
            id = f"{base}-{n}"
        recent.append(id)
        return id

    def _seat(self, seat: str) -> _Seat:
        s = self._seats.get(seat)
        if s is None:
            s = self._seats[seat] = _Seat(seat)
        self._touched.add(seat)
        return s


def _next_due(seat: _Seat, s: AlertSettings) -> float | None:
    """The earliest moment a rule of elapsed time could change for this seat."""
    times: list[float] = []
    for spell in seat.spells():
        if spell.alert is None:  # over its limit: measured > limit, just after start + limit
            times.append(math.nextafter(spell.start + spell.limit, math.inf))
    if seat.logged_in:
        if seat.shift is None:
            times.append(seat.shift_asked + SHIFT_RECHECK_S)
        elif seat.shift.alert is None:
            times.append(math.nextafter(seat.shift.start + seat.shift.limit, math.inf))
    for items, window in ((seat.acw_samples, s.avg_window_s), (seat.talk_samples, s.avg_window_s),
                          (seat.nr_starts, s.not_ready_window_s),
                          (seat.no_answers, s.no_answer_window_s)):  # fmt: skip
        if items:  # the oldest leaves the window at t + window
            times.append(items[0][0] + window)
    return min(times, default=None)


_WINDOW_RULES: Final = frozenset({"avg_acw", "avg_talk", "frequent_not_ready", "no_answer"})
_UNITS: Final = {"avg_acw": "s", "avg_talk": "s", "hold": "s", "late_answer": "rings",
                 "long_not_ready": "s", "long_acw": "s", "after_shift": "s", "help": "s",
                 "offline": "s", "no_answer": "ring-no-answers",
                 "frequent_not_ready": "Not Ready spells"}  # fmt: skip


def _trim(items: list[tuple[float, float]], now: float, seconds: float) -> bool:
    """Drop what is `seconds` old or older: a window holds (now - seconds, now]."""
    cut = 0
    while cut < len(items) and items[cut][0] <= now - seconds:
        cut += 1
    if cut:
        del items[:cut]
    return cut > 0


def _cap(d: dict[int, Any]) -> None:
    # a release that never came must not keep a call forever
    while len(d) > OPEN_CALLS:
        del d[next(iter(d))]


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _reason(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _call(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _duration(seconds: float) -> str:
    """Exact to the millisecond: a value just over its limit must not read as the limit."""
    if seconds < 120:
        return f"{_number(seconds, 3)} s"
    minutes, rest = divmod(round(seconds, 3), 60)
    rest = round(rest, 3)
    if rest >= 60:  # rounding carried over
        minutes, rest = minutes + 1, 0.0
    return f"{int(minutes)} min" + (f" {_number(rest, 3)} s" if rest else "")


def _number(x: float, places: int) -> str:
    text = f"{x:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _state_text(state: str, reason: str | None) -> str:
    return f"{state} ({reason})" if reason else state


def _spell_message(seat: str, spell: _Spell, measured: float) -> str:
    m, limit = _duration(measured), _duration(spell.limit)
    if spell.rule == "hold":
        return f"{seat}: caller on hold for {m} on call {spell.call} (limit {limit})"
    if spell.rule == "long_acw":
        on = f" on call {spell.call}" if spell.call is not None else ""
        return f"{seat}: after-call work for {m}{on} (limit {limit})"
    if spell.rule == "long_not_ready":
        why = spell.reason or "no reason"
        return f"{seat}: Not Ready ({why}) for {m} (limit for {why}: {limit})"
    if spell.rule == "offline":
        return f"{seat}: seat offline for {m} (grace {limit})"
    return f"{seat}: still logged in {m} after the shift ended (grace {limit})"
