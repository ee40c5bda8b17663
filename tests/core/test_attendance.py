"""Attendance (docs/attendance.md) on small cases worked out by hand.

Each test is something an HR reader of the report would notice. Times are written as the
site's wall clock (Asia/Shanghai, UTC+8, unless a test says Berlin); every expected number
is a literal with its arithmetic beside it."""

from __future__ import annotations

import csv
import html
import io
import random
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.core import attendance as attendance_module
from gateway.core.attendance import (
    MONTH_COLUMNS,
    SHIFT_COLUMNS,
    AgentMonth,
    Gap,
    ShiftAttendance,
    login_periods,
    monthly_csv,
    monthly_html,
    report_start,
    shifts_csv,
)
from gateway.core.kpi import SignIns, StateInterval, state_intervals
from gateway.core.schedule import Schedule

SHANGHAI = "Asia/Shanghai"
BERLIN = "Europe/Berlin"
OFFICE = {"id": "a101", "name": "Wang Fang", "week": "mon-fri 09:00-18:00"}
# where each agent of these tests signs in, all along (test_attendance_by_agent.py has agents
# moving between seats and sharing one): the seat events below are these seats'
DESKS = SignIns([(seat, agent, 0.0, f"desk-{seat}") for seat, agent in (
    ("s101", "a101"), ("s102", "a102"), ("s201", "n1"), ("s301", "e1"), ("s401", "m1"),
    ("s501", "b1"))])  # fmt: skip


def attendance(*args: Any, **kw: Any) -> list[ShiftAttendance]:
    return attendance_module.attendance(*args, sign_ins=DESKS, **kw)


def monthly(*args: Any, **kw: Any) -> list[AgentMonth]:
    return attendance_module.monthly(*args, sign_ins=DESKS, **kw)
MARCH_WORKDAYS = [1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16, 17, 18, 19, 22, 23, 24, 25, 26,
                  29, 30, 31]  # fmt: skip  # 2027-03-01 is a Monday


def at(day: str, hms: str, zone: str = SHANGHAI) -> float:
    """Unix seconds of a local wall-clock time: at("2027-03-01", "09:00")."""
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=ZoneInfo(zone)).timestamp()


def make(*agents: dict[str, Any], zone: str = SHANGHAI, **rules: Any) -> Schedule:
    return Schedule.from_mapping({"zone": zone, "rules": rules, "agent": list(agents)})


def logged_in(seat: str, start: float, end: float) -> list[StateInterval]:
    """Logged in from start to end: Ready, a call, Ready again (one login period)."""
    mid, talk = start + (end - start) / 2, min(60.0, (end - start) / 4)
    return [StateInterval(seat, "ready", None, start, mid),
            StateInterval(seat, "talking", None, mid, mid + talk, call=7),
            StateInterval(seat, "ready", None, mid + talk, end)]  # fmt: skip


def one_day(schedule: Schedule, intervals: list[StateInterval], day: str,
            **kw: Any) -> ShiftAttendance:  # fmt: skip
    """The day's one shift; the data is said to cover the whole day (`since` its midnight)."""
    d = date.fromisoformat(day)
    kw.setdefault("since", at(day, "00:00"))
    (row,) = attendance(schedule, intervals, d, d + timedelta(days=1), **kw)
    return row


def march(days: list[int], seat: str = "s101", login: str = "08:55:00",
          logout: str = "18:03:00") -> list[StateInterval]:  # fmt: skip
    """On time (08:55-18:03) on the given March 2027 days."""
    out: list[StateInterval] = []
    for d in days:
        day = f"2027-03-{d:02d}"
        out += logged_in(seat, at(day, login), at(day, logout))
    return out


def the_month(schedule: Schedule, intervals: list[StateInterval], year: int = 2027,
              month: int = 3, since: str | None = None) -> AgentMonth:  # fmt: skip
    """The one agent's month; the data is said to cover from `since` (a day), by default
    from the month's first day."""
    covered = at(since or f"{year}-{month:02d}-01", "00:00")
    (m,) = monthly(schedule, intervals, year, month, since=covered)
    return m


