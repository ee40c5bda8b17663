"""Attendance from the agents' login periods and the shift schedule (docs/attendance.md).

Pure: no I/O and no clock. Every time is an argument, and the same intervals give the same
report whatever order or how often the seat events arrived (kpi.state_intervals drops
repeats and orders them). Three steps:

1. `agent_intervals(intervals, sign_ins)`: the seats' state intervals as each agent's, the
   parts of them when the agent was signed in at the seat (`seat/{seat}/agent`, issue 19):
   an agent who moves seats is one timeline; time with nobody signed in is no one's.
   `login_periods(...)` of those: each agent's time logged in (any state but
   `logged_out`), touching intervals merged (a move from seat to seat is one login).
2. `attendance(schedule, intervals, start, end, sign_ins=..., until=...)`: one
   `ShiftAttendance` per shift: first login, last logout, late and early-leave seconds,
   gaps, time logged in after the end, absence.
3. `monthly(schedule, intervals, year, month, sign_ins=..., until=...)`: one `AgentMonth`
   per agent, with the month's and the year's counts and the rules' flags; `monthly_csv`,
   `shifts_csv` and `monthly_html` write them for HR.

The product flags; it does not act: every flag reads "flag for HR review".
"""

from __future__ import annotations

import csv
import html
import io
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from gateway.core.kpi import SignIns, StateInterval
from gateway.core.schedule import Agent, Rules, Schedule, Shift

REVIEW = "flag for HR review: "
LOOKBACK_DAYS = 31  # a run of absences that began before the month is counted whole
_NEVER = float("inf")


# --- login periods -----------------------------------------------------------------------------


def agent_intervals(intervals: Iterable[StateInterval],
                    sign_ins: SignIns) -> list[StateInterval]:  # fmt: skip
    """The seats' intervals as the agents': each cut where the agent signed in at its seat
    changes, `seat` holding the agent id; the parts with nobody signed in are left out."""
    out: list[StateInterval] = []
    for iv in intervals:
        for start, end, agent in sign_ins.split(iv.seat, iv.start, iv.end):
            if agent is not None and end > start:
                out.append(StateInterval(agent, iv.state, iv.reason, start, end, iv.call))
    return out


@dataclass(frozen=True, slots=True)
class LoginPeriod:
    """An agent (or, given seat intervals, a seat) logged in over [start, end)."""

    seat: str  # the key of the intervals given: the agent id from agent_intervals
    start: float
    end: float


def login_periods(intervals: Iterable[StateInterval]) -> dict[str, list[LoginPeriod]]:
    """Each seat's login periods by start. Intervals that touch or overlap are one period:
    a Ready after a call is the same login, and intervals given twice count once."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for iv in intervals:
        if iv.state != "logged_out" and iv.end > iv.start:
            spans[iv.seat].append((iv.start, iv.end))
    return {seat: _merge(seat, sorted(spans[seat])) for seat in sorted(spans)}


def _merge(seat: str, spans: list[tuple[float, float]]) -> list[LoginPeriod]:
    out: list[LoginPeriod] = []
    for start, end in spans:
        if out and start <= out[-1].end:
            if end > out[-1].end:
                out[-1] = LoginPeriod(seat, out[-1].start, end)
        else:
            out.append(LoginPeriod(seat, start, end))
    return out


class _Logins:
    """One seat's periods, for finding those that overlap a shift."""

    __slots__ = ("periods", "ends")

    def __init__(self, periods: list[LoginPeriod]) -> None:
        self.periods = periods
        self.ends = [p.end for p in periods]  # merged periods: ends ascend with starts

    def overlapping(self, start: float, end: float) -> list[LoginPeriod]:
        i = bisect_right(self.ends, start)
        out: list[LoginPeriod] = []
        while i < len(self.periods) and self.periods[i].start < end:
            out.append(self.periods[i])
            i += 1
        return out


