"""The shift schedule: which agent works when, and the attendance rules' settings.

The schedule file is TOML (docs/attendance.md): the site's time zone, the rules (every one
optional, seed defaults) and one `[[agent]]` per agent with a weekly pattern and per-date
changes (another shift, a day off, approved leave). Loading is all or nothing: every problem
found is listed in one `ScheduleError` naming the agent, date and key, and no schedule is
returned.

The schedule names agents (their agent ids, the accounts' `agent`), not seats: agents sign in
at any seat (`seat/{seat}/agent`, issue 19), and an agent's attendance and after-shift alert
follow the agent. A file of the old format, with a `seat` per agent, is refused, saying so:
nothing in it is guessed.

Shift times are the site's wall clock: a shift is turned into Unix seconds in the zone, so
it is as long as the clock says, 23 or 25 hours' days included. A shift that ends at or
before its start time crosses midnight and belongs to the day it starts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.contract.topics import ID_PATTERN

DAY_MIN = 1440
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAME_MAX = 200  # enough for any real name, bounded for reports
MAX_PROBLEMS_SHOWN = 20
LOOKBACK_DAYS = 7  # how far back previous_shift looks: a week covers any rota's rest days

_TOP_KEYS = ("zone", "site", "rules", "agent")
_AGENT_KEYS = ("id", "name", "hotline", "week", "since", "until", "days")
OLD_SEAT = ("seat: the schedule names agents, not seats (issue 19): an agent signs in at any "
            "seat and its attendance follows it; remove `seat` (the id is the agent id of "
            "the agent's account)")
_TIME = re.compile(r"(\d{2}):(\d{2})")
_SLOT = re.compile(r"\s*(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s*")
_PATTERN = re.compile(r"\s*(\S+)\s+(.+?)\s*")
OFF, LEAVE = "off", "leave"


class ScheduleError(ValueError):
    """A schedule that cannot be used; `problems` lists each ("agent a101: days.2027-03-08:
    ...")."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        head = f"{source}: " + ("1 problem" if len(problems) == 1 else f"{len(problems)} problems")
        tail = f"; ... and {more} more" if more else ""
        super().__init__(f"{head}: " + "; ".join(shown) + tail)


@dataclass(frozen=True, slots=True)
class Rules:
    """The attendance rules' settings (shared/design/rules-from-seeds.md section 3)."""

    half_day_over_min: int = 10  # S1 考勤 1: late or early by over 10 min = half a day's leave
    late_early_month_max: int = 3  # S1 考勤 3: more than 3 in a month = one day's absence
    late_early_year_limit: int = 30  # S1 考勤 3: 30 in a year = contract termination flag
    absent_consecutive_limit: int = 3  # S1 考勤 2: 3 consecutive days absent = termination flag
    absent_total_limit: int = 3  # S1 考勤 6: 3 days absent in total = termination flag
    absent_total_period: str = "month"  # the seed says "in total" and no period: a choice
    hotline: bool = False  # whether every agent is hotline staff (an agent may say otherwise)
    hotline_arrival_min: int = 20  # S4 服务热线 13: hotline staff arrive 20 min early
    login_window_min: int = 120  # a login this long before a start is the shift's sign-in
    logout_grace_min: int = 15  # logged in this long past the end is a forgotten logout


# name: (lowest, highest); bools and the period are checked on their own
_RULE_RANGES = {
    "half_day_over_min": (0, 480),
    "late_early_month_max": (0, 31),
    "late_early_year_limit": (1, 366),
    "absent_consecutive_limit": (1, 31),
    "absent_total_limit": (1, 366),
    "hotline_arrival_min": (0, 240),
    "login_window_min": (0, 720),
    "logout_grace_min": (0, 720),
}
_RULE_KEYS = (*_RULE_RANGES, "hotline", "absent_total_period")


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """A shift on the wall clock: minutes after the local midnight of its day. `end` is
    after `start`, past 1440 when the shift crosses midnight."""

    start: int
    end: int

    def __str__(self) -> str:
        end = self.end if self.end == DAY_MIN else self.end % DAY_MIN
        return f"{_hhmm(self.start)}-{_hhmm(end)}"


@dataclass(frozen=True, slots=True)
class DayPlan:
    """One date's shifts; `leave`: approved leave covers them (not an absence)."""

    slots: tuple[Slot, ...] = ()
    leave: bool = False


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent, by the agent id of its account (wherever it signs in)."""

    id: str
    name: str = ""
    hotline: bool = False
    week: tuple[tuple[Slot, ...], ...] = ((),) * 7  # Monday first
    since: date | None = None  # the weekly pattern applies from this date
    until: date | None = None  # ... to this date, included
    days: Mapping[date, DayPlan] = field(default_factory=dict)  # per-date, over the pattern

    def plan(self, day: date) -> DayPlan:
        if day in self.days:
            return self.days[day]
        if (self.since and day < self.since) or (self.until and day > self.until):
            return DayPlan()
        return DayPlan(self.week[day.weekday()])


@dataclass(frozen=True, slots=True)
class Shift:
    """One shift of one agent: [start, end) in Unix seconds. `day` is the local date it
    starts on; `leave`: approved leave covers it."""

    agent: str
    day: date
    start: float
    end: float
    leave: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class Schedule:
    zone: str
    agents: tuple[Agent, ...]
    rules: Rules = Rules()
    site: str = ""
    _by_id: dict[str, Agent] = field(init=False, repr=False, compare=False)
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # frozen: the lookups are set once, here
        object.__setattr__(self, "_tz", ZoneInfo(self.zone))
        object.__setattr__(self, "_by_id", {a.id: a for a in self.agents})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "schedule") -> Schedule:
        """The schedule a parsed TOML document describes, or ScheduleError listing every
        problem in it."""
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise ScheduleError(source, ["the schedule must be a table"])
        _unknown_keys(data, _TOP_KEYS, "", problems)
        zone = _zone(data.get("zone"), problems)
        site = data.get("site", "")
        if not isinstance(site, str) or len(site) > NAME_MAX:
            problems.append(f"site must be a string of at most {NAME_MAX} characters")
            site = ""
        rules = _rules(data.get("rules", {}), problems)
        agents = _agents(data.get("agent"), rules, problems)
        if problems:
            raise ScheduleError(source, problems)
        return cls(zone, tuple(agents), rules, site)

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def agent(self, agent_id: str) -> Agent:
        try:
            return self._by_id[agent_id]
        except KeyError:
            raise KeyError(f"agent {agent_id!r} is not in the schedule") from None

    def arrival_min(self, agent: Agent) -> int | None:
        """Minutes a hotline agent arrives before the start (S4 服务热线 13), None when the
        agent is no hotline staff."""
        return self.rules.hotline_arrival_min if agent.hotline else None

    def shifts(self, agent: str | Agent, start: date, end: date) -> list[Shift]:
        """The agent's shifts of the days [start, end) (leave included), by start time."""
        who = self.agent(agent) if isinstance(agent, str) else agent
        out: list[Shift] = []
        day = start
        while day < end:
            out.extend(self._day_shifts(who, day))
            day += timedelta(days=1)
        return sorted(out, key=lambda s: s.start)

    def shift_at(self, agent: str, t: float) -> Shift | None:
        """The agent's working shift (not leave) going on at `t`, if any."""
        for shift in self._around(agent, t, 1):
            if t in shift and not shift.leave:
                return shift
        return None

    def shift_end(self, agent: str, t: float) -> float | None:
        """The end of the working shift the agent is on at `t`, or None."""
        shift = self.shift_at(agent, t)
        return None if shift is None else shift.end

    def previous_shift(self, agent: str, t: float) -> Shift | None:
        """The agent's latest working shift over by `t` (a week back at most)."""
        over = [s for s in self._around(agent, t, LOOKBACK_DAYS) if s.end <= t and not s.leave]
        return max(over, key=lambda s: s.end, default=None)

    def off_shift_since(self, agent: str, t: float) -> float | None:
        """For an alert on an agent logged in at `t`: when its last shift ended, if no shift
        is going on at `t`; None during a shift or with no shift in the past week."""
        if self.shift_at(agent, t) is not None:
            return None
        last = self.previous_shift(agent, t)
        return None if last is None else last.end

    def _around(self, agent_id: str, t: float, days_back: int) -> list[Shift]:
        agent = self._by_id.get(agent_id)
        if agent is None:
            return []
        today = datetime.fromtimestamp(t, self.tz).date()
        return self.shifts(agent, today - timedelta(days=days_back), today + timedelta(days=1))

    def _day_shifts(self, agent: Agent, day: date) -> Iterable[Shift]:
        plan = agent.plan(day)
        for slot in plan.slots:
            start, end = self._instant(day, slot.start), self._instant(day, slot.end)
            if end > start:  # a shift wholly inside the hour skipped in spring is no time
                yield Shift(agent.id, day, start, end, plan.leave)

    def _instant(self, day: date, minutes: int) -> float:
        # fold 0: in the repeated autumn hour the first pass; in the skipped spring hour the
        # old offset, so 02:30 is 03:30 summer time (as kpi.buckets reads it)
        when = day + timedelta(days=minutes // DAY_MIN)
        m = minutes % DAY_MIN
        return datetime.combine(when, time(m // 60, m % 60), tzinfo=self.tz).timestamp()


def load_schedule(path: str | Path) -> Schedule:
    """The schedule in a TOML file, or ScheduleError (the file unreadable, not TOML, or any
    mistake in it)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ScheduleError(path.name, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not UTF-8
        raise ScheduleError(path.name, [f"not a TOML file: {exc}"]) from exc
    return Schedule.from_mapping(data, source=path.name)


# --- reading -----------------------------------------------------------------------------------


def _unknown_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str,
                  problems: list[str]) -> None:  # fmt: skip
    for key in table:
        if key not in known:
            problems.append(f"{where}unknown key {key!r} (known: {', '.join(known)})")


def _zone(value: Any, problems: list[str]) -> str:
    if value is None:
        problems.append("zone is missing: the site's IANA time zone, e.g. 'Asia/Shanghai'")
        return ""
    try:
        if not isinstance(value, str) or not value:
            raise ValueError
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        problems.append(f"zone {value!r} is not a known IANA time zone")
        return ""
    return value


def _rules(table: Any, problems: list[str]) -> Rules:
    if not isinstance(table, Mapping):
        problems.append("rules must be a table ([rules])")
        return Rules()
    _unknown_keys(table, _RULE_KEYS, "rules: ", problems)
    values: dict[str, Any] = {}
    for key, (low, high) in _RULE_RANGES.items():
        if key not in table:
            continue
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            problems.append(f"rules.{key} must be a whole number {low}..{high}, got {v!r}")
        else:
            values[key] = v
    if "hotline" in table:
        if isinstance(table["hotline"], bool):
            values["hotline"] = table["hotline"]
        else:
            problems.append(f"rules.hotline must be true or false, got {table['hotline']!r}")
    if "absent_total_period" in table:
        if table["absent_total_period"] in ("month", "year"):
            values["absent_total_period"] = table["absent_total_period"]
        else:
            problems.append("rules.absent_total_period must be 'month' or 'year', "
                            f"got {table['absent_total_period']!r}")  # fmt: skip
    return Rules(**values)


def _agents(value: Any, rules: Rules, problems: list[str]) -> list[Agent]:
    if value is None:
        problems.append("no agents: the schedule needs at least one [[agent]]")
        return []
    if not isinstance(value, list) or not all(isinstance(a, Mapping) for a in value):
        problems.append("agent must be an array of tables ([[agent]])")
        return []
    agents = [a for i, raw in enumerate(value) if (a := _agent(i, raw, rules, problems))]
    seen: set[str] = set()
    for a in agents:
        if a.id in seen:
            problems.append(f"agent {a.id}: id {a.id!r} is given to another agent too")
        seen.add(a.id)
    return agents


def _agent(i: int, raw: Mapping[str, Any], rules: Rules, problems: list[str]) -> Agent | None:
    agent_id = raw.get("id")
    where = f"agent {agent_id}: " if isinstance(agent_id, str) else f"agent #{i + 1}: "
    before = len(problems)
    if "seat" in raw:  # the format before agents signed in at seats: said, not guessed
        problems.append(f"{where}{OLD_SEAT}")
    _unknown_keys({k: v for k, v in raw.items() if k != "seat"}, _AGENT_KEYS, where, problems)
    v = raw.get("id")
    if not isinstance(v, str) or not ID_PATTERN.fullmatch(v):
        problems.append(f"{where}id {v!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    name = raw.get("name", "")
    if not isinstance(name, str) or len(name) > NAME_MAX:
        problems.append(f"{where}name must be a string of at most {NAME_MAX} characters")
    hotline = raw.get("hotline", rules.hotline)
    if not isinstance(hotline, bool):
        problems.append(f"{where}hotline must be true or false, got {hotline!r}")
    since = _date_key(raw, "since", where, problems)
    until = _date_key(raw, "until", where, problems)
    if since and until and until < since:
        problems.append(f"{where}until {until} is before since {since}")
    week = _week(raw.get("week", []), where, problems)
    if len(problems) > before:
        return None
    agent = Agent(raw["id"], name, hotline, week, since, until)
    days = _days(raw.get("days", {}), agent, where, problems)
    if len(problems) > before:
        return None
    agent = Agent(agent.id, name, hotline, week, since, until, days)
    _check_overlaps(agent, where, problems)
    return agent if len(problems) == before else None


def _date_key(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> date | None:
    v = raw.get(key)
    if v is None:
        return None
    if isinstance(v, datetime) or not isinstance(v, date):
        problems.append(f"{where}{key} must be a date (2027-01-31, unquoted), got {v!r}")
        return None
    return v


def _week(value: Any, where: str, problems: list[str]) -> tuple[tuple[Slot, ...], ...]:
    entries = [value] if isinstance(value, str) else value
    week: list[list[Slot]] = [[] for _ in WEEKDAYS]
    if not isinstance(entries, list):
        problems.append(f"{where}week must be a list of 'mon-fri 09:00-18:00' entries")
        return ((),) * 7
    for entry in entries:
        m = _PATTERN.fullmatch(entry) if isinstance(entry, str) else None
        days = _weekdays(m.group(1)) if m else None
        slot = _slot(m.group(2), f"{where}week {entry!r}: ", problems) if m else None
        if m is None or days is None:
            problems.append(f"{where}week entry {entry!r} is not like 'mon-fri 09:00-18:00' "
                            "(days: mon..sun, ranges a-b, commas, or daily)")  # fmt: skip
        elif slot is not None:
            for d in days:
                week[d].append(slot)
    return tuple(tuple(sorted(day)) for day in week)


def _weekdays(text: str) -> list[int] | None:
    if text.lower() == "daily":
        return list(range(7))
    out: list[int] = []
    for item in text.lower().split(","):
        first, _, last = item.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            return None
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        out.extend((a + k) % 7 for k in range((b - a) % 7 + 1))  # fri-mon wraps the weekend
    return out


def _slot(text: str, where: str, problems: list[str]) -> Slot | None:
    m = _SLOT.fullmatch(text)
    start = _minutes(m.group(1), False) if m else None
    end = _minutes(m.group(2), True) if m else None
    if m is None or start is None or end is None:
        problems.append(f"{where}{text!r} is not a shift HH:MM-HH:MM (00:00..23:59, end 24:00)")
        return None
    if end == start or (start == 0 and end == DAY_MIN):
        problems.append(f"{where}{text!r} ends when it starts: a shift of 0 or 24 hours")
        return None
    return Slot(start, end if end > start else end + DAY_MIN)  # ends before: next day


def _minutes(text: str, end: bool) -> int | None:
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    h, mm = int(m.group(1)), int(m.group(2))
    if end and (h, mm) == (24, 0):
        return DAY_MIN
    return h * 60 + mm if h < 24 and mm < 60 else None


def _days(table: Any, agent: Agent, where: str, problems: list[str]) -> dict[date, DayPlan]:
    if not isinstance(table, Mapping):
        problems.append(f"{where}days must be a table ([agent.days], 2027-03-08 = '...')")
        return {}
    out: dict[date, DayPlan] = {}
    for key, value in table.items():
        here = f"{where}days.{key}: "
        try:
            day = date.fromisoformat(key)
        except ValueError:
            problems.append(f"{here}not a date YYYY-MM-DD")
            continue
        plan = _day_plan(value, day, agent, here, problems)
        if plan is not None:
            out[day] = plan
    return out


def _day_plan(value: Any, day: date, agent: Agent, where: str,
              problems: list[str]) -> DayPlan | None:  # fmt: skip
    if value == OFF:
        return DayPlan()
    if value == LEAVE:
        covered = agent.plan(day).slots
        if not covered:
            problems.append(f"{where}leave on a day with no shift in the weekly pattern")
            return None
        return DayPlan(covered, leave=True)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        problems.append(f"{where}must be 'off', 'leave', a shift 'HH:MM-HH:MM' or a list of them")
        return None
    if isinstance(value, str) and not _SLOT.fullmatch(value):
        problems.append(f"{where}{value!r} is not 'off', 'leave' or a shift 'HH:MM-HH:MM'")
        return None
    slots = [_slot(s, where, problems) for s in items]
    if any(s is None for s in slots):
        return None
    return DayPlan(tuple(sorted(s for s in slots if s is not None)))


def _check_overlaps(agent: Agent, where: str, problems: list[str]) -> None:
    """One agent's shifts must not overlap: in the weekly pattern (Sunday night into Monday
    included) and around every per-date change. Checked on the wall clock."""
    pattern = [(w, slot) for w in range(8) for slot in agent.week[w % 7]]
    clash = _first_overlap(pattern)
    if clash:
        (da, a), (db, b) = clash
        problems.append(f"{where}week: {WEEKDAYS[da % 7]} {a} overlaps {WEEKDAYS[db % 7]} {b}")
        return  # every date near a change would repeat it
    for day in sorted(agent.days):
        near = [(k, slot) for k in (-1, 0, 1)
                for slot in agent.plan(day + timedelta(days=k)).slots]  # fmt: skip
        clash = _first_overlap(near)
        if clash:
            (da, a), (db, b) = clash
            problems.append(f"{where}days.{day}: {day + timedelta(days=da)} {a} overlaps "
                            f"{day + timedelta(days=db)} {b}")  # fmt: skip


def _first_overlap(slots: list[tuple[int, Slot]]) -> tuple[tuple[int, Slot], ...] | None:
    """The first two (day offset, slot) that overlap, or None. Sorted by start, any overlap
    shows in a neighbouring pair."""
    timeline = sorted(slots, key=lambda ds: (ds[0] * DAY_MIN + ds[1].start, ds[1].end))
    for (da, a), (db, b) in pairwise(timeline):
        if da * DAY_MIN + a.end > db * DAY_MIN + b.start:
            return (da, a), (db, b)
    return None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