# --- one shift ------------------------------------------------------------------------------


def test_on_time() -> None:
    s = make(OFFICE)
    row = one_day(s, logged_in("s101", at("2027-03-01", "08:55"), at("2027-03-01", "18:03")),
                  "2027-03-01")  # fmt: skip
    assert row.first_login == at("2027-03-01", "08:55")
    assert row.last_logout == at("2027-03-01", "18:03")
    assert (row.late_s, row.early_s, row.half_days) == (0.0, 0.0, 0)
    assert not (row.late or row.early or row.absent or row.half_day)
    assert row.overtime_s == 180.0  # 18:00 -> 18:03
    assert not row.still_logged_in_after_end  # within the 15 min grace
    assert row.early_arrival is None  # not hotline staff
    assert row.gaps == ()


def test_ten_minutes_late_exactly_is_not_a_half_day() -> None:
    s = make(OFFICE)
    row = one_day(s, logged_in("s101", at("2027-03-01", "09:10:00"), at("2027-03-01", "18:00")),
                  "2027-03-01")  # fmt: skip
    assert row.late and row.late_s == 600.0
    assert not row.half_day  # "over 10 minutes" (S1 考勤 1): 10 min is not over


def test_ten_minutes_and_one_second_late_is_a_half_day() -> None:
    s = make(OFFICE)
    row = one_day(s, logged_in("s101", at("2027-03-01", "09:10:01"), at("2027-03-01", "18:00")),
                  "2027-03-01")  # fmt: skip
    assert row.late_s == 601.0
    assert row.half_day and row.half_days == 1


def test_early_leave() -> None:
    s = make(OFFICE)
    left = one_day(s, logged_in("s101", at("2027-03-01", "08:58"), at("2027-03-01", "17:55")),
                   "2027-03-01")  # fmt: skip
    assert left.early and left.early_s == 300.0 and not left.half_day  # 5 min
    gone = one_day(s, logged_in("s101", at("2027-03-01", "08:58"), at("2027-03-01", "17:45")),
                   "2027-03-01")  # fmt: skip
    assert gone.early_s == 900.0 and gone.half_days == 1  # 15 min: over 10


def test_late_and_early_on_one_shift_are_two_half_days() -> None:
    s = make(OFFICE)
    row = one_day(s, logged_in("s101", at("2027-03-01", "09:30"), at("2027-03-01", "17:30")),
                  "2027-03-01")  # fmt: skip
    assert (row.late_s, row.early_s, row.half_days) == (1800.0, 1800.0, 2)


def test_absent_when_no_login_during_the_shift() -> None:
    s = make(OFFICE)
    assert one_day(s, [], "2027-03-01").absent
    # logged in only before the shift and after it: still no login during it
    before = logged_in("s101", at("2027-03-01", "08:00"), at("2027-03-01", "08:30"))
    after = logged_in("s101", at("2027-03-01", "18:30"), at("2027-03-01", "19:00"))
    row = one_day(s, before + after, "2027-03-01")
    assert row.absent and row.first_login is None


def test_approved_leave_is_not_absence() -> None:
    s = make({**OFFICE, "days": {"2027-03-02": "leave"}})
    row = one_day(s, [], "2027-03-02")
    assert row.leave and not row.absent
    m = the_month(s, march([d for d in MARCH_WORKDAYS if d != 2]))
    assert (m.shifts, m.leave, m.absences, m.attended) == (22, 1, 0, 22)  # 23 workdays - 1
    assert m.flags == ()


def test_day_off_is_no_shift() -> None:
    s = make({**OFFICE, "days": {"2027-03-02": "off"}})
    d = date(2027, 3, 2)
    assert attendance(s, [], d, d + timedelta(days=1)) == []