# --- one shift ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    """Time inside a shift the seat was logged out between two logins (a reconnect)."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ShiftAttendance:
    """How one shift went. Times are Unix seconds (the gateway's clock)."""

    shift: Shift
    absent: bool = False  # a working shift with no login during it (S1 考勤 2)
    first_login: float | None = None  # start of the first login period during the shift
    last_logout: float | None = None  # None: no login, or still logged in at `until`
    late_s: float = 0.0  # shift start to the first login
    early_s: float = 0.0  # last logout to the shift end
    half_days: int = 0  # late and early leave each over the limit is a half day (S1 考勤 1)
    gaps: tuple[Gap, ...] = ()
    overtime_s: float = 0.0  # logged in past the end (to the logout or the next shift's window)
    still_logged_in_after_end: bool = False  # overtime past the grace (S3 1.4)
    logged_in_at_until: bool = False  # the last period was still going at `until`
    carried_over: bool = False  # logged in since before the login window: no sign-in seen
    early_arrival: bool | None = None  # hotline staff only (S4 服务热线 13): in by start - N

    @property
    def leave(self) -> bool:
        return self.shift.leave

    @property
    def late(self) -> bool:
        return self.late_s > 0

    @property
    def early(self) -> bool:
        return self.early_s > 0

    @property
    def half_day(self) -> bool:
        return self.half_days > 0

    @property
    def gap_s(self) -> float:
        return sum(g.seconds for g in self.gaps)


@dataclass(frozen=True, slots=True)
class _Judge:
    """What judging a shift needs besides the shift and the logins."""

    rules: Rules
    until: float | None
    arrival_s: float | None  # the agent's early arrival, None when not checked

    def shift(self, shift: Shift, logins: _Logins, window_start: float,
              next_window: float) -> ShiftAttendance:  # fmt: skip
        if shift.leave:
            return ShiftAttendance(shift)  # approved leave: nothing to judge, not an absence
        during = logins.overlapping(shift.start, shift.end)
        if not during:
            return ShiftAttendance(shift, absent=True)  # early arrival: moot, not missed too
        first, last = during[0], during[-1]
        still = self.until is not None and last.end >= self.until
        late = max(0.0, first.start - shift.start)
        early = 0.0 if still else max(0.0, shift.end - last.end)
        overtime = max(0.0, min(last.end, next_window) - shift.end)
        limit = self.rules.half_day_over_min * 60
        return ShiftAttendance(
            shift,
            first_login=first.start,
            last_logout=None if still else last.end,
            late_s=late,
            early_s=early,
            half_days=int(late > limit) + int(early > limit),  # exactly the limit is not over
            gaps=_gaps(during, shift),
            overtime_s=overtime,
            still_logged_in_after_end=overtime > self.rules.logout_grace_min * 60,
            logged_in_at_until=still,
            carried_over=first.start < window_start,
            early_arrival=None if self.arrival_s is None
            else first.start <= shift.start - self.arrival_s,
        )  # fmt: skip


def _gaps(during: list[LoginPeriod], shift: Shift) -> tuple[Gap, ...]:
    out = []
    for a, b in pairwise(during):
        start, end = max(a.end, shift.start), min(b.start, shift.end)
        if end > start:
            out.append(Gap(start, end))
    return tuple(out)


def attendance(
    schedule: Schedule,
    intervals: Iterable[StateInterval],
    start: date,
    end: date,
    *,
    sign_ins: SignIns,
    until: float | None = None,
    since: float | None = None,
) -> list[ShiftAttendance]:
    """Every agent's shifts of the days [start, end) (a shift's day is the day it starts),
    by agent and start, from the seats' intervals and who was signed in at them
    (`sign_ins`).

    `until`: the time the intervals run to (state_intervals' `until`). Shifts not over by
    then are left out, and a login still going then is open (no logout). None: the
    intervals are complete and every shift is over. `since`: the earliest time the
    intervals cover; shifts starting before it are left out, not judged absent. None: the
    earliest start among the intervals (with none, nothing is judged)."""
    spans = list(intervals)
    since = _covered_from(spans) if since is None else since
    logins = {a: _Logins(p) for a, p in login_periods(agent_intervals(spans, sign_ins)).items()}
    out: list[ShiftAttendance] = []
    for agent in sorted(schedule.agents, key=lambda a: a.id):
        mine = logins.get(agent.id, _Logins([]))
        out.extend(_agent_rows(schedule, agent, mine, start, end, until, since))
    return out


def _covered_from(spans: list[StateInterval]) -> float:
    # no data before the first interval: a shift then is unknown, never an absence (a site
    # that began recording in March must not see everyone absent since 1 January)
    return min((iv.start for iv in spans), default=_NEVER)


