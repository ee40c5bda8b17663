"""Outbound compliance gate: every dial, automatic or manual, is checked here first (issue 4).

Rules and their seed citations are listed in docs/compliance.md and
shared/design/rules-from-seeds.md §4. The gate never raises on user input (the dialled
number, the caller ID, the authorisation code): it answers with a denying `Decision`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumber,
    PhoneNumberFormat,
    PhoneNumberType,
    shortnumberinfo,
)
from phonenumbers import timezone as pn_timezone

# Seed citations (seed id + section), as in shared/design/rules-from-seeds.md §4.
SEED_CALLER_ID = "000 TCPA 1)"
SEED_WINDOW = "000 TCPA 2)"
SEED_DNC = "000 TCPA 3)"
SEED_BLOCKED = "000 TCPA 4)"
SEED_PREMIUM = "004 最全的公司电话管理制度 3.2.9"
SEED_AUTHORISATION = "004 电话管理制度 5-7; 001 现场 5"

DNC_RETENTION_YEARS = 10


class Rule(StrEnum):
    """Stable rule ids, in the order the gate applies them (see docs/compliance.md)."""

    PARSE = "parse"
    BLOCKED_CLASS = "blocked_class"
    DNC = "dnc"
    CALLER_ID = "caller_id"
    AUTHORISATION = "authorisation"
    CALLING_WINDOW = "calling_window"
    ALLOWED = "allowed"


class CallClass(StrEnum):
    """Number classes of seed 004 电话管理制度 5-7, each with its own authorisation codes."""

    LOCAL = "local"
    DOMESTIC_LONG_DISTANCE = "domestic_long_distance"
    HK_MACAU = "hk_macau"
    INTERNATIONAL = "international"


class BlockedCategory(StrEnum):
    HOSPITAL = "hospital"
    FIRE = "fire"
    POLICE = "police"
    POISON_CONTROL = "poison_control"
    HEALTH_CARE = "health_care"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    seed: str
    reason: str
    number: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "seed": self.seed,
            "reason": self.reason,
            "number": self.number,
            "at": self.at.isoformat(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False)


class InvalidNumberError(ValueError):
    """Raised by list administration (not by the gate) for a number that does not parse."""


def _require_aware(when: datetime, *, what: str) -> datetime:
    # A naive datetime is a programming error, not user input: guessing its zone could move
    # a call across the 08:00/21:00 boundary, so refuse it loudly.
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {when!r}")
    return when.astimezone(UTC)


def _e164(num: PhoneNumber) -> str:
    return phonenumbers.format_number(num, PhoneNumberFormat.E164)


def normalise(number: str, *, region: str) -> str:
    """E.164 form of a valid number (national formats read in `region`), else InvalidNumberError."""
    try:
        parsed = phonenumbers.parse(number, region)
    except NumberParseException as exc:
        raise InvalidNumberError(f"{number!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumberError(f"{number!r} is not a valid number")
    return _e164(parsed)


def _add_years(when: datetime, years: int) -> datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:
        # 29 February with no leap day ten years on: keep the entry until 1 March, the longer
        # choice, because the seed's 10 years is a minimum retention.
        return when.replace(year=when.year + years, month=3, day=1)


class DoNotCallList:
    """Company Do-Not-Call list in SQLite (000 TCPA 3): entries kept 10 years, then expire."""

    def __init__(self, path: str | Path = ":memory:", *, region: str = "CN") -> None:
        self._region = region
        self._db = sqlite3.connect(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dnc ("
            " number TEXT PRIMARY KEY,"  # E.164, so formatting differences match
            " requested_at TEXT NOT NULL,"  # UTC ISO-8601, fixed width: compares as text
            " expires_at TEXT NOT NULL)"
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def add(self, number: str, *, at: datetime) -> str:
        """Record a request; effective at once. A re-request renews the 10 years. Returns E.164."""
        e164 = normalise(number, region=self._region)
        at_utc = _require_aware(at, what="at")
        expires = _add_years(at_utc, DNC_RETENTION_YEARS)
        # MAX keeps the later expiry if requests are recorded out of order.
        self._db.execute(
            "INSERT INTO dnc (number, requested_at, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(number) DO UPDATE SET "
            " requested_at = MAX(requested_at, excluded.requested_at),"
            " expires_at = MAX(expires_at, excluded.expires_at)",
            (e164, _iso(at_utc), _iso(expires)),
        )
        # Commit now: "add a request quickly" means other connections see it immediately.
        self._db.commit()
        return e164

    def contains(self, number: str, *, at: datetime) -> bool:
        """True if `number` has an unexpired entry at `at`. InvalidNumberError if it won't parse."""
        e164 = normalise(number, region=self._region)
        return self.contains_e164(e164, at=_require_aware(at, what="at"))

    def contains_e164(self, e164: str, *, at: datetime) -> bool:
        """As contains(), for a number already in E.164 and an aware UTC `at`."""
        row = self._db.execute(
            "SELECT 1 FROM dnc WHERE number = ? AND expires_at > ?", (e164, _iso(at))
        ).fetchone()
        return row is not None

    def purge_expired(self, *, at: datetime) -> int:
        """Delete entries past their retention; returns how many went."""
        cur = self._db.execute(
            "DELETE FROM dnc WHERE expires_at <= ?", (_iso(_require_aware(at, what="at")),)
        )
        self._db.commit()
        return cur.rowcount


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class BlockedEntry:
    number: str  # E.164 ("+861012345678") or a short number ("120") dialled in the home region
    category: BlockedCategory