def test_night_shift_across_midnight_belongs_to_the_start_day() -> None:
    night = {"id": "n1", "week": "sat 22:00-06:00"}
    s = make(night)
    seat = logged_in("s201", at("2027-03-06", "21:58"), at("2027-03-07", "06:03"))
    row = one_day(s, seat, "2027-03-06")  # Saturday
    assert row.shift.day == date(2027, 3, 6)
    assert (row.late_s, row.early_s, row.overtime_s) == (0.0, 0.0, 180.0)
    assert row.first_login == at("2027-03-06", "21:58")
    assert row.last_logout == at("2027-03-07", "06:03")
    sunday = date(2027, 3, 7)
    assert attendance(s, seat, sunday, sunday + timedelta(days=1)) == []


def test_a_shift_ending_at_midnight() -> None:
    s = make({"id": "e1", "week": "mon 16:00-24:00"})
    on_time = logged_in("s301", at("2027-03-01", "15:59"), at("2027-03-02", "00:00"))
    assert not one_day(s, on_time, "2027-03-01").early
    left = logged_in("s301", at("2027-03-01", "15:59"), at("2027-03-01", "23:59:30"))
    assert one_day(s, left, "2027-03-01").early_s == 30.0


def test_the_local_day_not_the_utc_day_decides_the_month() -> None:
    # 2027-03-01 07:00 in Shanghai is 2027-02-28 23:00 UTC: the shift is March's
    s = make({"id": "m1", "week": "mon-fri 07:00-15:00"})
    seat = logged_in("s401", at("2027-03-01", "06:50"), at("2027-03-01", "15:05"))
    assert datetime.fromtimestamp(at("2027-03-01", "07:00"), ZoneInfo("UTC")).day == 28
    mar = the_month(s, seat, 2027, 3)
    feb = the_month(s, seat, 2027, 2)
    assert mar.rows[0].shift.day == date(2027, 3, 1) and not mar.rows[0].absent
    assert all(r.shift.day.month == 2 for r in feb.rows)
    assert feb.rows[-1].shift.day == date(2027, 2, 26)  # the last weekday of February


def test_dst_spring_night_is_seven_hours() -> None:
    # Berlin, Sat 2027-03-27 22:00 CET to Sun 06:00 CEST: 7 h, not 8 h. Logged out 06:03
    # (summer time) is 3 minutes after the end, not 57 minutes before it.
    s = make({"id": "b1", "week": "sat 22:00-06:00"}, zone=BERLIN)
    seat = logged_in("s501", at("2027-03-27", "21:58", BERLIN), at("2027-03-28", "06:03", BERLIN))
    row = one_day(s, seat, "2027-03-27")
    assert row.shift.seconds == 7 * 3600
    assert (row.late_s, row.early_s, row.overtime_s) == (0.0, 0.0, 180.0)


def test_dst_autumn_night_is_nine_hours() -> None:
    # Berlin, Sat 2027-10-30 22:00 CEST to Sun 06:00 CET: 9 h. Logged out at 05:03 (winter
    # time) is 57 minutes early = 3420 s: a half day.
    s = make({"id": "b1", "week": "sat 22:00-06:00"}, zone=BERLIN)
    seat = logged_in("s501", at("2027-10-30", "21:58", BERLIN), at("2027-10-31", "05:03", BERLIN))
    row = one_day(s, seat, "2027-10-30")
    assert row.shift.seconds == 9 * 3600
    assert row.early_s == 3420.0 and row.half_day


def test_still_logged_in_two_hours_after_the_end() -> None:
    s = make(OFFICE)
    seat = logged_in("s101", at("2027-03-01", "08:58"), at("2027-03-01", "20:00"))
    row = one_day(s, seat, "2027-03-01")
    assert row.overtime_s == 7200.0  # 18:00 -> 20:00
    assert row.still_logged_in_after_end and not row.early
    # the same seat still logged in when the report is made at 20:00: no logout yet
    now = at("2027-03-01", "20:00")
    row = one_day(s, seat, "2027-03-01", until=now)
    assert row.logged_in_at_until and row.last_logout is None
    assert row.overtime_s == 7200.0 and row.still_logged_in_after_end