def _agent_rows(schedule: Schedule, agent: Agent, logins: _Logins, start: date, end: date,
                until: float | None, since: float) -> list[ShiftAttendance]:  # fmt: skip
    rules = schedule.rules
    arrival = schedule.arrival_min(agent)
    judge = _Judge(rules, until, None if arrival is None else arrival * 60.0)
    window = rules.login_window_min * 60.0
    # the neighbouring shifts bound the login window (at most 12 h back) and the overtime: a
    # week ahead finds the next shift of any weekly rota, whatever the range asked for
    shifts = schedule.shifts(agent, start - timedelta(days=1), end + timedelta(days=8))
    out = []
    for shift, (prev_end, next_start) in zip(shifts, _neighbours(shifts), strict=True):
        if not start <= shift.day < end or (until is not None and shift.end > until):
            continue
        if shift.start < since:
            continue
        window_start = max(shift.start - window, min(prev_end, shift.start))
        next_window = max(next_start - window, shift.end)
        out.append(judge.shift(shift, logins, window_start, next_window))
    return out


def _neighbours(shifts: list[Shift]) -> list[tuple[float, float]]:
    """For each shift (by start), the end of the working shift before it and the start of
    the one after it (-inf, inf: none). Leave is no neighbour: nobody signs in for it."""
    before, after = [], []
    prev_end, next_start = -_NEVER, _NEVER
    for s in shifts:
        before.append(prev_end)
        prev_end = prev_end if s.leave else s.end
    for s in reversed(shifts):
        after.append(next_start)
        next_start = next_start if s.leave else s.start
    return list(zip(before, reversed(after), strict=True))


# --- the month ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tally:
    shifts: int
    leave: int
    absences: int  # days
    attended: int  # shifts
    late: int
    early: int
    half_days: int
    overtime_s: float
    forgot_logout: int
    arrival_missed: int | None
    converted: int  # one day's absence for too many late/early (S1 考勤 3)

    @classmethod
    def of(cls, rows: Sequence[ShiftAttendance], rules: Rules,
           checked: bool) -> _Tally:  # fmt: skip
        work = [r for r in rows if not r.leave]
        late, early = sum(r.late for r in work), sum(r.early for r in work)
        days = _working_days(work)
        # absence is by day (the seeds count days): a day all of whose shifts were missed is
        # a day's absence; one with a shift missed and another worked, half a day
        whole = sum(all(r.absent for r in day) for day in days)
        partial = sum(any(r.absent for r in day) and not all(r.absent for r in day)
                      for day in days)  # fmt: skip
        return cls(
            shifts=len(work),
            leave=len(rows) - len(work),
            absences=whole,
            attended=sum(not r.absent for r in work),
            late=late,
            early=early,
            half_days=sum(r.half_days for r in work) + partial,
            overtime_s=sum(r.overtime_s for r in work),
            forgot_logout=sum(r.still_logged_in_after_end for r in work),
            arrival_missed=sum(r.early_arrival is False for r in work) if checked else None,
            converted=int(late + early > rules.late_early_month_max),
        )

    @property
    def absence_days(self) -> int:
        return self.absences + self.converted


@dataclass(frozen=True, slots=True)
class AgentMonth:
    """One agent's month: counts, the rules' flags, and the shifts. A count of late/early
    counts a shift both late and early twice; `shifts` leaves out leave."""

    agent: str
    seats: str  # the seats the agent was signed in at in the month, space-separated
    name: str
    zone: str  # the schedule's zone: the reports show local times
    year: int
    month: int
    shifts: int
    attended: int
    leave: int
    absences: int
    late: int
    early: int
    half_days: int
    absence_for_late_early: int  # 1 when late + early is over the month's limit (S1 考勤 3)
    absence_days: int  # absences + absence_for_late_early
    year_late_early: int  # 1 January to the month's end
    year_absence_days: int
    longest_absence_run: int  # of a run with an absence in the month, its earlier ones too
    overtime_s: float
    forgot_logout: int  # shifts still logged in after the end past the grace (S3 1.4)
    early_arrival_missed: int | None  # hotline staff only (S4 服务热线 13)
    flag_year_late_early: bool  # S1 考勤 3: contract termination rule reached
    flag_consecutive_absence: bool  # S1 考勤 2
    flag_total_absence: bool  # S1 考勤 6
    flags: tuple[str, ...]  # every flag as HR reads it, "flag for HR review: ..."
    rows: tuple[ShiftAttendance, ...]  # the month's shifts
    since: float | None = None  # shifts before this were not judged (no data); None: none

    @property
    def late_early(self) -> int:
        return self.late + self.early


def report_start(year: int, month: int) -> date:
    """The first day `monthly` judges: 1 January for the year's counts, and for January the
    month before, for a run of absences begun then. Give intervals from then on."""
    return min(date(year, 1, 1), date(year, month, 1) - timedelta(days=LOOKBACK_DAYS))