class BlockedNumbers:
    """Configured hospital/fire/police/poison-control numbers, plus the built-in number classes."""

    def __init__(self, *, entries: Iterable[BlockedEntry] = (), region: str = "CN") -> None:
        self._region = region
        self._full: dict[str, BlockedCategory] = {}
        self._short: dict[str, BlockedCategory] = {}
        for entry in entries:
            try:
                parsed = phonenumbers.parse(entry.number, region)
            except NumberParseException as exc:
                raise InvalidNumberError(f"blocked entry {entry.number!r}: {exc}") from exc
            if phonenumbers.is_valid_number(parsed):
                self._full[_e164(parsed)] = entry.category
            else:
                # Not a full number: a short code, matched on its digits in the home region.
                self._short[phonenumbers.national_significant_number(parsed)] = entry.category

    def match(self, num: PhoneNumber, *, valid: bool) -> tuple[str, str] | None:
        """(reason, seed) if the number is blocked, else None."""
        nsn = phonenumbers.national_significant_number(num)
        # An invalid number has no region of its own: use its country's main region.
        region = phonenumbers.region_code_for_number(
            num
        ) or phonenumbers.region_code_for_country_code(num.country_code or 0)
        if valid:
            e164 = _e164(num)
            if e164 in self._full:
                return f"{e164} is a configured {self._full[e164]} number", SEED_BLOCKED
        else:
            if nsn in self._short and num.country_code == phonenumbers.country_code_for_region(
                self._region
            ):
                return f"{nsn} is a configured {self._short[nsn]} short number", SEED_BLOCKED
            # Only short inputs get the prefix match: the exchange connects "1101" to 110 as
            # soon as 110 is complete, but "9115551234" is an ordinary US number.
            if shortnumberinfo.connects_to_emergency_number(nsn, region):
                return f"{nsn} connects to an emergency number in {region}", SEED_BLOCKED
        if valid:
            kind = phonenumbers.number_type(num)
            if kind == PhoneNumberType.PREMIUM_RATE:
                return f"{_e164(num)} is a premium-rate (information service) number", SEED_PREMIUM
            if kind == PhoneNumberType.TOLL_FREE:
                return f"{_e164(num)} is a toll-free (called party pays) number", SEED_BLOCKED
            if kind == PhoneNumberType.SHARED_COST:
                return f"{_e164(num)} is a shared-cost number", SEED_BLOCKED
        return None