def test_overtime_stops_at_the_next_shifts_login_window() -> None:
    # never logged out from Monday 08:55 to Tuesday 18:00: Monday's overtime runs to
    # Tuesday 07:00 (2 h before its start), 13 h = 46800 s; Tuesday has no sign-in of its own
    s = make(OFFICE)
    seat = logged_in("s101", at("2027-03-01", "08:55"), at("2027-03-02", "18:00"))
    mon, tue = attendance(s, seat, date(2027, 3, 1), date(2027, 3, 3))
    assert mon.overtime_s == 46800.0 and not mon.carried_over
    assert tue.carried_over and tue.late_s == 0.0 and not tue.absent


def test_overtime_over_a_weekend_whatever_days_are_asked() -> None:
    # Friday 08:55 to Monday 18:00 without a logout: Friday's overtime runs to Monday 07:00,
    # 2 days 13 h = 219600 s, whether the report asks for Friday alone or the whole week
    s = make(OFFICE)
    seat = logged_in("s101", at("2027-03-26", "08:55"), at("2027-03-29", "18:00"))
    alone = one_day(s, seat, "2027-03-26")
    monday = at("2027-03-22", "00:00")
    week = attendance(s, seat, date(2027, 3, 22), date(2027, 3, 30), since=monday)
    assert alone.overtime_s == 219600.0
    assert [r for r in week if r.shift.day == date(2027, 3, 26)] == [alone]


def test_a_reconnect_gap_is_one_attendance_with_the_gap_reported() -> None:
    s = make(OFFICE)
    seat = (logged_in("s101", at("2027-03-01", "08:58"), at("2027-03-01", "10:00"))
            + [StateInterval("s101", "logged_out", None, at("2027-03-01", "10:00"),
                             at("2027-03-01", "10:03"))]
            + logged_in("s101", at("2027-03-01", "10:03"), at("2027-03-01", "18:01")))  # fmt: skip
    row = one_day(s, seat, "2027-03-01")
    assert row.gaps == (Gap(at("2027-03-01", "10:00"), at("2027-03-01", "10:03")),)
    assert row.gap_s == 180.0
    assert (row.late_s, row.early_s, row.absent) == (0.0, 0.0, False)
    assert row.first_login == at("2027-03-01", "08:58")
    assert row.last_logout == at("2027-03-01", "18:01")


def test_logged_in_at_start_counts_a_login_before_and_not_one_that_ended() -> None:
    s = make(OFFICE)
    # in at 08:50, out 08:55, in again 09:02: not logged in at 09:00, 2 min late
    seat = (logged_in("s101", at("2027-03-01", "08:50"), at("2027-03-01", "08:55"))
            + logged_in("s101", at("2027-03-01", "09:02"), at("2027-03-01", "18:00")))  # fmt: skip
    row = one_day(s, seat, "2027-03-01")
    assert row.late_s == 120.0 and row.first_login == at("2027-03-01", "09:02")


def test_hotline_early_arrival() -> None:
    s = make({**OFFICE, "hotline": True})
    met = one_day(s, logged_in("s101", at("2027-03-01", "08:40:00"), at("2027-03-01", "18:00")),
                  "2027-03-01")  # fmt: skip
    assert met.early_arrival is True  # exactly 20 min before
    missed = one_day(s, logged_in("s101", at("2027-03-01", "08:45"), at("2027-03-01", "18:00")),
                     "2027-03-01")  # fmt: skip
    assert missed.early_arrival is False and not missed.late  # on time, not early enough
    m = the_month(s, march(MARCH_WORKDAYS))  # 08:55 every day: never 20 min early
    assert m.early_arrival_missed == 23
    assert any("S4 服务热线 13" in f for f in m.flags)


def test_until_leaves_out_a_shift_not_over_and_since_one_not_covered() -> None:
    s = make(OFFICE)
    seat = march([1, 2])
    rows = attendance(s, seat, date(2027, 3, 1), date(2027, 3, 3), until=at("2027-03-02", "12:00"))
    assert [r.shift.day for r in rows] == [date(2027, 3, 1)]
    rows = attendance(s, seat, date(2027, 3, 1), date(2027, 3, 3), since=at("2027-03-02", "00:00"))
    assert [r.shift.day for r in rows] == [date(2027, 3, 2)]


