"""The outbound dialer's stores: the outcome ledger behind the 3 % drop rate, the compliance
decision store, and the masked decision message.

Campaign files are read by `gateway.pbx.campaign`, the dial ratio is paced by
`gateway.pbx.pacing`; both are re-exported here so the dialer has one module to import.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException

from gateway.contract.payloads import ComplianceDecisionMessage
from gateway.pbx.campaign import Campaign, CampaignError, CampaignNumber, load_campaign
from gateway.pbx.compliance import Decision
from gateway.pbx.pacing import TARGET_DROP_RATE, Pacer

__all__ = [
    "LEDGER_RETENTION_DAYS",
    "TARGET_DROP_RATE",
    "Campaign",
    "CampaignError",
    "CampaignNumber",
    "DecisionStore",
    "DialLedger",
    "Outcome",
    "Pacer",
    "StoredDecision",
    "decision_message",
    "load_campaign",
    "mask",
]

DROP_WINDOW_DAYS = 30  # the safe harbour's period
LEDGER_RETENTION_DAYS = 90  # rows kept for the 30-day window plus two more for audit


class Outcome(StrEnum):
    ANSWERED = "answered"  # the callee answered and an agent was connected
    DROP = "drop"  # the callee answered and no agent was free within 2 seconds
    NO_ANSWER = "no_answer"  # unanswered within the campaign's ring limit (seed 003: 6 rings)
    BUSY = "busy"
    DENIED = "denied"  # the compliance gate refused the dial


def _aware(when: datetime, *, what: str) -> datetime:
    # As in compliance.py: a naive time is a programming error; guessing its zone would move
    # rows across the 30-day boundary.
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {when!r}")
    return when.astimezone(UTC)


def _connect(path: str | Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path))
    # Write-ahead log: a commit per call costs one sync of the log, and the health reader
    # never waits for the dialer's writes. synchronous stays FULL: a recorded drop survives a
    # power cut. (":memory:" keeps its own journal; WAL needs a local file system.)
    db.execute("PRAGMA journal_mode=WAL")
    return db


def _iso(when: datetime) -> str:
    # UTC, fixed width: compares as text in SQL.
    return when.astimezone(UTC).isoformat(timespec="microseconds")


class DialLedger:
    """Outcome of every campaign call, in SQLite (a file or ":memory:").

    One row per (campaign, call, outcome): recording it again changes nothing. Rows are kept
    `LEDGER_RETENTION_DAYS` (90) and removed by `purge`. A window of `days` ending at `at`
    holds the rows with `at - days < row time <= at`: a row exactly 30 days old is outside.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = _connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dial_outcome ("
            " campaign TEXT NOT NULL,"
            " call INTEGER NOT NULL,"
            " outcome TEXT NOT NULL,"
            " at TEXT NOT NULL,"  # UTC ISO-8601, fixed width
            " PRIMARY KEY (campaign, call, outcome))"
        )
        self._db.execute(
            # Covers drop_counts and counts: they read the index only.
            "CREATE INDEX IF NOT EXISTS dial_outcome_by_kind"
            " ON dial_outcome (campaign, outcome, at, call)"
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def record(self, campaign: str, call: int, outcome: Outcome | str, at: datetime) -> bool:
        """Record an outcome; True if new, False if (campaign, call, outcome) was there."""
        kind = Outcome(outcome)  # ValueError names the bad value
        cur = self._db.execute(
            "INSERT OR IGNORE INTO dial_outcome (campaign, call, outcome, at) VALUES (?, ?, ?, ?)",
            (campaign, call, kind.value, _iso(_aware(at, what="at"))),
        )
        # Commit now: the drop rate other connections read must include this call.
        self._db.commit()
        return cur.rowcount == 1

    def counts(
        self, campaign: str, *, at: datetime, days: float = DROP_WINDOW_DAYS
    ) -> dict[str, int]:
        """Rows per outcome in the window, every outcome present (0 when none)."""
        start, end = self._window(at, days)
        out = {kind.value: 0 for kind in Outcome}
        for outcome, n in self._db.execute(
            "SELECT outcome, COUNT(*) FROM dial_outcome"
            " WHERE campaign = ? AND at > ? AND at <= ? GROUP BY outcome",
            (campaign, start, end),
        ):
            out[outcome] = n
        return out

    def drop_rate(self, campaign: str, *, at: datetime, days: float = DROP_WINDOW_DAYS) -> float:
        """Drops / live answers (answered + drops) in the window; 0.0 when there were none."""
        drops, live = self.drop_counts(campaign, at=at, days=days)
        return drops / live if live else 0.0

    def drop_counts(
        self, campaign: str, *, at: datetime, days: float = DROP_WINDOW_DAYS
    ) -> tuple[int, int]:
        """(drops, live answers) in the window, the two terms of `drop_rate`.

        Calls are counted once: a call recorded both as a drop and as answered (an agent came
        after the 2 seconds) is one live answer and one drop."""
        start, end = self._window(at, days)
        drops, live = self._db.execute(
            "SELECT COUNT(DISTINCT CASE WHEN outcome = 'drop' THEN call END),"
            " COUNT(DISTINCT call) FROM dial_outcome"
            " WHERE campaign = ? AND outcome IN ('answered', 'drop') AND at > ? AND at <= ?",
            (campaign, start, end),
        ).fetchone()
        return int(drops), int(live)

    def purge(self, *, at: datetime) -> int:
        """Delete rows older than the 90-day retention at `at`; returns how many went."""
        cutoff = _iso(_aware(at, what="at") - timedelta(days=LEDGER_RETENTION_DAYS))
        cur = self._db.execute("DELETE FROM dial_outcome WHERE at <= ?", (cutoff,))
        self._db.commit()
        return cur.rowcount

    @staticmethod
    def _window(at: datetime, days: float) -> tuple[str, str]:
        if not 0 < days <= LEDGER_RETENTION_DAYS:
            raise ValueError(f"days must be in (0, {LEDGER_RETENTION_DAYS}], got {days!r}")
        end = _aware(at, what="at")
        return _iso(end - timedelta(days=days)), _iso(end)


@dataclass(frozen=True, slots=True)
class StoredDecision:
    row_id: int
    decision: Decision  # with the full number
    campaign: str | None
    seat: str | None
    call: int | None
    caller_id: str | None


class DecisionStore:
    """Every compliance decision with its full number: the PBX's own store (a file or
    ":memory:"). What leaves the PBX is masked: see `decision_message`.

    Row ids are never reused (AUTOINCREMENT), so `<pbx>-d<row id>` is a unique message id."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = _connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS decision ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " at TEXT NOT NULL,"  # UTC ISO-8601, fixed width
            " allowed INTEGER NOT NULL,"
            " rule TEXT NOT NULL,"
            " seed TEXT NOT NULL,"
            " reason TEXT NOT NULL,"
            " number TEXT NOT NULL,"
            " caller_id TEXT,"
            " campaign TEXT,"
            " seat TEXT,"
            " call INTEGER)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS decision_by_time ON decision (at)")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        decision: Decision,
        *,
        campaign: str | None,
        seat: str | None,
        call: int | None,
        caller_id: str | None,
    ) -> int:
        """Store a decision; returns its row id (1, 2, ...)."""
        cur = self._db.execute(
            "INSERT INTO decision (at, allowed, rule, seed, reason, number, caller_id,"
            " campaign, seat, call) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _iso(_aware(decision.at, what="decision.at")),
                int(decision.allowed),
                decision.rule,
                decision.seed,
                decision.reason,
                decision.number,
                caller_id,
                campaign,
                seat,
                call,
            ),
        )
        self._db.commit()
        row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    def attach_call(self, row_id: int, call: int) -> None:
        """The call an allowed dial placed (known only once it was placed)."""
        self._db.execute("UPDATE decision SET call = ? WHERE id = ?", (call, row_id))
        self._db.commit()

    def recent(self, limit: int = 50) -> list[StoredDecision]:
        """The `limit` latest decisions, newest first."""
        if limit < 0:
            raise ValueError(f"limit cannot be negative, got {limit}")
        rows = self._db.execute(
            "SELECT id, at, allowed, rule, seed, reason, number, caller_id, campaign, seat, call"
            " FROM decision ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            StoredDecision(
                row_id=row_id,
                decision=Decision(
                    allowed=bool(allowed),
                    rule=rule,
                    seed=seed,
                    reason=reason,
                    number=number,
                    at=datetime.fromisoformat(at),
                ),
                campaign=campaign,
                seat=seat,
                call=call,
                caller_id=caller_id,
            )
            for (
                row_id,
                at,
                allowed,
                rule,
                seed,
                reason,
                number,
                caller_id,
                campaign,
                seat,
                call,
            ) in rows
        ]

    def count_by_rule(self, since: datetime) -> dict[str, int]:
        """Decisions per rule id (`allowed` included) taken at or after `since`."""
        return dict(
            self._db.execute(
                "SELECT rule, COUNT(*) FROM decision WHERE at >= ? GROUP BY rule ORDER BY rule",
                (_iso(_aware(since, what="since")),),
            ).fetchall()
        )


def mask(number: str) -> str:
    """ "***" and the last four digits: "+86 21 6123 4568" -> "***4568"; "120" -> "***"."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "***" + digits[-4:] if len(digits) >= 4 else "***"


def _mask_in(text: str, number: str, region: str) -> str:
    """`text` with every spelling of `number` the gate writes in reasons masked."""
    spellings = {number.strip()}
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits:
        spellings.add(digits)
    try:
        # The gate writes a short number by its national significant number ("120").
        spellings.add(phonenumbers.national_significant_number(phonenumbers.parse(number, region)))
    except NumberParseException:
        pass
    spellings.discard("")
    shown = mask(number)
    # Longest first, so "+862161234568" is masked whole rather than its digits inside it.
    for spelling in sorted(spellings, key=len, reverse=True):
        text = re.sub(rf"(?<![\d*]){re.escape(spelling)}(?!\d)", shown, text)
    return text


def decision_message(
    decision: Decision,
    *,
    pbx: str,
    row_id: int,
    campaign: str | None,
    seat: str | None,
    call: int | None,
    caller_id: str | None,
    region: str = "CN",
) -> ComplianceDecisionMessage:
    """The pbx/{pbx}/compliance payload for a stored decision: the number masked, in the
    `number` field and in the reason text alike (`region`: the gate's home region, in which
    it read national spellings)."""
    return ComplianceDecisionMessage(
        id=f"{pbx}-d{row_id}",
        pbx=pbx,
        allowed=decision.allowed,
        rule=decision.rule,
        seed=decision.seed,
        reason=_mask_in(decision.reason, decision.number, region),
        number=mask(decision.number),
        caller_id=caller_id,
        campaign=campaign,
        seat=seat,
        call=call,
        at=_aware(decision.at, what="decision.at").timestamp(),
    )
