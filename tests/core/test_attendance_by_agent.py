"""Attendance by agent (issue 19, part 2): the schedule names agents, and an agent's logins
are the seats' while it was signed in at them (`seat/{seat}/agent`). What an HR reader of
the month would see. Times are Asia/Shanghai wall clock, 2027-03-01 (a Monday)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from gateway.contract.topics import Topics
from gateway.core.attendance import ShiftAttendance, attendance
from gateway.core.kpi import SignIns, StateInterval
from gateway.core.queries import attendance_months
from gateway.core.schedule import Schedule
from gateway.core.store import open_store
from tests.core.test_attendance import Seat, at, logged_in

DAY = "2027-03-01"
SCHEDULE = Schedule.from_mapping({"zone": "Asia/Shanghai", "agent": [
    {"id": "ann", "name": "Ann", "week": "mon-fri 09:00-13:00"},
    {"id": "bob", "week": "mon-fri 13:00-18:00"},
    {"id": "cy", "week": "mon-fri 09:00-18:00"},
]})  # fmt: skip


def changes(*items: tuple[str, str | None, str]) -> SignIns:
    return SignIns([(seat, agent, at(DAY, hhmm), f"api-{k}")
                    for k, (seat, agent, hhmm) in enumerate(items)])  # fmt: skip


def rows(intervals: list[StateInterval], sign_ins: SignIns) -> dict[str, ShiftAttendance]:
    d = date.fromisoformat(DAY)
    return {r.shift.agent: r for r in attendance(
        SCHEDULE, intervals, d, d.replace(day=2), sign_ins=sign_ins, since=at(DAY, "00:00"))}


def test_two_agents_sharing_one_seat_each_have_their_own_shift() -> None:
    """s1 logged in 08:55-18:02; ann signed in there until 13:00, bob from then on."""
    seat = logged_in("s1", at(DAY, "08:55"), at(DAY, "18:02"))
    got = rows(seat, changes(("s1", "ann", "08:50"), ("s1", "bob", "13:00")))
    ann, bob, cy = got["ann"], got["bob"], got["cy"]
    assert (ann.absent, ann.late_s, ann.early_s) == (False, 0.0, 0.0)
    assert ann.last_logout == at(DAY, "13:00")
    assert (bob.absent, bob.late_s, bob.first_login) == (False, 0.0, at(DAY, "13:00"))
    assert bob.overtime_s == 120.0  # to 18:02
    assert cy.absent  # never signed in anywhere


def test_an_agent_moving_seats_is_one_login() -> None:
    """cy from s1 to s2 at 12:00, both seats logged in all day: one login from 08:58 at s1
    to 18:00 at s2, on time, no gap (s2's morning before cy came is nobody's)."""
    seats = logged_in("s1", at(DAY, "08:58"), at(DAY, "18:00")) + \
        logged_in("s2", at(DAY, "08:00"), at(DAY, "18:00"))  # fmt: skip
    cy = rows(seats, changes(("s1", "cy", "08:40"), ("s2", "cy", "12:00"),
                             ("s1", None, "12:00")))["cy"]  # fmt: skip
    assert (cy.absent, cy.late_s, cy.early_s, cy.gaps) == (False, 0.0, 0.0, ())
    assert (cy.first_login, cy.last_logout) == (at(DAY, "08:58"), at(DAY, "18:00"))


def test_a_seat_logged_in_with_nobody_signed_in_is_nobody_s_attendance() -> None:
    seat = logged_in("s1", at(DAY, "08:55"), at(DAY, "18:00"))
    got = rows(seat, changes(("s1", "bob", "14:30")))
    assert got["ann"].absent  # s1 was in, but not ann
    assert got["bob"].late_s == 90 * 60  # signed in at 14:30


def test_the_month_from_the_store_names_agents_and_their_seats(tmp_path: Path) -> None:
    """The seat events and the sign-ins as the core stores them, the month as HR reads it."""
    topics = Topics(site="hq")
    s1, s2 = Seat("s1", "B1"), Seat("s2", "B2")
    s1.state(at(DAY, "08:55"), "ready").state(at(DAY, "18:01"), "logged_out")
    s2.state(at(DAY, "12:55"), "ready").state(at(DAY, "18:01"), "logged_out")
    signs = [("s1", "ann", "08:50"), ("s1", "bob", "13:00"), ("s2", "cy", "12:50")]
    messages = [(topics.seat_event(e["seat"]), json.dumps(e).encode())
                for e in s1.events + s2.events]  # fmt: skip
    messages += [(topics.topic("seat_agent", seat=seat), json.dumps({
        "v": 1, "id": f"api-{k}", "seat": seat, "agent": agent, "name": None,
        "t": at(DAY, hhmm), "by": "sup", "cause": "self", "previous": None}).encode())
        for k, (seat, agent, hhmm) in enumerate(signs)]  # fmt: skip
    url = f"sqlite:///{tmp_path}/core.db"
    with open_store(url, topics=topics, clock=lambda: at("2027-03-02", "00:00")) as store:
        assert store.ingest(messages).stored == len(messages)
    path = tmp_path / "schedule.toml"
    path.write_text('zone = "Asia/Shanghai"\n'
                    '[[agent]]\nid = "ann"\n[agent.days]\n2027-03-01 = "09:00-13:00"\n'
                    '[[agent]]\nid = "bob"\n[agent.days]\n2027-03-01 = "13:00-18:00"\n'
                    '[[agent]]\nid = "cy"\n[agent.days]\n2027-03-01 = "09:00-18:00"\n')
    months = {m.agent: m for m in attendance_months(url, path, 2027, 3,
                                                    now=at("2027-03-02", "00:00"))}  # fmt: skip
    ann, bob, cy = months["ann"], months["bob"], months["cy"]
    assert (ann.seats, ann.attended, ann.late, ann.absences) == ("s1", 1, 0, 0)
    assert (bob.seats, bob.attended, bob.late, bob.absences) == ("s1", 1, 0, 0)
    # cy signed in at s2 at 12:50, logged in at 12:55: 3 h 55 min late, a half day
    assert (cy.seats, cy.late, cy.half_days) == ("s2", 1, 1)