# --- the month ------------------------------------------------------------------------------


def test_a_full_month_on_time() -> None:
    m = the_month(make(OFFICE), march(MARCH_WORKDAYS))
    assert (m.shifts, m.attended, m.absences, m.late, m.early) == (23, 23, 0, 0, 0)
    assert m.flags == () and len(m.rows) == 23
    assert m.overtime_s == 23 * 180.0  # 3 min after every shift


def test_four_late_in_a_month_is_one_days_absence() -> None:
    late = [1, 2, 3, 4]
    seat = march([d for d in MARCH_WORKDAYS if d not in late]) + march(late, login="09:05")
    m = the_month(make(OFFICE), seat)
    assert (m.late, m.late_early, m.half_days) == (4, 4, 0)
    assert m.absence_for_late_early == 1 and m.absence_days == 1 and m.absences == 0
    assert ("flag for HR review: 4 late/early this month, more than 3: one day's absence "
            "(S1 考勤 3)") in m.flags  # fmt: skip


def test_three_late_in_a_month_is_not() -> None:
    late = [1, 2, 3]
    seat = march([d for d in MARCH_WORKDAYS if d not in late]) + march(late, login="09:05")
    m = the_month(make(OFFICE), seat)
    assert (m.late, m.absence_for_late_early, m.absence_days) == (3, 0, 0)


def test_late_and_early_count_together() -> None:
    seat = (march([d for d in MARCH_WORKDAYS if d not in (1, 2)])
            + march([1], login="09:05") + march([2], logout="17:50"))  # fmt: skip
    m = the_month(make(OFFICE), seat)
    assert (m.late, m.early, m.late_early, m.absence_for_late_early) == (1, 1, 2, 0)


def test_three_consecutive_absences_are_flagged() -> None:
    m = the_month(make(OFFICE), march([d for d in MARCH_WORKDAYS if d not in (10, 11, 12)]))
    assert (m.absences, m.longest_absence_run) == (3, 3)
    assert m.flag_consecutive_absence and m.flag_total_absence
    assert ("flag for HR review: 3 consecutive days absent, limit 3: contract termination "
            "rule (S1 考勤 2)") in m.flags  # fmt: skip


def test_two_consecutive_absences_are_not() -> None:
    m = the_month(make(OFFICE), march([d for d in MARCH_WORKDAYS if d not in (10, 11)]))
    assert (m.absences, m.longest_absence_run) == (2, 2)
    assert not (m.flag_consecutive_absence or m.flag_total_absence)
    assert m.flags == ("flag for HR review: 2 day(s) absent without leave (S1 考勤 2)",)


def test_a_weekend_does_not_break_a_run_and_leave_does() -> None:
    # Fri 12, (weekend off), Mon 15, Tue 16: three shifts in a row absent
    m = the_month(make(OFFICE), march([d for d in MARCH_WORKDAYS if d not in (12, 15, 16)]))
    assert m.longest_absence_run == 3 and m.flag_consecutive_absence
    # Wed 10 absent, Thu 11 approved leave, Fri 12 absent: no run of 2
    s = make({**OFFICE, "days": {"2027-03-11": "leave"}})
    m = the_month(s, march([d for d in MARCH_WORKDAYS if d not in (10, 11, 12)]))
    assert (m.absences, m.leave, m.longest_absence_run) == (2, 1, 1)


def test_absence_is_counted_by_day_with_split_shifts() -> None:
    # 09:00-12:00 and 14:00-18:00 every weekday. Wed 10: both missed; Thu 11: the morning
    # missed, the afternoon worked; Fri 12: both missed. Two days' absence and half a day,
    # and no run of three (Thursday was worked in part).
    split = {**OFFICE, "week": ["mon-fri 09:00-12:00", "mon-fri 14:00-18:00"]}
    seat: list[StateInterval] = []
    for d in MARCH_WORKDAYS:
        day = f"2027-03-{d:02d}"
        if d not in (10, 11, 12):
            seat += logged_in("s101", at(day, "08:55"), at(day, "12:01"))
        if d not in (10, 12):
            seat += logged_in("s101", at(day, "13:55"), at(day, "18:02"))
    m = the_month(make(split), seat)
    assert (m.shifts, m.attended) == (46, 41)  # 23 days x 2; 2 + 1 + 2 shifts missed
    assert (m.absences, m.half_days, m.longest_absence_run) == (2, 1, 1)
    assert not m.flag_consecutive_absence


