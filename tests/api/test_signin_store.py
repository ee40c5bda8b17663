"""Agents at seats in the account store (gateway/api/accounts.py, issue 19), on SQLite and on
PostgreSQL alike (the fixtures of test_accounts.py): the rules, each seat's latest change
(what seat/{seat}/agent carries) and the history of sign-in intervals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gateway.api.accounts import AccountError, AccountStore, Role, SignIn, open_accounts
from tests.databases import empty_database

NOW = 1_795_430_600.0
PASSWORD = "Correct-h0rse-battery"


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, tmp_path, "signins") as url:
        yield url


@pytest.fixture
def store(accounts_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AccountStore]:
    monkeypatch.setattr(AccountStore, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                               parallelism=1))  # fmt: skip
    with open_accounts(accounts_url) as opened:
        for username, role, agent in (("ann.lee", Role.AGENT, "a1"),
                                      ("bob.ray", Role.AGENT, "a2"),
                                      ("sam.okafor", Role.SUPERVISOR, None),
                                      ("ada.lovelace", Role.ADMIN, None)):  # fmt: skip
            opened.create_user(username=username, password=PASSWORD, role=role, agent=agent,
                               full_name=username.replace(".", " ").title(), now=NOW)  # fmt: skip
        yield opened


def seats(store: AccountStore) -> dict[str, tuple[str | None, str, str | None]]:
    """seat -> (agent, cause, previous) of its latest change."""
    return {r.seat: (r.agent, r.cause, r.previous) for r in store.seat_agents()}


def test_a_sign_in_and_its_sign_out(store: AccountStore) -> None:
    change = store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW)
    assert change.signin is not None and change.moved_from is None
    assert (change.signin.seat, change.signin.agent, change.signin.in_cause) == ("s1", "a1",
                                                                                "self")
    (record,) = change.seats
    assert (record.agent, record.name, record.by, record.t, record.published) == (
        "a1", "Ann Lee", "ann.lee", NOW, False)  # fmt: skip
    assert store.signin_of("ann.lee") == change.signin
    # the same seat again: nothing changes
    again = store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW + 1)
    assert again.seats == () and again.signin == change.signin
    out = store.sign_out(username="ann.lee", by="ann.lee", now=NOW + 60)
    assert out.ended is not None and (out.ended.signed_out, out.ended.out_cause) == (NOW + 60,
                                                                                     "self")
    assert seats(store) == {"s1": (None, "self", "a1")}
    assert out.seats[0].change != record.change  # every change has its own id
    assert store.signin_of("ann.lee") is None
    assert store.last_signout("ann.lee") == out.ended
    with pytest.raises(AccountError, match="not signed in at any seat") as caught:
        store.sign_out(username="ann.lee", by="ann.lee", now=NOW + 61)
    assert caught.value.code == "not_signed_in"
    with pytest.raises(AccountError, match="nobody is signed in at seat s1"):
        store.sign_out(seat="s1", by="sam.okafor", cause="supervisor")


def test_one_agent_at_one_seat_a_move(store: AccountStore) -> None:
    store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW)
    moved = store.sign_in(seat="s2", username="ann.lee", by="ann.lee", now=NOW + 10)
    assert moved.moved_from == "s1"
    assert [r.seat for r in moved.seats] == ["s1", "s2"]
    assert seats(store) == {"s1": (None, "moved", "a1"), "s2": ("a1", "self", None)}
    assert [(s.seat, s.signed_out, s.out_cause) for s in store.signins(since=0, until=NOW * 2)
            ] == [("s1", NOW + 10, "moved"), ("s2", None, None)]  # fmt: skip
    assert [s.seat for s in store.signed_in()] == ["s2"]


def test_one_agent_per_seat_unless_a_supervisor(store: AccountStore, accounts_url: str) -> None:
    store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW)
    before = (store.seat_agents(), store.signins(since=0, until=NOW * 2))
    with pytest.raises(AccountError, match=r"seat s1 is taken: Ann Lee \(ann.lee, agent a1\)"
                       ) as caught:  # fmt: skip
        store.sign_in(seat="s1", username="bob.ray", by="bob.ray", now=NOW + 1)
    assert caught.value.code == "seat_taken"
    assert (store.seat_agents(), store.signins(since=0, until=NOW * 2)) == before
    over = store.sign_in(seat="s1", username="bob.ray", by="sam.okafor", supervisor=True,
                         now=NOW + 2)  # fmt: skip
    assert over.replaced is not None and over.replaced.username == "ann.lee"
    assert (over.replaced.out_cause, over.replaced.signed_out_by) == ("supervisor",
                                                                      "sam.okafor")  # fmt: skip
    assert over.signin is not None and over.signin.in_cause == "supervisor"
    assert seats(store) == {"s1": ("a2", "supervisor", "a1")}
    assert store.signin_of("ann.lee") is None


def test_only_enabled_agents_with_an_agent_id(store: AccountStore) -> None:
    for username in ("sam.okafor", "ada.lovelace"):
        with pytest.raises(AccountError, match="is not an agent") as caught:
            store.sign_in(seat="s1", username=username, by="sam.okafor", supervisor=True)
        assert caught.value.code == "not_agent"
    with pytest.raises(AccountError) as unknown:
        store.sign_in(seat="s1", username="nobody.here", by="sam.okafor", supervisor=True)
    assert unknown.value.code == "unknown_user"
    for bad in ("s 1", "", "s1/x", "+", "x" * 65):
        with pytest.raises(AccountError, match="is not 1-64 characters") as caught:
            store.sign_in(seat=bad, username="ann.lee", by="ann.lee")
        assert caught.value.code == "bad_seat"
    store.update_user("bob.ray", disabled=True, by="ada.lovelace")
    with pytest.raises(AccountError, match="disabled"):
        store.sign_in(seat="s1", username="bob.ray", by="sam.okafor", supervisor=True)
    assert store.seat_agents() == [] and store.signed_in() == []


@pytest.mark.parametrize("change", [{"disabled": True}, {"role": Role.SUPERVISOR, "agent": ""},
                                    {"agent": "a9"}])  # fmt: skip
def test_a_changed_account_is_signed_out(store: AccountStore, change: dict[str, object]) -> None:
    store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW)
    store.update_user("ann.lee", **change, by="ada.lovelace")  # type: ignore[arg-type]
    (record,) = store.seat_agents()
    assert (record.agent, record.cause, record.by, record.previous) == (None, "account",
                                                                        "ada.lovelace", "a1")
    assert store.signin_of("ann.lee") is None
    # a change that keeps the agent an agent keeps it signed in
    store.sign_in(seat="s2", username="bob.ray", by="bob.ray", now=NOW)
    store.update_user("bob.ray", full_name="Bob Ray Jr", by="ada.lovelace")
    assert store.signin_of("bob.ray") is not None


def test_published_is_kept_per_change(store: AccountStore) -> None:
    first = store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW).seats[0]
    assert [r.seat for r in store.seat_agents(unpublished_only=True)] == ["s1"]
    assert store.mark_published("s1", first.change)
    assert store.seat_agents(unpublished_only=True) == []
    later = store.sign_out(seat="s1", by="sam.okafor", cause="supervisor").seats[0]
    # a late acknowledgement of the first change does not mark the later one
    assert not store.mark_published("s1", first.change)
    assert [r.change for r in store.seat_agents(unpublished_only=True)] == [later.change]


def test_the_history_of_a_day(store: AccountStore) -> None:
    day = 86400.0
    start = NOW - NOW % day  # a UTC midnight
    store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=start - 3600)  # the eve
    store.sign_in(seat="s2", username="ann.lee", by="ann.lee", now=start + 3600)
    store.sign_in(seat="s3", username="bob.ray", by="bob.ray", now=start + 2 * 3600)
    store.sign_out(username="bob.ray", by="bob.ray", now=start + 3 * 3600)
    store.sign_in(seat="s4", username="bob.ray", by="bob.ray", now=start + day + 60)

    def seats_of(since: float, until: float) -> list[str]:
        found: list[SignIn] = store.signins(since=since, until=until)
        return [s.seat for s in found]

    assert seats_of(start, start + day) == ["s1", "s2", "s3"]  # s1 ran into the day
    assert seats_of(start - day, start) == ["s1"]
    assert seats_of(start + day, start + 2 * day) == ["s2", "s4"]  # s2 is still open


def test_the_rules_hold_in_the_database_too(store: AccountStore, accounts_url: str) -> None:
    """One open sign-in per agent and per seat, whatever a writer forgets."""
    from test_accounts import sql

    store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW)
    with pytest.raises(Exception, match="(?i)unique"):
        sql(accounts_url, "INSERT INTO account_signins (seat, agent, username, name, "
            "signed_in, signed_in_by, in_cause) VALUES ('s2', 'a1', 'ann.lee', 'Ann', 1, "
            "'x', 'self')")  # fmt: skip
    with pytest.raises(Exception, match="(?i)unique"):
        sql(accounts_url, "INSERT INTO account_signins (seat, agent, username, name, "
            "signed_in, signed_in_by, in_cause) VALUES ('s1', 'a2', 'bob.ray', 'Bob', 1, "
            "'x', 'self')")  # fmt: skip
    with pytest.raises(Exception, match="(?i)check"):
        sql(accounts_url, "UPDATE account_seat_agents SET cause = 'whim'")


def test_reopening_keeps_the_sign_ins(accounts_url: str, store: AccountStore) -> None:
    store.sign_in(seat="s1", username="ann.lee", by="ann.lee", now=NOW)
    before = (store.seat_agents(), store.signed_in())
    with open_accounts(accounts_url) as again:
        assert (again.seat_agents(), again.signed_in()) == before
