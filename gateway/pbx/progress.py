"""Campaign progress in the PBX's store: which numbers of a campaign are taken (issue 19).

A number is claimed here, committed, before the compliance gate is asked and before the dial
is placed (write-ahead). A restarted PBX reads the claims and never dials a claimed number of
that campaign again. The cost of the order: a PBX that stops between the claim and the dial
leaves a number claimed and not dialled, and it stays so. That is the safe side for the
consumer: a missed call can be made by hand, a second call cannot be taken back
(rules-from-seeds, TCPA).

States of a claim:
- `dialling`: claimed; the gate's answer and the dial were not recorded after it. Either the
  dial is under way, or the PBX stopped before or just after placing it.
- `dialled`: the dial was placed (`call` is its call id).
- `denied`: the gate refused the number; nothing was placed. A campaign does not try it again.

Content that does not read as a claim (a wrong table, an unknown state, a number that is not
E.164, a damaged file) stops the PBX with `ProgressError`: guessing would mean re-dialling.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from gateway.pbx.dialer import _aware, _connect, _iso

TABLE = "campaign_progress"
COLUMNS = ("campaign", "number", "state", "at", "call")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class ProgressError(ValueError):
    """The store's campaign progress cannot be read: the PBX must not guess."""


class ClaimState(StrEnum):
    DIALLING = "dialling"
    DIALLED = "dialled"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Claim:
    number: str  # E.164
    state: ClaimState
    at: datetime
    call: int | None


class CampaignProgress:
    """The claims of every campaign, in the PBX's SQLite store (a file or ":memory:")."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = _connect(path)
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " campaign TEXT NOT NULL,"
                " number TEXT NOT NULL,"  # E.164, as the campaign's entries are compared
                " state TEXT NOT NULL CHECK (state IN ('dialling', 'dialled', 'denied')),"
                " at TEXT NOT NULL,"  # UTC ISO-8601, fixed width: when it was claimed
                " call INTEGER,"
                " PRIMARY KEY (campaign, number))"
            )
            self._db.commit()
            columns = tuple(row[1] for row in self._db.execute(f"PRAGMA table_info({TABLE})"))
        except sqlite3.DatabaseError as exc:
            raise ProgressError(
                f"campaign progress in {self.path}: cannot read the store ({exc}); it is not "
                "an SQLite file or it is damaged"
            ) from exc
        if columns != COLUMNS:
            self._db.close()
            raise ProgressError(
                f"campaign progress in {self.path}: table {TABLE} has columns "
                f"{', '.join(columns)}, expected {', '.join(COLUMNS)}; it was not written by "
                "this PBX"
            )
        try:
            # Every row first, for a message that names the row; then SQLite's own check, for
            # damage no row shows (an index that disagrees with its table). Checked on this
            # table only: the decisions and the ledger in the same file can be large, and the
            # claims are what a wrong answer would re-dial.
            self._read(None)
            check = [row[0] for row in self._db.execute(f"PRAGMA quick_check({TABLE})")]
        except (ProgressError, sqlite3.DatabaseError) as exc:
            self._db.close()
            if isinstance(exc, ProgressError):
                raise
            raise ProgressError(f"campaign progress in {self.path}: cannot read it ({exc}); "
                                "the store is damaged") from exc  # fmt: skip
        if check != ["ok"]:
            self._db.close()
            raise ProgressError(f"campaign progress in {self.path} is damaged: "
                                f"{'; '.join(map(str, check[:5]))}")  # fmt: skip

    def close(self) -> None:
        self._db.close()

    def claims(self, campaign: str) -> dict[str, Claim]:
        """Every claim of `campaign`, by number. ProgressError names the first row that does
        not read as a claim."""
        return self._read(campaign)

    def _read(self, campaign: str | None) -> dict[str, Claim]:
        """The claims of `campaign` (None: of every campaign, for the check)."""
        out: dict[str, Claim] = {}
        try:
            rows = self._db.execute(
                f"SELECT rowid, campaign, number, state, at, call FROM {TABLE}"
                " WHERE ?1 IS NULL OR campaign = ?1 ORDER BY campaign, at, rowid",
                (campaign,),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise ProgressError(f"campaign progress in {self.path}: cannot read it ({exc}); "
                                "the store is damaged") from exc  # fmt: skip
        for rowid, name, number, state, at, call in rows:
            where = f"campaign progress in {self.path}, campaign {name!r}, row {rowid}"
            if not isinstance(number, str) or not E164.fullmatch(number):
                raise ProgressError(f"{where}: number {number!r} is not an E.164 number")
            try:
                kind = ClaimState(state)
            except ValueError:
                raise ProgressError(f"{where} ({number}): unknown state {state!r}") from None
            try:
                when = _aware(datetime.fromisoformat(at), what="at")
            except (TypeError, ValueError):
                raise ProgressError(f"{where} ({number}): time {at!r} is not an "
                                    "ISO-8601 time with its zone") from None  # fmt: skip
            if call is not None and (isinstance(call, bool) or not isinstance(call, int)
                                     or call < 1):  # fmt: skip
                raise ProgressError(f"{where} ({number}): call {call!r} is not a call id")
            if kind is ClaimState.DIALLED and call is None:
                raise ProgressError(f"{where} ({number}): dialled without a call id")
            out[number] = Claim(number=number, state=kind, at=when, call=call)
        return out

    def claim(self, campaign: str, number: str, *, at: datetime) -> bool:
        """Take `number` for a dial, committed before returning: True if it is this caller's
        to dial, False if it was taken already (by an earlier run, or another PBX on the
        same store). Only a True may lead to a dial."""
        if not E164.fullmatch(number):
            raise ValueError(f"not an E.164 number: {number!r}")
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO {TABLE} (campaign, number, state, at, call)"
            " VALUES (?, ?, 'dialling', ?, NULL)",
            (campaign, number, _iso(_aware(at, what="at"))),
        )
        # The write-ahead: durable (WAL, synchronous FULL) before anything is dialled.
        self._db.commit()
        return cur.rowcount == 1

    def dialled(self, campaign: str, number: str, call: int) -> None:
        self._settle(campaign, number, ClaimState.DIALLED, call)

    def denied(self, campaign: str, number: str) -> None:
        self._settle(campaign, number, ClaimState.DENIED, None)

    def _settle(self, campaign: str, number: str, state: ClaimState, call: int | None) -> None:
        cur = self._db.execute(
            f"UPDATE {TABLE} SET state = ?, call = ? WHERE campaign = ? AND number = ?"
            " AND state = 'dialling'",
            (state.value, call, campaign, number),
        )
        self._db.commit()
        if cur.rowcount != 1:
            raise ProgressError(f"campaign progress in {self.path}: {campaign!r} {number} was "
                                "not claimed for a dial")  # fmt: skip


def count(claims: Iterable[Claim]) -> dict[ClaimState, int]:
    """Claims per state, every state present."""
    out = dict.fromkeys(ClaimState, 0)
    for c in claims:
        out[c.state] += 1
    return out