def test_three_absences_in_a_month_not_in_a_row() -> None:
    m = the_month(make(OFFICE), march([d for d in MARCH_WORKDAYS if d not in (3, 10, 17)]))
    assert (m.absences, m.longest_absence_run, m.absence_days) == (3, 1, 3)
    assert m.flag_total_absence and not m.flag_consecutive_absence
    assert any("3 days' absence this month, limit 3" in f and "S1 考勤 6" in f for f in m.flags)


def test_a_run_begun_last_month_counts_whole() -> None:
    # absent Fri 2027-02-26 and Mon 2027-03-01, Tue 03-02: a run of 3 into March
    s = make(OFFICE)
    feb = [date(2027, 2, 1) + timedelta(days=k) for k in range(25)]  # Feb 1..25
    seat = [iv for d in feb if d.weekday() < 5
            for iv in logged_in("s101", at(str(d), "08:55"), at(str(d), "18:00"))]  # fmt: skip
    seat += march([d for d in MARCH_WORKDAYS if d not in (1, 2)])
    m = the_month(s, seat, since="2027-02-01")
    assert (m.absences, m.longest_absence_run) == (2, 3) and m.flag_consecutive_absence


def test_thirty_late_in_a_year_is_flagged() -> None:
    # late 5 min on every weekday of January 2027 (21: Fri 1, then 4 weeks) and on the
    # first 9 of February (1-5, 8-11): 30 by 11 February
    s = make(OFFICE)
    days = [date(2027, 1, 1) + timedelta(days=k) for k in range(59)]  # to 28 February
    work = [d for d in days if d.weekday() < 5]
    late = [d for d in work if d.month == 1] + [d for d in work if d.month == 2][:9]
    seat = [iv for d in work
            for iv in logged_in("s101", at(str(d), "09:05" if d in late else "08:55"),
                                at(str(d), "18:00"))]  # fmt: skip
    jan = the_month(s, seat, 2027, 1)
    feb = the_month(s, seat, 2027, 2, since="2027-01-01")
    assert (jan.late, jan.year_late_early, jan.flag_year_late_early) == (21, 21, False)
    assert (feb.late, feb.year_late_early, feb.flag_year_late_early) == (9, 30, True)
    assert (jan.absence_days, feb.year_absence_days) == (1, 2)  # each month over 3 late
    assert any("30 late/early this year, limit 30" in f for f in feb.flags)


def test_absence_total_over_the_year_when_so_configured() -> None:
    # one absence in January and two in February: 3 in the year, never 3 in a month
    s = make(OFFICE, absent_total_period="year")
    days = [date(2027, 1, 1) + timedelta(days=k) for k in range(59)]
    away = {date(2027, 1, 13), date(2027, 2, 3), date(2027, 2, 17)}
    seat = [iv for d in days if d.weekday() < 5 and d not in away
            for iv in logged_in("s101", at(str(d), "08:55"), at(str(d), "18:00"))]  # fmt: skip
    assert not the_month(s, seat, 2027, 1).flag_total_absence
    feb = the_month(s, seat, 2027, 2, since="2027-01-01")
    assert (feb.absence_days, feb.year_absence_days, feb.flag_total_absence) == (2, 3, True)


