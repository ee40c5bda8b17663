"""Campaign progress in the PBX's store (issue 19): claims written before the dial, read back
by a restarted dialer, and damaged content refused with a message instead of re-dialling.

Real SQLite files under tmp_path; the dialer (`Outbound`) runs on a real call distributor."""

from __future__ import annotations

import logging
import random
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.contract.payloads import CallEvent
from gateway.pbx.acd import Acd
from gateway.pbx.compliance import DoNotCallList
from gateway.pbx.outbound import Outbound
from gateway.pbx.progress import CampaignProgress, ClaimState, ProgressError
from gateway.pbx.settings import Callees, Compliance

T0 = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
A, B, C = "+862161234501", "+862161234502", "+862161234503"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "pbx.db"


# --- the store ---------------------------------------------------------------------------


def test_a_claim_is_taken_once_and_settled(store: Path) -> None:
    p = CampaignProgress(store)
    assert p.claims("renewals") == {}
    assert p.claim("renewals", A, at=T0) is True
    assert p.claim("renewals", A, at=T0 + timedelta(seconds=1)) is False  # taken already
    assert p.claim("winback", A, at=T0) is True  # another campaign, another list
    assert p.claim("renewals", B, at=T0) is True
    p.dialled("renewals", A, 40213)
    p.denied("renewals", B)
    claims = p.claims("renewals")
    assert {n: (c.state, c.call, c.at) for n, c in claims.items()} == {
        A: (ClaimState.DIALLED, 40213, T0),
        B: (ClaimState.DENIED, None, T0),
    }
    assert p.claims("winback")[A].state is ClaimState.DIALLING
    with pytest.raises(ProgressError, match="was not claimed for a dial"):
        p.dialled("renewals", A, 40214)  # settled already: a second dial of it is a bug
    with pytest.raises(ProgressError, match="was not claimed for a dial"):
        p.denied("renewals", C)
    with pytest.raises(ValueError, match="not an E.164 number"):
        p.claim("renewals", "021 6123 4501", at=T0)
    p.close()


def test_a_claim_is_committed_before_claim_returns(store: Path) -> None:
    writer = CampaignProgress(store)
    assert writer.claim("renewals", A, at=T0)
    # Another connection (a restarted PBX) sees it at once: nothing waits for a later commit
    # or a clean close.
    reader = CampaignProgress(store)
    assert reader.claims("renewals")[A].state is ClaimState.DIALLING
    assert reader.claim("renewals", A, at=T0) is False  # a second PBX on the store: not its
    reader.close()
    writer.close()


def test_a_claim_survives_a_killed_process(store: Path) -> None:
    # Claimed, then SIGKILLed before the dial was recorded: the claim is on disk.
    script = ("import os, signal, sys\nfrom datetime import UTC, datetime\n"
              "from gateway.pbx.progress import CampaignProgress\n"
              "p = CampaignProgress(sys.argv[1])\n"
              f"p.claim('renewals', '{A}', at=datetime.now(UTC))\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script, str(store)], capture_output=True,
                         timeout=30, check=False)  # fmt: skip
    assert out.returncode == -9, out.stderr
    assert CampaignProgress(store).claims("renewals")[A].state is ClaimState.DIALLING


def damage(store: Path, sql: str, *args: Any) -> None:
    """Change the store's rows as a bad tool or a bad disk would, past the table's checks."""
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute(sql, args)


@pytest.mark.parametrize(
    ("sql", "args", "message"),
    [
        ("UPDATE campaign_progress SET state = ?", ("called",), "unknown state 'called'"),
        ("UPDATE campaign_progress SET number = ?", ("021 6123 4501",),
         "number '021 6123 4501' is not an E.164 number"),
        ("UPDATE campaign_progress SET at = ?", ("yesterday",), "time 'yesterday' is not"),
        ("UPDATE campaign_progress SET at = ?", ("2024-06-03T02:00:00",),
         "is not an ISO-8601 time with its zone"),
        ("UPDATE campaign_progress SET call = ?", ("x",), "call 'x' is not a call id"),
        ("UPDATE campaign_progress SET call = NULL", (), "dialled without a call id"),
    ],
)  # fmt: skip
def test_damaged_rows_are_refused_by_row(store: Path, sql: str, args: tuple[Any, ...],
                                         message: str) -> None:  # fmt: skip
    p = CampaignProgress(store)
    p.claim("renewals", A, at=T0)
    p.dialled("renewals", A, 7)
    p.close()
    damage(store, sql, *args)
    with pytest.raises(ProgressError, match=r"pbx\.db, campaign 'renewals', row 1") as err:
        CampaignProgress(store)
    assert message in str(err.value)


