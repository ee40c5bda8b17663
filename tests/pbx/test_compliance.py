"""Outbound compliance gate: real SQLite, real phonenumbers metadata, no mocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from gateway.pbx.compliance import (
    AuthorisationCodes,
    BlockedCategory,
    BlockedEntry,
    BlockedNumbers,
    CallClass,
    ComplianceGate,
    Decision,
    DoNotCallList,
    InvalidNumberError,
)

BEIJING_CALLER_ID = "010 6512 3456"
US_CALLER_ID = "+1 201 555 0123"
# 10:00 in Beijing, Hong Kong and Macau (UTC+8): inside the window for CN-site tests.
CN_MORNING = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)

CODES = {
    CallClass.DOMESTIC_LONG_DISTANCE: ["1111"],
    CallClass.HK_MACAU: ["2222"],
    CallClass.INTERNATIONAL: ["3333", "3334"],
}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def dnc() -> DoNotCallList:
    return DoNotCallList(":memory:", region="CN")


@pytest.fixture
def gate(dnc: DoNotCallList) -> ComplianceGate:
    """A Beijing site (area 010) with one code per class and hospital/health entries."""
    blocked = BlockedNumbers(
        entries=[
            BlockedEntry("+86 10 8888 8888", BlockedCategory.HOSPITAL),
            BlockedEntry("12320", BlockedCategory.HEALTH_CARE),
        ],
        region="CN",
    )
    return ComplianceGate(
        dnc=dnc,
        blocked=blocked,
        codes=AuthorisationCodes.from_plain(CODES, iterations=1000),
        home_region="CN",
        home_area_code="010",
    )


@pytest.fixture
def us_gate() -> ComplianceGate:
    """A US site with no area restriction, so US numbers are local and need no code."""
    return ComplianceGate(
        dnc=DoNotCallList(":memory:", region="US"),
        blocked=BlockedNumbers(region="US"),
        home_region="US",
    )


def denied(decision: Decision, rule: str) -> Decision:
    assert not decision.allowed, decision
    assert decision.rule == rule, decision
    assert decision.reason
    return decision


# --- allowed path and Decision shape ---------------------------------------------------------


def test_local_call_inside_window_is_allowed(gate: ComplianceGate) -> None:
    d = gate.check("010-6512 9999", caller_id=BEIJING_CALLER_ID, when=CN_MORNING)
    assert d.allowed and d.rule == "allowed"
    assert d.number == "+861065129999"
    assert d.at == CN_MORNING


def test_decision_json_round_trip(gate: ComplianceGate) -> None:
    d = gate.check("+86 21 1234 5678", caller_id=BEIJING_CALLER_ID, when=CN_MORNING)
    doc = json.loads(d.to_json())
    assert doc == {
        "allowed": False,
        "rule": "authorisation",
        "seed": "004 电话管理制度 5-7; 001 现场 5",
        "reason": d.reason,
        "number": "+862112345678",
        "at": "2024-06-03T02:00:00+00:00",
    }


def test_clock_is_used_when_no_time_given(dnc: DoNotCallList) -> None:
    night = utc(2024, 6, 3, 15, 0)  # 23:00 Beijing
    g = ComplianceGate(dnc=dnc, blocked=BlockedNumbers(), home_area_code="010", clock=lambda: night)
    d = denied(g.check("01065129999", caller_id=BEIJING_CALLER_ID), "calling_window")
    assert d.at == night


def test_naive_time_is_a_programming_error(gate: ComplianceGate) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        gate.check("01065129999", caller_id=BEIJING_CALLER_ID, when=datetime(2024, 6, 3, 10))


# --- calling window: 08:00 <= t < 21:00, callee's local time ------------------------------


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (utc(2024, 6, 2, 23, 59), False),  # 07:59 Beijing
        (utc(2024, 6, 3, 0, 0), True),  # 08:00
        (utc(2024, 6, 3, 12, 59, 59), True),  # 20:59:59
        (utc(2024, 6, 3, 12, 59), True),  # 20:59
        (utc(2024, 6, 3, 13, 0), False),  # 21:00 is outside
    ],
)
def test_window_boundaries_beijing(gate: ComplianceGate, when: datetime, allowed: bool) -> None:
    d = gate.check("01065129999", caller_id=BEIJING_CALLER_ID, when=when)
    assert d.allowed is allowed, d
    if not allowed:
        assert d.rule == "calling_window" and d.seed == "000 TCPA 2)"
        assert "Asia/Shanghai" in d.reason


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        # Saturday before spring-forward: EST (UTC-5), 08:00 = 13:00 UTC
        (utc(2024, 3, 9, 12, 59), False),
        (utc(2024, 3, 9, 13, 0), True),
        # Spring-forward day 2024-03-10: EDT (UTC-4) from 02:00, so 08:00 = 12:00 UTC
        (utc(2024, 3, 10, 11, 59), False),
        (utc(2024, 3, 10, 12, 0), True),
        (utc(2024, 3, 11, 0, 59), True),  # 20:59 EDT
        (utc(2024, 3, 11, 1, 0), False),  # 21:00 EDT
        # Fall-back day 2024-11-03: EST again from 02:00, so 08:00 = 13:00 UTC
        (utc(2024, 11, 3, 12, 30), False),  # 07:30 EST (would be 08:30 under EDT)
        (utc(2024, 11, 3, 13, 0), True),
        (utc(2024, 11, 4, 1, 59), True),  # 20:59 EST
        (utc(2024, 11, 4, 2, 0), False),  # 21:00 EST
    ],
)
def test_window_follows_us_daylight_saving(
    us_gate: ComplianceGate, when: datetime, allowed: bool
) -> None:
    d = us_gate.check("+1 212 555 1234", caller_id=US_CALLER_ID, when=when)
    assert d.allowed is allowed, d
    if not allowed:
        assert d.rule == "calling_window"


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        # Australian mobiles map to 8 zones. In June the one latest to reach 08:00 is Cocos
        # (UTC+6:30) and the one first to reach 21:00 is Lord Howe (UTC+10:30), so the number
        # may be called 01:30-10:30 UTC only, although Sydney alone would allow 22:00-11:00.
        (utc(2024, 6, 3, 1, 29), False),  # 07:59 Cocos
        (utc(2024, 6, 3, 1, 30), True),  # 08:00 Cocos
        (utc(2024, 6, 3, 10, 29), True),  # 20:59 Lord Howe
        (utc(2024, 6, 3, 10, 30), False),  # 21:00 Lord Howe
        (utc(2024, 6, 2, 23, 0), False),  # 09:00 Sydney, but 05:30 in Cocos
    ],
)
def test_multi_zone_number_needs_all_zones_inside(
    dnc: DoNotCallList, when: datetime, allowed: bool
) -> None:
    g = ComplianceGate(dnc=dnc, blocked=BlockedNumbers(region="AU"), home_region="AU")
    d = g.check("+61 412 345 678", caller_id="+61 2 1234 5678", when=when)
    assert d.allowed is allowed, d
    if not allowed:
        assert d.rule == "calling_window"
        assert "one of 8 zones" in d.reason


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        # +7 9xx maps to 16 zones from Europe/Bucharest (UTC+3 in June) to Asia/Anadyr
        # (UTC+12): only 05:00-09:00 UTC is inside 08-21 everywhere.
        (utc(2024, 6, 3, 4, 59), False),  # 07:59 Bucharest
        (utc(2024, 6, 3, 5, 0), True),
        (utc(2024, 6, 3, 8, 59), True),  # 20:59 Anadyr
        (utc(2024, 6, 3, 9, 0), False),  # 21:00 Anadyr
        (utc(2024, 6, 3, 12, 0), False),  # 15:00 Moscow, but midnight in Anadyr
    ],
)
def test_russian_mobile_window_is_the_intersection(
    dnc: DoNotCallList, when: datetime, allowed: bool
) -> None:
    g = ComplianceGate(dnc=dnc, blocked=BlockedNumbers(region="RU"), home_region="RU")
    d = g.check("+7 916 123 4567", caller_id="+7 495 123 4567", when=when)
    assert d.allowed is allowed, d
    # A Moscow landline has one zone: 15:00 MSK is fine.
    assert g.check("+7 495 123 4568", caller_id="+7 495 123 4567", when=utc(2024, 6, 3, 12)).allowed


def test_unknown_time_zone_fails_closed(gate: ComplianceGate) -> None:
    # Inmarsat (+870) mobiles are valid numbers with no time zone in the metadata.
    d = gate.check(
        "+870 30 123 4567", caller_id=BEIJING_CALLER_ID, authorisation="3333", when=CN_MORNING
    )
    assert "unknown" in denied(d, "calling_window").reason


def test_window_must_not_wrap_midnight(dnc: DoNotCallList) -> None:
    with pytest.raises(ValueError):
        ComplianceGate(dnc=dnc, blocked=BlockedNumbers(), window=(time(21), time(8)))


# --- Do-Not-Call list ------------------------------------------------------------------------


def test_dnc_takes_effect_immediately_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "dnc.sqlite3"
    writer = DoNotCallList(path, region="CN")
    reader = DoNotCallList(path, region="CN")
    gate = ComplianceGate(dnc=reader, blocked=BlockedNumbers(), home_area_code="010")
    assert gate.check("01065129999", caller_id=BEIJING_CALLER_ID, when=CN_MORNING).allowed
    writer.add("010 6512 9999", at=CN_MORNING)
    d = denied(gate.check("01065129999", caller_id=BEIJING_CALLER_ID, when=CN_MORNING), "dnc")
    assert d.seed == "000 TCPA 3)" and "+861065129999" in d.reason
    writer.close()
    reader.close()


@pytest.mark.parametrize("spelling", ["+86 10 6512 9999", "(010) 6512-9999", "0086 10 65129999"])
def test_dnc_normalises_formatting(dnc: DoNotCallList, spelling: str) -> None:
    assert dnc.add("010-65129999", at=CN_MORNING) == "+861065129999"
    assert dnc.contains(spelling, at=CN_MORNING)


def test_dnc_expires_after_ten_years(dnc: DoNotCallList, gate: ComplianceGate) -> None:
    requested = utc(2014, 6, 3, 2, 0)
    dnc.add("01065129999", at=requested)
    assert dnc.contains("01065129999", at=utc(2024, 6, 3, 1, 59, 59))
    assert not dnc.contains("01065129999", at=utc(2024, 6, 3, 2, 0))
    assert gate.check("01065129999", caller_id=BEIJING_CALLER_ID, when=CN_MORNING).allowed


def test_dnc_re_request_renews(dnc: DoNotCallList) -> None:
    dnc.add("01065129999", at=utc(2014, 1, 1))
    dnc.add("01065129999", at=utc(2020, 1, 1))
    assert dnc.contains("01065129999", at=utc(2029, 12, 31))
    assert not dnc.contains("01065129999", at=utc(2030, 1, 1))
    # Recorded late, an older request does not shorten the newer one.
    dnc.add("01065129999", at=utc(2015, 1, 1))
    assert dnc.contains("01065129999", at=utc(2029, 12, 31))


def test_dnc_leap_day_keeps_the_longer_date(dnc: DoNotCallList) -> None:
    dnc.add("01065129999", at=utc(2024, 2, 29, 12, 0))
    assert dnc.contains("01065129999", at=utc(2034, 2, 28, 23, 0))
    assert not dnc.contains("01065129999", at=utc(2034, 3, 1, 12, 0))


def test_dnc_purge_and_bad_numbers(dnc: DoNotCallList) -> None:
    dnc.add("01065129999", at=utc(2010, 1, 1))
    dnc.add("01065128888", at=utc(2020, 1, 1))
    assert dnc.purge_expired(at=utc(2024, 1, 1)) == 1
    with pytest.raises(InvalidNumberError):
        dnc.add("not a number", at=CN_MORNING)
    with pytest.raises(InvalidNumberError):
        dnc.contains("12", at=CN_MORNING)


def test_dnc_unavailable_fails_closed(tmp_path: Path) -> None:
    dnc = DoNotCallList(tmp_path / "d.sqlite3")
    gate = ComplianceGate(dnc=dnc, blocked=BlockedNumbers(), home_area_code="010")
    dnc.close()
    d = denied(gate.check("01065129999", caller_id=BEIJING_CALLER_ID, when=CN_MORNING), "dnc")
    assert "unavailable" in d.reason


# --- blocked number classes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "words", "seed"),
    [
        ("110", "emergency", "000 TCPA 4)"),
        ("120", "emergency", "000 TCPA 4)"),
        ("119", "emergency", "000 TCPA 4)"),
        ("1101", "emergency", "000 TCPA 4)"),  # the exchange connects it to 110
        ("+1 911", "emergency", "000 TCPA 4)"),
        ("+86 10 8888 8888", "hospital", "000 TCPA 4)"),
        ("12320", "health_care", "000 TCPA 4)"),
        ("+1 800 555 1234", "toll-free", "000 TCPA 4)"),
        ("400 123 4567", "shared-cost", "000 TCPA 4)"),
        ("+1 900 555 1234", "premium-rate", "004 最全的公司电话管理制度 3.2.9"),
    ],
)
def test_blocked_classes(gate: ComplianceGate, number: str, words: str, seed: str) -> None:
    d = denied(
        gate.check(number, caller_id=BEIJING_CALLER_ID, authorisation="3333", when=CN_MORNING),
        "blocked_class",
    )
    assert words in d.reason and d.seed == seed


def test_blocked_entry_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(InvalidNumberError):
        BlockedNumbers(entries=[BlockedEntry("hospital", BlockedCategory.HOSPITAL)])


# --- authorisation codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "klass", "code"),
    [
        ("021 1234 5678", CallClass.DOMESTIC_LONG_DISTANCE, "1111"),
        ("138 1234 5678", CallClass.DOMESTIC_LONG_DISTANCE, "1111"),  # mobile: no area code
        ("+852 2123 4567", CallClass.HK_MACAU, "2222"),
        ("+853 6612 3456", CallClass.HK_MACAU, "2222"),
        ("+44 20 7123 4567", CallClass.INTERNATIONAL, "3334"),
    ],
)
def test_authorisation_per_class(
    gate: ComplianceGate, number: str, klass: CallClass, code: str
) -> None:
    # 12:00 UTC is inside the window in Beijing (20:00), Hong Kong and London (13:00).
    when = utc(2024, 6, 3, 12, 0)
    missing = denied(gate.check(number, caller_id=BEIJING_CALLER_ID, when=when), "authorisation")
    assert klass.value in missing.reason
    for wrong in ("0000", "1111" if code != "1111" else "2222", ""):
        d = gate.check(number, caller_id=BEIJING_CALLER_ID, authorisation=wrong, when=when)
        denied(d, "authorisation")
    ok = gate.check(number, caller_id=BEIJING_CALLER_ID, authorisation=code, when=when)
    assert ok.allowed, ok


def test_local_call_needs_no_code_and_local_prefixes_widen_local(dnc: DoNotCallList) -> None:
    g = ComplianceGate(
        dnc=dnc, blocked=BlockedNumbers(), home_area_code="010", local_prefixes=["138"]
    )
    assert g.check("13812345678", caller_id=BEIJING_CALLER_ID, when=CN_MORNING).allowed
    assert g.check("01065129999", caller_id=BEIJING_CALLER_ID, when=CN_MORNING).allowed
    denied(g.check("13912345678", caller_id=BEIJING_CALLER_ID, when=CN_MORNING), "authorisation")


def test_codes_are_stored_hashed() -> None:
    codes = AuthorisationCodes.from_plain({CallClass.INTERNATIONAL: ["3333"]}, iterations=1000)
    stored = codes.hashes[CallClass.INTERNATIONAL][0]
    assert b"3333" not in stored.digest + stored.salt
    assert codes.verify(CallClass.INTERNATIONAL, "3333")
    assert not codes.verify(CallClass.HK_MACAU, "3333")


# --- caller ID -------------------------------------------------------------------------------


@pytest.mark.parametrize("caller_id", [None, "", "   ", "abc", "12"])
def test_caller_id_required_and_valid(gate: ComplianceGate, caller_id: str | None) -> None:
    d = denied(gate.check("01065129999", caller_id=caller_id, when=CN_MORNING), "caller_id")
    assert d.seed == "000 TCPA 1)"


def test_caller_id_must_be_a_company_number(dnc: DoNotCallList) -> None:
    g = ComplianceGate(
        dnc=dnc, blocked=BlockedNumbers(), home_area_code="010", caller_ids=["01065123456"]
    )
    assert g.check("01065129999", caller_id="+86 10 6512 3456", when=CN_MORNING).allowed
    d = denied(g.check("01065129999", caller_id="01065120000", when=CN_MORNING), "caller_id")
    assert "company" in d.reason


# --- parse errors and rule order -------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "   ", "abc", "+", "++86", "12", "1" * 300, "911"])
def test_bad_input_is_a_parse_decision_not_an_exception(gate: ComplianceGate, raw: str) -> None:
    d = denied(gate.check(raw, caller_id=BEIJING_CALLER_ID, when=CN_MORNING), "parse")
    assert d.number == raw.strip()


def test_rule_order(gate: ComplianceGate, dnc: DoNotCallList) -> None:
    night = utc(2024, 6, 3, 15, 0)  # 23:00 Beijing
    dnc.add("+86 21 1234 5678", at=CN_MORNING)
    dnc.add("+86 10 8888 8888", at=CN_MORNING)
    # blocked beats DNC, DNC beats caller ID, caller ID beats authorisation, which beats window
    denied(gate.check("+86 10 8888 8888", caller_id=None, when=night), "blocked_class")
    denied(gate.check("+86 21 1234 5678", caller_id=None, when=night), "dnc")
    denied(gate.check("+86 21 8765 4321", caller_id=None, when=night), "caller_id")
    denied(gate.check("+86 21 8765 4321", caller_id=BEIJING_CALLER_ID, when=night), "authorisation")
    denied(
        gate.check(
            "+86 21 8765 4321", caller_id=BEIJING_CALLER_ID, authorisation="1111", when=night
        ),
        "calling_window",
    )