def test_shifts_before_the_data_begins_are_not_judged_absent() -> None:
    # the store's first event is on Wednesday 10 March: 1-9 March are unknown, not absent
    s = make(OFFICE)
    (m,) = monthly(s, march([d for d in MARCH_WORKDAYS if d >= 10]), 2027, 3)
    assert (m.shifts, m.absences, m.year_absence_days) == (16, 0, 0)  # 10..31: 16 workdays
    assert m.rows[0].shift.day == date(2027, 3, 10)
    assert m.since == at("2027-03-10", "08:55")
    assert "Login data from 2027-03-10 08:55" in monthly_html([m])
    # told that the data covers the whole month, the same days are absences
    (told,) = monthly(s, march([d for d in MARCH_WORKDAYS if d >= 10]), 2027, 3,
                      since=at("2027-03-01", "00:00"))  # fmt: skip
    assert (told.shifts, told.absences, told.longest_absence_run) == (23, 7, 7)
    # no data at all: nothing judged
    (empty,) = monthly(s, [], 2027, 3)
    assert (empty.shifts, empty.rows, empty.since) == (0, (), None)


def test_report_start() -> None:
    assert report_start(2027, 3) == date(2027, 1, 1)
    assert report_start(2027, 1) == date(2026, 12, 1)  # a run begun in December


# --- the seat events themselves --------------------------------------------------------------


class Seat:
    """One seat's events as dicts (docs/mqtt.md seat/{seat}/event), seq numbered."""

    def __init__(self, seat: str, board: str = "5EA70001") -> None:
        self.seat, self.board, self.seq = seat, board, 0
        self.events: list[dict[str, Any]] = []

    def state(self, t: float, state: str, reason: str | None = None) -> Seat:
        self.seq += 1
        self.events.append({"v": 1, "id": f"{self.board}-1-{self.seq}", "seat": self.seat,
                            "gateway": "gw1", "board": self.board, "boot": 1,
                            "seq": self.seq, "t": t, "type": "event",
                            "data": {"event": "state", "state": state, "reason": reason,
                                     "call": None, "a": 1, "b": 0}})  # fmt: skip
        return self


def a_week_of_events() -> list[dict[str, Any]]:
    seat = Seat("s101")
    for d in (1, 2, 3, 4, 5):
        day = f"2027-03-0{d}"
        login = "09:12" if d == 2 else "08:57"  # Tuesday 12 min late
        logout = "17:40" if d == 4 else "18:02"  # Thursday 20 min early
        (seat.state(at(day, login), "ready")
             .state(at(day, "12:00"), "not_ready", "meal")
             .state(at(day, "12:40"), "ready"))  # fmt: skip
        if d == 3:  # Wednesday a reconnect: out 15:00, in 15:04
            seat.state(at(day, "15:00"), "logged_out").state(at(day, "15:04"), "ready")
        seat.state(at(day, logout), "logged_out")
    return seat.events


def test_out_of_order_and_repeated_events_give_the_same_report() -> None:
    s = make(OFFICE)
    until = at("2027-04-01", "00:00")
    events = a_week_of_events()
    straight = monthly(s, state_intervals(events, until=until), 2027, 3, until=until)
    shuffled = events + events[::3]  # repeats, as at-least-once delivery gives
    random.Random(7).shuffle(shuffled)
    again = monthly(s, state_intervals(shuffled, until=until), 2027, 3, until=until)
    assert again == straight
    (m,) = straight
    week = m.rows[:5]
    assert [r.late_s for r in week] == [0.0, 720.0, 0.0, 0.0, 0.0]  # 09:12: 12 min
    assert [r.early_s for r in week] == [0.0, 0.0, 0.0, 1200.0, 0.0]  # 17:40: 20 min
    assert week[2].gap_s == 240.0  # 15:00 -> 15:04
    assert week[0].gaps == ()  # the meal break was Not Ready: logged in
    assert (m.late, m.early, m.half_days, m.absences) == (1, 1, 2, 18)  # 23 - 5 workdays


def test_login_periods_merge_touching_and_repeated_intervals() -> None:
    seat = logged_in("s1", 100.0, 200.0)
    periods = login_periods(seat + seat + [StateInterval("s1", "logged_out", None, 200, 300)])
    assert [(p.start, p.end) for p in periods["s1"]] == [(100.0, 200.0)]


# --- the reports -----------------------------------------------------------------------------