def test_a_table_of_another_shape_is_refused(store: Path) -> None:
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE campaign_progress (campaign TEXT, next INTEGER)")
    with pytest.raises(ProgressError, match="has columns campaign, next, expected campaign, "
                                            "number, state, at, call"):  # fmt: skip
        CampaignProgress(store)


def test_a_file_that_is_no_database_is_refused(store: Path) -> None:
    store.write_bytes(b"not a database, but long enough to look like a header" * 40)
    with pytest.raises(ProgressError, match="cannot read the store .*file is not a database"):
        CampaignProgress(store)


def test_a_damaged_table_page_is_refused(store: Path) -> None:
    p = CampaignProgress(store)
    for i in range(400):  # a few pages of claims
        p.claim("renewals", f"+8621612{34000 + i}", at=T0)
    p.close()
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = "
                             "'sqlite_autoindex_campaign_progress_1'").fetchone()  # fmt: skip
        (size,) = db.execute("PRAGMA page_size").fetchone()
    data = bytearray(store.read_bytes())
    data[(root - 1) * size: root * size] = b"\xff" * size  # the claims' index, overwritten
    store.write_bytes(bytes(data))
    with pytest.raises(ProgressError, match=r"pbx\.db: cannot read it \(database disk image is "
                                            r"malformed\); the store is damaged"):  # fmt: skip
        CampaignProgress(store)


def test_seatlink_pbx_refuses_a_damaged_store_before_it_connects(tmp_path: Path) -> None:
    campaign = tmp_path / "renewals.toml"
    campaign.write_text('name = "renewals"\ncaller_id = "+862160000000"\nqueue = "support"\n'
                        f'[[number]]\nnumber = "{A}"\n')  # fmt: skip
    p = CampaignProgress(tmp_path / "pbx.db")
    p.claim("renewals", A, at=T0)
    p.close()
    damage(tmp_path / "pbx.db", "UPDATE campaign_progress SET state = 'maybe'")
    cfg = tmp_path / "pbx.toml"
    # no broker runs on port 9: the refusal comes before any connection is tried
    cfg.write_text('store = "pbx.db"\n[dialer]\ncampaigns = ["renewals.toml"]\n'
                   '[compliance]\ndnc = "dnc.db"\n[broker]\nport = 9\n')  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "pbx", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "campaign 'renewals', row 1" in out.stderr and "unknown state 'maybe'" in out.stderr


# --- the dialer on the store ---------------------------------------------------------------


def write_campaign(path: Path, numbers: list[str], ring_limit: int = 1) -> Path:
    path.write_text('name = "renewals"\ncaller_id = "+862160000000"\nqueue = "sales"\n'
                    f"ring_limit = {ring_limit}\n" + "".join(f'[[number]]\nnumber = "{n}"\n'
                                                 for n in numbers))  # fmt: skip
    return path


class Crash(BaseException):
    """The process ends here: nothing after it runs, no clean-up."""