def monthly(
    schedule: Schedule,
    intervals: Iterable[StateInterval],
    year: int,
    month: int,
    *,
    sign_ins: SignIns,
    until: float | None = None,
    since: float | None = None,
) -> list[AgentMonth]:
    """Every agent's month, by agent id. The intervals should cover from
    `report_start(year, month)` (local midnight, less the login window) to the month's end
    or `until`; `until` and `since` as for `attendance`: shifts before the data begins are
    not judged, so the year's counts then start with the data."""
    first = date(year, month, 1)
    end = date(year + month // 12, month % 12 + 1, 1)
    spans = list(intervals)
    since = _covered_from(spans) if since is None else since
    logins = {a: _Logins(p) for a, p in login_periods(agent_intervals(spans, sign_ins)).items()}
    tz = schedule.tz
    month_start = datetime.combine(first, datetime.min.time(), tzinfo=tz).timestamp()
    month_end = datetime.combine(end, datetime.min.time(), tzinfo=tz).timestamp()
    out = []
    for agent in sorted(schedule.agents, key=lambda a: a.id):
        mine = logins.get(agent.id, _Logins([]))
        rows = _agent_rows(schedule, agent, mine, report_start(year, month), end, until, since)
        seats = " ".join(sign_ins.seats_of(agent.id, month_start, month_end))
        out.append(_agent_month(schedule, agent, rows, first, since, seats))
    return out


def _agent_month(schedule: Schedule, agent: Agent, rows: list[ShiftAttendance],
                 first: date, since: float, seats: str) -> AgentMonth:  # fmt: skip
    rules, checked = schedule.rules, schedule.arrival_min(agent) is not None
    in_month = [r for r in rows if r.shift.day >= first]
    t = _Tally.of(in_month, rules, checked)
    year_rows = [r for r in rows if r.shift.day.year == first.year]
    year_late_early = sum(int(r.late) + int(r.early) for r in year_rows if not r.leave)
    year_absence = sum(
        _Tally.of([r for r in year_rows if r.shift.day.month == m], rules, checked).absence_days
        for m in range(1, first.month + 1)
    )
    run = _longest_run(rows, first)
    total = t.absence_days if rules.absent_total_period == "month" else year_absence
    month = AgentMonth(
        agent=agent.id, seats=seats, name=agent.name, zone=schedule.zone,
        year=first.year, month=first.month, shifts=t.shifts, attended=t.attended,
        leave=t.leave, absences=t.absences, late=t.late, early=t.early,
        half_days=t.half_days, absence_for_late_early=t.converted,
        absence_days=t.absence_days, year_late_early=year_late_early,
        year_absence_days=year_absence, longest_absence_run=run,
        overtime_s=t.overtime_s, forgot_logout=t.forgot_logout,
        early_arrival_missed=t.arrival_missed,
        flag_year_late_early=year_late_early >= rules.late_early_year_limit,
        flag_consecutive_absence=run >= rules.absent_consecutive_limit,
        flag_total_absence=total >= rules.absent_total_limit,
        flags=(), rows=tuple(in_month), since=None if since == _NEVER else since,
    )  # fmt: skip
    return _with_flags(month, rules, total)


def _working_days(rows: Sequence[ShiftAttendance]) -> list[list[ShiftAttendance]]:
    """The rows grouped by the day their shift belongs to, in order."""
    days: dict[date, list[ShiftAttendance]] = {}
    for r in rows:
        days.setdefault(r.shift.day, []).append(r)
    return [days[d] for d in sorted(days)]


def _longest_run(rows: list[ShiftAttendance], first: date) -> int:
    """The longest run of working days wholly absent in a row that has an absence in the
    month. Days with no working shift neither count nor break a run; a day with a shift
    attended, or on leave, ends it."""
    best = run = 0
    touches = False
    for day in _working_days(rows):
        work = [r for r in day if not r.leave]
        if not work:
            if len(work) != len(day):  # leave ends a run
                run, touches = 0, False
            continue
        if all(r.absent for r in work):
            run += 1
            touches = touches or day[0].shift.day >= first
            if touches:
                best = max(best, run)
        else:
            run, touches = 0, False
    return best


def _with_flags(m: AgentMonth, rules: Rules, total: int) -> AgentMonth:
    ends = "contract termination rule"
    checks = [
        (m.absences, f"{m.absences} day(s) absent without leave (S1 考勤 2)"),
        (m.half_days, f"{m.half_days} half day(s) of leave: late or early by over "
                      f"{rules.half_day_over_min} min (S1 考勤 1)"),
        (m.absence_for_late_early, f"{m.late_early} late/early this month, more than "
                                   f"{rules.late_early_month_max}: one day's absence (S1 考勤 3)"),
        (m.flag_year_late_early, f"{m.year_late_early} late/early this year, limit "
                                 f"{rules.late_early_year_limit}: {ends} (S1 考勤 3)"),
        (m.flag_consecutive_absence, f"{m.longest_absence_run} consecutive days absent, "
                                     f"limit {rules.absent_consecutive_limit}: {ends} (S1 考勤 2)"),
        (m.flag_total_absence, f"{total} days' absence this {rules.absent_total_period}, "
                               f"limit {rules.absent_total_limit}: {ends} (S1 考勤 6)"),
        (m.forgot_logout, f"{m.forgot_logout} shift(s) still logged in after the end, "
                          f"{_duration(m.overtime_s)} in all (S3 1.4)"),
        (m.early_arrival_missed, f"{m.early_arrival_missed} shift(s) without the "
                                 f"{rules.hotline_arrival_min} min early arrival (S4 服务热线 13)"),
    ]  # fmt: skip
    return replace(m, flags=tuple(REVIEW + text for on, text in checks if on))


# --- reports -----------------------------------------------------------------------------------

MONTH_COLUMNS = (
    "agent", "seats", "name", "year", "month", "shifts", "attended", "leave", "absences",
    "late", "early", "late_early", "half_days", "absence_for_late_early", "absence_days",
    "year_late_early", "year_absence_days", "longest_absence_run", "overtime_s",
    "forgot_logout", "early_arrival_missed", "flag_year_late_early",
    "flag_consecutive_absence", "flag_total_absence", "flags",
)  # fmt: skip
SHIFT_COLUMNS = (
    "agent", "seats", "name", "day", "start", "end", "leave", "absent", "first_login",
    "last_logout", "late_s", "early_s", "half_days", "gap_s", "gaps", "overtime_s",
    "still_logged_in_after_end", "logged_in_at_until", "carried_over", "early_arrival",
)  # fmt: skip
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so


def monthly_csv(months: Sequence[AgentMonth]) -> str:
    """One row per agent (MONTH_COLUMNS); flags joined by " | ". Yes/no for flags, empty
    for not checked."""
    rows = []
    for m in months:
        values = {c: getattr(m, c) for c in MONTH_COLUMNS if c != "flags"}
        rows.append({**values, "flags": " | ".join(m.flags)})
    return _csv(MONTH_COLUMNS, rows)


def shifts_csv(months: Sequence[AgentMonth]) -> str:
    """One row per shift (SHIFT_COLUMNS); times local ISO 8601 with the UTC offset."""
    rows = []
    for m in months:
        tz = ZoneInfo(m.zone)
        for r in m.rows:
            rows.append(_shift_record(m, r, tz))
    return _csv(SHIFT_COLUMNS, rows)


def _shift_record(m: AgentMonth, r: ShiftAttendance, tz: ZoneInfo) -> dict[str, object]:
    def iso(t: float | None) -> str:
        return "" if t is None else datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")

    gaps = " ".join(f"{iso(g.start)}/{iso(g.end)}" for g in r.gaps)
    return {
        "agent": m.agent, "seats": m.seats, "name": m.name, "day": r.shift.day.isoformat(),
        "start": iso(r.shift.start), "end": iso(r.shift.end), "leave": r.leave,
        "absent": r.absent, "first_login": iso(r.first_login),
        "last_logout": iso(r.last_logout), "late_s": r.late_s, "early_s": r.early_s,
        "half_days": r.half_days, "gap_s": r.gap_s, "gaps": gaps, "overtime_s": r.overtime_s,
        "still_logged_in_after_end": r.still_logged_in_after_end,
        "logged_in_at_until": r.logged_in_at_until, "carried_over": r.carried_over,
        "early_arrival": r.early_arrival,
    }  # fmt: skip


def _csv(columns: tuple[str, ...], rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}"
    text = str(value)
    # names and flags come from people: keep a spreadsheet from running them as a formula
    return "'" + text if text.startswith(_FORMULA) else text


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; }
th { background: #eee; }
td.n { text-align: right; }
.flag { color: #a40000; }
tr.absent td { background: #fde8e8; }
tr.leave td { color: #666; }
"""


def monthly_html(months: Sequence[AgentMonth], *, title: str = "") -> str:
    """A self-contained page for HR: a summary table, then each agent's flags and shifts.
    No script, no external resource; every text escaped."""
    first = months[0] if months else None
    period = f"{first.year}-{first.month:02d}" if first else ""
    head = title or f"Attendance {period}".strip()
    zone = first.zone if first else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(head)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(head)}</h1>",
        f"<p>Local times ({_e(zone)}). The report flags; it does not act: every flag is "
        "for HR review (docs/attendance.md lists the rules and their seeds).</p>",
        _coverage(first),
        _summary(months),
    ]
    parts.extend(_agent_section(m) for m in months)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _coverage(m: AgentMonth | None) -> str:
    if m is None:
        return ""
    if m.since is None:
        return "<p>No login data: no shift was judged.</p>"
    begun = datetime.fromtimestamp(m.since, ZoneInfo(m.zone)).strftime("%Y-%m-%d %H:%M")
    return f"<p>Login data from {_e(begun)}: shifts before it are not judged.</p>"


def _summary(months: Sequence[AgentMonth]) -> str:
    head = ("Agent", "Seats", "Name", "Shifts", "Attended", "Leave", "Absent", "Late",
            "Early", "Half days", "Absence days", "Year late/early", "Flags")  # fmt: skip
    rows = []
    for m in months:
        cells = (m.agent, m.seats, m.name, m.shifts, m.attended, m.leave, m.absences, m.late,
                 m.early, m.half_days, m.absence_days, m.year_late_early, len(m.flags))  # fmt: skip
        rows.append(_tr(cells))
    return "<h2>Summary</h2>" + _table(head, rows)


def _agent_section(m: AgentMonth) -> str:
    tz = ZoneInfo(m.zone)
    where = f"seats {m.seats}" if m.seats else "signed in at no seat"
    label = f"{m.name} ({m.agent}, {where})" if m.name else f"{m.agent} ({where})"
    flags = "".join(f'<li class="flag">{_e(f)}</li>' for f in m.flags) or "<li>no flags</li>"
    head = ("Day", "Shift", "First login", "Last logout", "Late", "Early leave", "Gaps",
            "After end", "Notes")  # fmt: skip
    rows = [_shift_tr(r, tz) for r in m.rows]
    return (f"<section><h2>{_e(label)}</h2><ul>{flags}</ul>"
            + _table(head, rows) + "</section>")  # fmt: skip


def _shift_tr(r: ShiftAttendance, tz: ZoneInfo) -> str:
    day = r.shift.day

    def at(t: float | None) -> str:
        if t is None:
            return ""
        local = datetime.fromtimestamp(t, tz)
        return local.strftime("%H:%M:%S" if local.date() == day else "%Y-%m-%d %H:%M:%S")

    span = f"{at(r.shift.start)}-{at(r.shift.end)}"
    cells = (day.isoformat(), span, at(r.first_login),
             "still logged in" if r.logged_in_at_until else at(r.last_logout),
             _duration(r.late_s), _duration(r.early_s), _duration(r.gap_s),
             _duration(r.overtime_s), ", ".join(_notes(r)))  # fmt: skip
    kind = "absent" if r.absent else "leave" if r.leave else ""
    return _tr(cells, kind)


def _notes(r: ShiftAttendance) -> list[str]:
    marks = [
        (r.leave, "approved leave"),
        (r.absent, "absent"),
        (r.late, "late"),
        (r.early, "early leave"),
        (r.half_day, f"{r.half_days} half day(s)"),
        (r.still_logged_in_after_end, "still logged in after the end"),
        (r.carried_over, "logged in from before (no sign-in)"),
        (r.early_arrival is False, "no early arrival"),
    ]
    return [text for on, text in marks if on]


def _table(head: Sequence[str], rows: list[str]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _tr(cells: Sequence[object], kind: str = "") -> str:
    tds = "".join(
        f'<td class="n">{c}</td>' if isinstance(c, int) else f"<td>{_e(str(c))}</td>"
        for c in cells
    )
    return f'<tr class="{kind}">{tds}</tr>' if kind else f"<tr>{tds}</tr>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _duration(seconds: float) -> str:
    """h:mm:ss, empty for none: a reader scans for the non-empty cells."""
    if seconds <= 0:
        return ""
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