def a_month_with_everything() -> list[AgentMonth]:
    li = {"id": "a102", "name": "Li Lei", "week": "mon-fri 09:00-18:00"}
    s = make({**OFFICE, "days": {"2027-03-05": "leave"}}, li)
    seat = march([d for d in MARCH_WORKDAYS if d not in (1, 2, 3, 4, 5, 10)])
    seat += march([1, 2, 3, 4], login="09:20")
    seat += march(MARCH_WORKDAYS, seat="s102", logout="20:00")
    return monthly(s, seat, 2027, 3)


def test_monthly_csv_round_trip() -> None:
    months = a_month_with_everything()
    rows = list(csv.DictReader(io.StringIO(monthly_csv(months))))
    assert tuple(rows[0]) == MONTH_COLUMNS
    assert [r["agent"] for r in rows] == ["a101", "a102"]
    wang, li = rows
    m = months[0]
    assert wang["name"] == "Wang Fang"
    for column in ("shifts", "attended", "leave", "absences", "late", "half_days",
                   "absence_days", "year_late_early", "longest_absence_run"):  # fmt: skip
        assert int(wang[column]) == getattr(m, column), column
    assert (int(wang["late"]), int(wang["absences"]), int(wang["leave"])) == (4, 1, 1)
    assert wang["flags"].split(" | ") == list(m.flags)
    assert wang["early_arrival_missed"] == ""  # not checked
    assert float(li["overtime_s"]) == 23 * 7200.0 and li["flag_total_absence"] == "no"


def test_shifts_csv_round_trip() -> None:
    months = a_month_with_everything()
    rows = list(csv.DictReader(io.StringIO(shifts_csv(months))))
    assert tuple(rows[0]) == SHIFT_COLUMNS
    assert len(rows) == sum(len(m.rows) for m in months)
    first = rows[0]
    assert (first["agent"], first["day"], first["late_s"]) == ("a101", "2027-03-01", "1200")
    assert datetime.fromisoformat(first["first_login"]).timestamp() == at("2027-03-01", "09:20")
    assert datetime.fromisoformat(first["start"]).timestamp() == at("2027-03-01", "09:00")
    assert first["start"] == "2027-03-01T09:00:00+08:00"
    by_day = {r["day"]: r for r in rows if r["agent"] == "a101"}
    assert by_day["2027-03-05"]["leave"] == "yes" and by_day["2027-03-05"]["absent"] == "no"
    assert by_day["2027-03-10"]["absent"] == "yes" and by_day["2027-03-10"]["first_login"] == ""


def test_csv_keeps_a_name_from_running_as_a_formula() -> None:
    s = make({**OFFICE, "name": "=HYPERLINK(\"http://x\")"})
    rows = list(csv.DictReader(io.StringIO(monthly_csv(monthly(s, [], 2027, 3)))))
    assert rows[0]["name"] == "'=HYPERLINK(\"http://x\")"


def test_html_escapes_a_hostile_name() -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & Co'
    s = make({**OFFICE, "name": hostile})
    page = monthly_html(monthly(s, march(MARCH_WORKDAYS[1:]), 2027, 3), title="Zhuji <b>")
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert html.escape(hostile) in page
    assert "Zhuji &lt;b&gt;" in page


def test_html_is_a_self_contained_page_for_hr() -> None:
    months = a_month_with_everything()
    page = monthly_html(months)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in page
    assert "http" not in page and "<script" not in page and "<link" not in page
    assert "<title>Attendance 2027-03</title>" in page
    assert page.count("<section>") == 2  # one per agent
    assert "Wang Fang (a101, seats s101)" in page
    assert "flag for HR review: 4 late/early this month" in page
    assert "approved leave" in page and "absent" in page
    assert "0:20:00" in page  # 20 min late on 1 March


@pytest.mark.parametrize("months", [[]])
def test_empty_reports(months: list[AgentMonth]) -> None:
    assert monthly_csv(months).splitlines() == [",".join(MONTH_COLUMNS)]
    assert "<table>" in monthly_html(months)