class Dialer:
    """The dialer on a real call distributor with two Ready agents; `placed` is every number
    the distributor was asked to dial. `crash_on`: the dial (1, 2, ...) at which the process
    dies, the claim written and the call not placed."""

    def __init__(self, tmp_path: Path, numbers: list[str], crash_on: int | None = None) -> None:
        self.acd = Acd(pbx="p1", queues={"sales": ["s1", "s2"]}, first_call=100, ring_ms=1000)
        for i, seat in enumerate(("s1", "s2")):
            self.acd.seat_state(seat, state="ready", as_of=float(i))
        self.placed: list[str] = []
        real = self.acd.dial

        def dial(**kw: Any) -> int:
            if crash_on is not None and len(self.placed) + 1 == crash_on:
                raise Crash
            self.placed.append(kw["number"])
            return real(**kw)

        self.acd.dial = dial  # type: ignore[method-assign]
        self.out = Outbound(pbx="p1", acd=self.acd,
                            compliance=Compliance(dnc=tmp_path / "dnc.db"),
                            callees=Callees(answer_p=0.0),
                            campaigns=[write_campaign(tmp_path / "renewals.toml", numbers)],
                            store=tmp_path / "pbx.db", rng=random.Random(1),
                            publish=lambda m: None, wall=lambda: T0)  # fmt: skip

    def run_through(self, at: float) -> float:
        """Tick until the campaign has nothing left; the time it ended."""
        while self.out.health()["renewals"].remaining:
            self.out.tick(at=at)
            at += 1.0
            self.acd.tick(at)  # the lines ring out after their one ring
            for event in self.acd.take():
                if isinstance(event, CallEvent):
                    self.out.on_call_event(event)
        return at

    def health(self) -> tuple[int, int, int]:
        h = self.out.health()["renewals"]
        return h.dialled, h.denied, h.remaining


def test_a_crash_between_the_claim_and_the_dial_leaves_the_number_undialled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    first = Dialer(tmp_path, [A, B, C], crash_on=2)
    with pytest.raises(Crash):
        first.out.tick(at=10.0)  # two Ready agents: A is dialled, the PBX dies placing B
    assert first.placed == [A]
    # the restarted PBX: A dialled, B claimed with no dial recorded, C left
    with caplog.at_level(logging.INFO, logger="seatlink.pbx"):
        again = Dialer(tmp_path, [A, B, C])
    said = " | ".join(r.getMessage() for r in caplog.records)
    assert "campaign renewals: 2 of 3 numbers already taken" in said
    assert "(1 dialled, 0 denied, 1 claimed with no dial recorded); 1 left" in said
    assert "1 numbers were claimed but no dial was recorded" in said
    assert again.health() == (2, 0, 1)
    again.run_through(20.0)
    assert again.placed == [C]  # B is never placed: the safe side for the consumer
    assert again.health() == (3, 0, 0)
    assert CampaignProgress(tmp_path / "pbx.db").claims("renewals")[B].state is (
        ClaimState.DIALLING)


def test_an_edited_campaign_dials_only_what_was_never_taken(tmp_path: Path) -> None:
    first = Dialer(tmp_path, [A, B])
    first.run_through(10.0)
    assert first.placed == [A, B]
    first.out.close()
    # The file edited between runs: reordered, one added. The numbers are what count.
    again = Dialer(tmp_path, [B, C, A])
    assert again.health() == (2, 0, 1)
    again.run_through(20.0)
    assert again.placed == [C]


def test_a_denied_number_is_taken_and_the_gate_not_asked_again(tmp_path: Path) -> None:
    DoNotCallList(tmp_path / "dnc.db").add(B, at=T0 - timedelta(days=1))
    first = Dialer(tmp_path, [A, B, C])
    first.out.tick(at=10.0)  # two lines: A dialled, B denied
    assert first.placed == [A] and first.health() == (1, 1, 1)
    first.out.close()
    again = Dialer(tmp_path, [A, B, C])
    assert again.health() == (1, 1, 1)
    again.run_through(20.0)
    assert again.placed == [C]
    asked = [d.decision.number for d in again.out.decisions.recent(10)]
    assert sorted(asked) == [A, B, C]  # one decision each, across the two runs


def test_a_campaign_ringing_longer_than_the_pbx_allows_is_refused_at_start(
        tmp_path: Path) -> None:  # fmt: skip
    # Else its first dial fails after the claim, and every restart loses one more number.
    with pytest.raises(ValueError, match="ring_limit 8 is above outbound_rings 6"):
        Outbound(pbx="p1", acd=Acd(pbx="p1", queues={"sales": ["s1"]}),
                 compliance=Compliance(dnc=tmp_path / "dnc.db"), callees=Callees(),
                 campaigns=[write_campaign(tmp_path / "renewals.toml", [A], ring_limit=8)],
                 store=tmp_path / "pbx.db", rng=random.Random(1),
                 publish=lambda m: None)  # fmt: skip