@dataclass(frozen=True, slots=True)
class CodeHash:
    salt: bytes
    digest: bytes
    iterations: int

    @classmethod
    def of(cls, code: str, *, iterations: int = 200_000) -> CodeHash:
        salt = secrets.token_bytes(16)
        return cls(salt=salt, digest=_pbkdf2(code, salt, iterations), iterations=iterations)

    def matches(self, code: str) -> bool:
        return hmac.compare_digest(self.digest, _pbkdf2(code, self.salt, self.iterations))


def _pbkdf2(code: str, salt: bytes, iterations: int) -> bytes:
    # Codes are short digit strings: only a slow salted hash makes a leaked config costly.
    return hashlib.pbkdf2_hmac("sha256", code.encode("utf-8"), salt, iterations)


@dataclass(frozen=True, slots=True)
class AuthorisationCodes:
    """Hashed authorisation codes per call class; a code authorises its own class only."""

    hashes: Mapping[CallClass, tuple[CodeHash, ...]] = field(default_factory=dict)

    @classmethod
    def from_plain(
        cls, codes: Mapping[CallClass, Iterable[str]], *, iterations: int = 200_000
    ) -> AuthorisationCodes:
        return cls(
            hashes={
                klass: tuple(CodeHash.of(code, iterations=iterations) for code in plain)
                for klass, plain in codes.items()
            }
        )

    def verify(self, klass: CallClass, code: str) -> bool:
        # Check every hash (no early exit) so timing does not tell which slot matched.
        results = [h.matches(code) for h in self.hashes.get(klass, ())]
        return any(results)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ComplianceGate:
    """Decides whether one outbound dial may go ahead. On by default: construct and call check()."""

    def __init__(
        self,
        *,
        dnc: DoNotCallList,
        blocked: BlockedNumbers,
        codes: AuthorisationCodes | None = None,
        home_region: str = "CN",
        home_area_code: str | None = None,
        local_prefixes: Iterable[str] = (),
        hk_macau_regions: Iterable[str] = ("HK", "MO"),
        caller_ids: Iterable[str] | None = None,
        window: tuple[time, time] = (time(8, 0), time(21, 0)),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        start, end = window
        if not start < end:
            raise ValueError(f"calling window must start before it ends, got {start}-{end}")
        self._dnc = dnc
        self._blocked = blocked
        self._codes = codes if codes is not None else AuthorisationCodes()
        self._region = home_region
        self._country_code = phonenumbers.country_code_for_region(home_region)
        self._area_code = home_area_code
        self._local_prefixes = tuple(local_prefixes)
        self._hk_macau = frozenset(hk_macau_regions)
        self._caller_ids = (
            None
            if caller_ids is None
            else frozenset(normalise(c, region=home_region) for c in caller_ids)
        )
        self._window = (start, end)
        self._clock = clock

    def check(
        self,
        number: str,
        *,
        caller_id: str | None,
        authorisation: str | None = None,
        when: datetime | None = None,
    ) -> Decision:
        at = _require_aware(when if when is not None else self._clock(), what="when")
        shown = str(number).strip()

        def deny(rule: Rule, seed: str, reason: str) -> Decision:
            return Decision(False, rule.value, seed, reason, shown, at)

        # 1. parse
        try:
            parsed = phonenumbers.parse(shown, self._region)
        except (NumberParseException, ValueError, TypeError) as exc:
            return deny(Rule.PARSE, "", f"{shown!r} is not a phone number ({exc})")
        valid = phonenumbers.is_valid_number(parsed)
        if valid:
            shown = _e164(parsed)
        # 2. blocked classes: before validity, since "120" is invalid yet must say "emergency".
        blocked = self._blocked.match(parsed, valid=valid)
        if blocked is not None:
            return deny(Rule.BLOCKED_CLASS, blocked[1], blocked[0])
        if not valid:
            return deny(Rule.PARSE, "", f"{shown!r} is not a valid dialable number")
        # 3. Do-Not-Call; a list we cannot read fails closed.
        try:
            listed = self._dnc.contains_e164(shown, at=at)
        except sqlite3.Error as exc:
            return deny(Rule.DNC, SEED_DNC, f"Do-Not-Call list unavailable ({exc}); not dialling")
        if listed:
            return deny(Rule.DNC, SEED_DNC, f"{shown} is on the Do-Not-Call list")
        # 4. caller ID
        problem = self._caller_id_problem(caller_id)
        if problem is not None:
            return deny(Rule.CALLER_ID, SEED_CALLER_ID, problem)
        # 5. authorisation code by call class
        klass = self.call_class(parsed)
        if klass is not CallClass.LOCAL:
            if not isinstance(authorisation, str) or not authorisation:
                return deny(
                    Rule.AUTHORISATION,
                    SEED_AUTHORISATION,
                    f"{shown} is classed {klass.value}: needs a {klass.value} authorisation code",
                )
            if not self._codes.verify(klass, authorisation):
                return deny(
                    Rule.AUTHORISATION,
                    SEED_AUTHORISATION,
                    f"authorisation code is not valid for {klass.value} calls ({shown})",
                )
        # 6. calling window, last: a denial here means "everything else is fine, retry later".
        problem = self._window_problem(parsed, shown, at)
        if problem is not None:
            return deny(Rule.CALLING_WINDOW, SEED_WINDOW, problem)
        return Decision(True, Rule.ALLOWED.value, "", f"{shown} passed every rule", shown, at)

    def call_class(self, num: PhoneNumber) -> CallClass:
        """Class of a parsed number relative to the site (home region, home area code)."""
        region = phonenumbers.region_code_for_number(num)
        if num.country_code != self._country_code:
            return CallClass.HK_MACAU if region in self._hk_macau else CallClass.INTERNATIONAL
        if self._area_code is None:
            # No area configured: the whole country is one local area.
            return CallClass.LOCAL
        nsn = phonenumbers.national_significant_number(num)
        if any(nsn.startswith(p) for p in self._local_prefixes):
            return CallClass.LOCAL
        area_len = phonenumbers.length_of_geographical_area_code(num)
        if area_len > 0 and nsn[:area_len] == self._area_code.lstrip("0"):
            return CallClass.LOCAL
        # Mobiles and other non-geographic numbers carry no area: fail closed, long distance.
        return CallClass.DOMESTIC_LONG_DISTANCE

    def _caller_id_problem(self, caller_id: str | None) -> str | None:
        if not isinstance(caller_id, str) or not caller_id.strip():
            return "no caller ID presented; every outbound call must identify the caller"
        try:
            e164 = normalise(caller_id, region=self._region)
        except InvalidNumberError:
            return f"caller ID {caller_id!r} is not a valid number"
        if self._caller_ids is not None and e164 not in self._caller_ids:
            return f"caller ID {e164} is not one of the company's numbers"
        return None

    def _window_problem(self, num: PhoneNumber, shown: str, at: datetime) -> str | None:
        start, end = self._window
        zones = pn_timezone.time_zones_for_number(num)
        if not zones or pn_timezone.UNKNOWN_TIMEZONE in zones:
            return f"time zone of {shown} is unknown; cannot prove it is {start:%H:%M}-{end:%H:%M}"
        for name in sorted(zones):
            try:
                local = at.astimezone(ZoneInfo(name))
            except (ZoneInfoNotFoundError, ValueError):
                return f"time zone {name} of {shown} is not in the tz database"
            if not start <= local.time() < end:
                return (
                    f"{shown} local time is {local:%Y-%m-%d %H:%M %Z} in {name}, outside "
                    f"{start:%H:%M}-{end:%H:%M}"
                    + (f" (one of {len(zones)} zones)" if len(zones) > 1 else "")
                )
        return None
