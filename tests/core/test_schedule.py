"""The shift schedule file (docs/attendance.md): what it says, and every mistake refused.

Expected times are written as local wall-clock times and turned into Unix seconds by the
test's own `local()`; the UTC values beside them were worked out by hand."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.core.schedule import Rules, Schedule, ScheduleError, load_schedule

SHANGHAI = "Asia/Shanghai"  # UTC+8 all year
BERLIN = "Europe/Berlin"  # CET/CEST: 2027-03-28 02:00 -> 03:00, 2027-10-31 03:00 -> 02:00

EXAMPLE = """
zone = "Asia/Shanghai"
site = "Zhuji hotline"

[rules]
late_early_month_max = 3

[[agent]]
id = "a101"
name = "Wang Fang"
week = ["mon-fri 09:00-18:00"]

[agent.days]
2027-03-03 = "13:00-22:00"
2027-03-04 = "off"
2027-03-05 = "leave"
2027-03-06 = ["09:00-12:00", "14:00-18:00"]

[[agent]]
id = "a102"
hotline = true
week = ["sat,sun 22:00-06:00", "wed 08:00-16:00"]
since = 2027-03-01
until = 2027-03-31
"""


def local(day: str, hhmm: str, zone: str = SHANGHAI) -> float:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.fixture
def schedule(tmp_path: Path) -> Schedule:
    path = tmp_path / "schedule.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    return load_schedule(path)


def one_agent(week: Any, zone: str = SHANGHAI, **agent: Any) -> Schedule:
    return Schedule.from_mapping(
        {"zone": zone, "agent": [{"id": "a1", "week": week, **agent}]}
    )


def spans(schedule: Schedule, agent: str, start: date, end: date) -> list[tuple[str, str]]:
    """The shifts as local 'YYYY-MM-DD HH:MM' pairs, the way a rota reads."""
    tz = schedule.tz
    return [
        (
            datetime.fromtimestamp(s.start, tz).strftime("%Y-%m-%d %H:%M"),
            datetime.fromtimestamp(s.end, tz).strftime("%Y-%m-%d %H:%M"),
        )
        for s in schedule.shifts(agent, start, end)
    ]


# --- what the file says -------------------------------------------------------------------


def test_weekly_pattern_and_per_date_changes(schedule: Schedule) -> None:
    # week of Monday 2027-03-01: Mon, Tue as the pattern; Wed another shift; Thu off;
    # Fri on leave (still listed, marked leave); Sat a split shift though Saturdays are free
    assert spans(schedule, "a101", date(2027, 3, 1), date(2027, 3, 8)) == [
        ("2027-03-01 09:00", "2027-03-01 18:00"),
        ("2027-03-02 09:00", "2027-03-02 18:00"),
        ("2027-03-03 13:00", "2027-03-03 22:00"),
        ("2027-03-05 09:00", "2027-03-05 18:00"),
        ("2027-03-06 09:00", "2027-03-06 12:00"),
        ("2027-03-06 14:00", "2027-03-06 18:00"),
    ]
    leave = [s.day for s in schedule.shifts("a101", date(2027, 3, 1), date(2027, 3, 8)) if s.leave]
    assert leave == [date(2027, 3, 5)]
    assert schedule.site == "Zhuji hotline"
    assert schedule.agent("a101").name == "Wang Fang"


def test_shift_times_are_unix_seconds_in_the_zone(schedule: Schedule) -> None:
    first = schedule.shifts("a101", date(2027, 3, 1), date(2027, 3, 2))[0]
    # 2027-03-01 09:00 +08:00 = 01:00 UTC = 1803862800
    assert (first.agent, first.day) == ("a101", date(2027, 3, 1))
    assert first.start == 1803862800.0
    assert first.seconds == 9 * 3600


def test_a_night_shift_belongs_to_the_day_it_starts(schedule: Schedule) -> None:
    # a102 works Sat and Sun nights; 2027-03-06 is a Saturday
    shifts = schedule.shifts("a102", date(2027, 3, 6), date(2027, 3, 7))
    assert [(s.day, s.seconds) for s in shifts] == [(date(2027, 3, 6), 8 * 3600)]
    assert spans(schedule, "a102", date(2027, 3, 6), date(2027, 3, 8)) == [
        ("2027-03-06 22:00", "2027-03-07 06:00"),
        ("2027-03-07 22:00", "2027-03-08 06:00"),
    ]


def test_since_and_until_bound_the_pattern(schedule: Schedule) -> None:
    # a102's pattern runs 2027-03-01..2027-03-31: nothing on Sat 2027-02-27 nor 2027-04-03
    assert schedule.shifts("a102", date(2027, 2, 27), date(2027, 2, 28)) == []
    assert schedule.shifts("a102", date(2027, 4, 3), date(2027, 4, 4)) == []
    assert len(schedule.shifts("a102", date(2027, 3, 31), date(2027, 4, 1))) == 1  # a Wed


def test_rules_default_to_the_seeds() -> None:
    s = one_agent("mon 09:00-18:00")
    assert s.rules == Rules()
    assert (s.rules.half_day_over_min, s.rules.late_early_month_max) == (10, 3)
    assert (s.rules.late_early_year_limit, s.rules.absent_consecutive_limit) == (30, 3)
    assert (s.rules.absent_total_limit, s.rules.hotline_arrival_min) == (3, 20)
    assert s.arrival_min(s.agent("a1")) is None  # not hotline staff: not checked


def test_hotline_early_arrival_per_agent_or_site(schedule: Schedule) -> None:
    assert schedule.arrival_min(schedule.agent("a102")) == 20
    assert schedule.arrival_min(schedule.agent("a101")) is None
    site_wide = Schedule.from_mapping({
        "zone": SHANGHAI, "rules": {"hotline": True, "hotline_arrival_min": 30},
        "agent": [{"id": "a1"}, {"id": "a2", "hotline": False}],
    })  # fmt: skip
    assert site_wide.arrival_min(site_wide.agent("a1")) == 30
    assert site_wide.arrival_min(site_wide.agent("a2")) is None


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-wed", [0, 1, 2]),
        ("fri-mon", [4, 5, 6, 0]),  # wraps over the weekend
        ("mon,wed,fri", [0, 2, 4]),
        ("daily", [0, 1, 2, 3, 4, 5, 6]),
        ("Sat", [5]),
    ],
)
def test_weekday_forms(days: str, expected: list[int]) -> None:
    s = one_agent(f"{days} 09:00-10:00")
    # 2027-03-01 is a Monday: weekday k is 2027-03-0(1+k)
    got = [sh.day.weekday() for sh in s.shifts("a1", date(2027, 3, 1), date(2027, 3, 8))]
    assert sorted(got) == sorted(expected)


def test_end_at_midnight_is_24_00() -> None:
    s = one_agent("mon 16:00-24:00")
    assert spans(s, "a1", date(2027, 3, 1), date(2027, 3, 2)) == [
        ("2027-03-01 16:00", "2027-03-02 00:00")
    ]


# --- daylight saving time ------------------------------------------------------------------


def test_night_shift_when_clocks_go_forward_is_7_hours() -> None:
    # Berlin, Sat 2027-03-27 22:00 CET (21:00 UTC) to Sun 06:00 CEST (04:00 UTC): 7 h
    s = one_agent("sat 22:00-06:00", zone=BERLIN)
    (night,) = s.shifts("a1", date(2027, 3, 27), date(2027, 3, 28))
    assert (night.start, night.end) == (local("2027-03-27", "22:00", BERLIN),
                                        local("2027-03-28", "06:00", BERLIN))  # fmt: skip
    assert night.start == 1806181200.0  # 21:00 UTC
    assert night.seconds == 7 * 3600


def test_night_shift_when_clocks_go_back_is_9_hours() -> None:
    # Berlin, Sat 2027-10-30 22:00 CEST (20:00 UTC) to Sun 06:00 CET (05:00 UTC): 9 h
    s = one_agent("sat 22:00-06:00", zone=BERLIN)
    (night,) = s.shifts("a1", date(2027, 10, 30), date(2027, 10, 31))
    assert night.start == 1824926400.0  # 20:00 UTC
    assert night.seconds == 9 * 3600


def test_day_shift_on_a_dst_day_keeps_its_wall_clock() -> None:
    s = one_agent("sun 09:00-18:00", zone=BERLIN)
    (day,) = s.shifts("a1", date(2027, 3, 28), date(2027, 3, 29))
    assert day.start == 1806217200.0  # 09:00 CEST = 07:00 UTC
    assert day.seconds == 9 * 3600


# --- questions an alert asks ----------------------------------------------------------------


def test_shift_at(schedule: Schedule) -> None:
    assert schedule.shift_at("a101", local("2027-03-01", "08:59")) is None
    shift = schedule.shift_at("a101", local("2027-03-01", "09:00"))
    assert shift is not None and shift.day == date(2027, 3, 1)
    assert schedule.shift_at("a101", local("2027-03-01", "18:00")) is None  # [start, end)
    # the night shift that began on Saturday is going on at 03:00 Sunday
    night = schedule.shift_at("a102", local("2027-03-07", "03:00"))
    assert night is not None and night.day == date(2027, 3, 6)
    # on leave (Friday 2027-03-05) there is no working shift
    assert schedule.shift_at("a101", local("2027-03-05", "10:00")) is None
    assert schedule.shift_at("a999", local("2027-03-01", "10:00")) is None


def test_shift_end_for_the_alerts(schedule: Schedule) -> None:
    assert schedule.shift_end("a101", local("2027-03-01", "17:59")) == local("2027-03-01", "18:00")
    assert schedule.shift_end("a101", local("2027-03-01", "18:00")) is None  # over
    assert schedule.shift_end("a102", local("2027-03-07", "05:00")) == local("2027-03-07", "06:00")


def test_was_the_shift_over_at_t(schedule: Schedule) -> None:
    at = local("2027-03-01", "20:00")
    assert schedule.off_shift_since("a101", at) == local("2027-03-01", "18:00")
    assert schedule.off_shift_since("a101", local("2027-03-01", "10:00")) is None  # on shift
    # Monday 2027-03-08 07:00: the last shift was Saturday's split shift, over at 18:00
    prev = schedule.previous_shift("a101", local("2027-03-08", "07:00"))
    assert prev is not None and prev.end == local("2027-03-06", "18:00")
    # Thursday 2027-03-04 is off: at noon the last shift is Wednesday's, over at 22:00
    assert schedule.off_shift_since("a101", local("2027-03-04", "12:00")) == local(
        "2027-03-03", "22:00"
    )


# --- mistakes: refused as a whole, named ---------------------------------------------------

GOOD_AGENT = 'id = "a1"\nweek = ["mon-fri 09:00-18:00"]\n'


def agent_file(body: str, zone: str = SHANGHAI, extra: str = "") -> str:
    return f'zone = "{zone}"\n{extra}\n[[agent]]\n{body}'


BAD_FILES = [
    ("unknown top key", 'zone = "Asia/Shanghai"\ntimezone = "UTC"\n[[agent]]\n' + GOOD_AGENT,
     "unknown key 'timezone'"),
    ("unknown agent key", agent_file(GOOD_AGENT + "shift = 'x'\n"),
     "agent a1: unknown key 'shift'"),
    ("unknown rule", agent_file(GOOD_AGENT, extra="[rules]\nlate_min = 5\n"),
     "rules: unknown key 'late_min'"),
    ("bad rule value", agent_file(GOOD_AGENT, extra="[rules]\nhalf_day_over_min = -1\n"),
     "rules.half_day_over_min must be a whole number 0..480"),
    ("hour 25", agent_file('id = "a1"\nweek = ["mon 09:00-25:00"]\n'),
     "agent a1: week 'mon 09:00-25:00': '09:00-25:00' is not a shift"),
    ("one-digit hour", agent_file('id = "a1"\nweek = ["mon 9:00-18:00"]\n'),
     "is not a shift HH:MM-HH:MM"),
    ("end equals start", agent_file('id = "a1"\nweek = ["mon 09:00-09:00"]\n'),
     "'09:00-09:00' ends when it starts"),
    ("bad weekday", agent_file('id = "a1"\nweek = ["mo-fr 09:00-18:00"]\n'),
     "agent a1: week entry 'mo-fr 09:00-18:00' is not like"),
    ("unknown zone", agent_file(GOOD_AGENT, zone="Asia/Peking"),
     "zone 'Asia/Peking' is not a known IANA time zone"),
    ("no zone", "[[agent]]\n" + GOOD_AGENT, "zone is missing"),
    ("overlap in the week", agent_file(
        'id = "a1"\nweek = ["mon-fri 09:00-18:00", "wed 17:00-20:00"]\n'),
     "agent a1: week: wed 09:00-18:00 overlaps wed 17:00-20:00"),
    ("night shift into the next morning", agent_file(
        'id = "a1"\nweek = ["sun 22:00-06:00", "mon 05:00-13:00"]\n'),
     "agent a1: week: sun 22:00-06:00 overlaps mon 05:00-13:00"),
    ("override overlaps the day before", agent_file(
        GOOD_AGENT + '[agent.days]\n2027-03-02 = "17:00-02:00"\n2027-03-03 = "01:00-09:00"\n'),
     "agent a1: days.2027-03-02: 2027-03-02 17:00-02:00 overlaps 2027-03-03 01:00-09:00"),
    ("duplicate agent", agent_file(GOOD_AGENT + '[[agent]]\nid = "a1"\n'),
     "agent a1: id 'a1' is given to another agent too"),
    ("the old format: a seat per agent", agent_file(GOOD_AGENT + 'seat = "s1"\n'),
     "agent a1: seat: the schedule names agents, not seats (issue 19)"),
    ("bad date", agent_file(GOOD_AGENT + '[agent.days]\n2027-02-30 = "off"\n'),
     "agent a1: days.2027-02-30: not a date"),
    ("leave on a free day", agent_file(GOOD_AGENT + '[agent.days]\n2027-03-06 = "leave"\n'),
     "agent a1: days.2027-03-06: leave on a day with no shift"),
    ("bad day value", agent_file(GOOD_AGENT + '[agent.days]\n2027-03-01 = "sick"\n'),
     "agent a1: days.2027-03-01: 'sick' is not 'off', 'leave' or a shift"),
    ("day value not a string", agent_file(GOOD_AGENT + '[agent.days]\n2027-03-01 = 9\n'),
     "agent a1: days.2027-03-01: must be 'off', 'leave', a shift"),
    ("until before since", agent_file(GOOD_AGENT + "since = 2027-03-01\nuntil = 2027-02-01\n"),
     "agent a1: until 2027-02-01 is before since 2027-03-01"),
    ("bad agent id", agent_file('id = "a 1"\n'), "agent a 1: id 'a 1' must be 1-64"),
    ("a 24-hour shift", agent_file('id = "a1"\nweek = "mon 00:00-24:00"\n'),
     "ends when it starts: a shift of 0 or 24 hours"),
    ("no agents", 'zone = "Asia/Shanghai"\n', "no agents"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in BAD_FILES],
                         ids=[name for name, _, _ in BAD_FILES])  # fmt: skip
def test_a_mistake_is_refused_and_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScheduleError) as info:
        load_schedule(path)
    assert any(message in p for p in info.value.problems), info.value.problems
    assert str(info.value).startswith("schedule.toml: ")


def test_nothing_partial_every_problem_listed() -> None:
    data = {
        "zone": SHANGHAI,
        "agent": [
            {"id": "a1", "week": "mon-fri 09:00-18:00"},  # fine
            {"id": "a2", "week": "mon 09:00-25:00"},
            {"id": "a3", "colour": "red"},
        ],
    }
    with pytest.raises(ScheduleError) as info:
        Schedule.from_mapping(data)
    assert len(info.value.problems) == 2
    assert info.value.problems[0].startswith("agent a2: ")
    assert info.value.problems[1].startswith("agent a3: ")
    assert str(info.value).startswith("schedule: 2 problems: ")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("zone = \n", encoding="utf-8")
    with pytest.raises(ScheduleError, match="bad.toml: 1 problem: not a TOML file"):
        load_schedule(bad)
    with pytest.raises(ScheduleError, match="cannot read the file"):
        load_schedule(tmp_path / "missing.toml")


def test_the_example_in_the_docs_loads() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "attendance.md").read_text("utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    s = Schedule.from_mapping(tomllib.loads(example))
    assert s.rules == Rules()  # the example lists the defaults
    wang = s.shifts("a101", date(2027, 3, 8), date(2027, 3, 15))
    assert [(sh.day.day, sh.leave) for sh in wang] == [
        (8, False), (9, False), (9, False), (11, True), (12, False), (13, False)
    ]
    assert s.arrival_min(s.agent("a102")) == 20
