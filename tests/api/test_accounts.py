"""Accounts, sessions, delegations and the audit log (gateway/api/accounts.py), on SQLite and
on PostgreSQL alike: every test that takes `accounts_url` runs on both.

PostgreSQL is the machine's own server, as for the event store (tests/core/conftest.py):
127.0.0.1:5432, user postgres, database test (SEATLINK_TEST_POSTGRES overrides the URL). Each
test gets a schema of its own, dropped afterwards. A server that cannot be reached skips the
PostgreSQL half, and fails it in CI (CI=true), where the server runs.

Hashing uses cheap argon2 parameters here (`cheap_hashing`): the store's default is
argon2-cffi's, about 50 ms a hash, and these tests hash a few hundred times.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher

from gateway.api import accounts as accounts_module
from gateway.api.accounts import (
    LATEST_VERSION,
    MIGRATIONS,
    AccountError,
    AccountStore,
    AuthError,
    Role,
    StoreError,
    User,
    open_accounts,
    password_problems,
)
from tests.databases import empty_database

NOW = 1_795_430_600.0
DEFAULT_HASHER = AccountStore.HASHER  # before any test swaps it
PASSWORD = "Correct-h0rse-battery"
OTHER_PASSWORD = "An0ther:staple!"
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty account store: a SQLite file of the test's own, or a PostgreSQL
    schema of its own."""
    with empty_database(request.param, tmp_path, "accounts") as url:
        yield url


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AccountStore, "HASHER", CHEAP)


@pytest.fixture
def store(accounts_url: str) -> Iterator[AccountStore]:
    with open_accounts(accounts_url) as opened:
        yield opened


def sql(url: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement on the store's database behind the store's back (`?` placeholders)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description is not None else []
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        return db.execute(statement, params).fetchall()
    finally:
        db.close()


TABLES = ("account_schema_version", "account_users", "account_sessions",
          "account_delegations", "account_audit", "account_seat_agents",
          "account_signins")  # fmt: skip


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, in a fixed order."""
    return {table: sql(url, f"SELECT * FROM {table} ORDER BY 1") for table in TABLES}


def add(store: AccountStore, username: str, role: Role = Role.AGENT, *,
        agent: str | None = None, password: str = PASSWORD, now: float = NOW) -> User:  # fmt: skip
    if role is Role.AGENT and agent is None:
        agent = f"a-{username}"
    return store.create_user(username=username, password=password, role=role, agent=agent,
                             full_name=username.replace(".", " ").title(), now=now)  # fmt: skip


# --- passwords -------------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "problem"), [
    ("Abcdef1!x", "at least 10 characters"),  # 9
    ("abcdefghi1", "special character"),
    ("abcdefgh!!", "at least one digit"),
    ("123456789!", "at least one letter"),
    ("A1!" + "x" * 126, "at most 128 characters"),  # 129
    ("xx-ann.lee-1", "username"),
    ("xx-ANN.LEE-1", "username"),  # case does not hide it
    ("ab1!\udc80cdefgh", "valid text"),
])  # fmt: skip
def test_each_password_rule_names_its_problem(password: str, problem: str) -> None:
    problems = password_problems(password, username="ann.lee")
    assert len(problems) == 1 and problem in problems[0], problems


def test_acceptable_passwords() -> None:
    assert password_problems("Abcdef1!xy") == []  # 10, at the boundary
    assert password_problems("A1!" + "x" * 125) == []  # 128
    assert password_problems("pässwörd 2024") == []  # a space is special; letters of any script
    assert password_problems("xx-al-1!abc", username="al") == []  # names under 3 are not checked
    assert len(password_problems("")) == 4  # short, no letter, no digit, no special


def test_the_default_hasher_is_argon2_cffis_default() -> None:
    default = PasswordHasher()
    for attr in ("time_cost", "memory_cost", "parallelism", "hash_len", "salt_len", "type"):
        assert getattr(DEFAULT_HASHER, attr) == getattr(default, attr), attr
    assert DEFAULT_HASHER.hash(PASSWORD).startswith("$argon2id$")


# --- users -----------------------------------------------------------------------------------


def test_a_user_is_created_and_read_back(store: AccountStore) -> None:
    user = add(store, "ann.lee", Role.AGENT, agent="A-17")
    assert user == User(username="ann.lee", full_name="Ann Lee", role=Role.AGENT, agent="A-17",
                        disabled=False, created=NOW, password_changed=NOW,
                        must_change_password=False)  # fmt: skip
    assert store.user("ann.lee") == user
    assert store.user("Ann.Lee") == user  # usernames are lower case; a lookup folds case
    assert store.user("bob.ray") is None
    add(store, "bob.ray", Role.SUPERVISOR)
    assert [u.username for u in store.users()] == ["ann.lee", "bob.ray"]


@pytest.mark.parametrize(("fields", "code", "message"), [
    ({"username": "ab"}, "bad_username", "3-64 characters"),
    ({"username": "Ann.Lee"}, "bad_username", "lower-case"),
    ({"username": "ann lee"}, "bad_username", "lower-case"),
    ({"username": "x" * 65}, "bad_username", "3-64"),
    ({"full_name": "  "}, "bad_full_name", "full name"),
    ({"full_name": "x" * 201}, "bad_full_name", "full name"),
    ({"full_name": "Ann\nLee"}, "bad_full_name", "printable"),
    ({"role": "boss"}, "bad_role", "role 'boss'"),
    ({"agent": None}, "bad_agent", "agent id"),
    ({"agent": "A 17"}, "bad_agent", "agent id 'A 17'"),
    ({"password": "short1!"}, "weak_password", "at least 10 characters"),
    ({"password": "ann.lee-is-me-1"}, "weak_password", "username"),
    ({"username": "cat.ng"}, "exists", "'cat.ng' exists"),
    ({"agent": "A-1"}, "agent_exists", "'A-1' is the account of 'cat.ng'"),
])  # fmt: skip
def test_bad_new_users_are_refused_by_name_and_change_nothing(
        accounts_url: str, fields: dict[str, Any], code: str, message: str) -> None:  # fmt: skip
    with open_accounts(accounts_url) as store:
        add(store, "cat.ng", agent="A-1")
        before = dump(accounts_url)
        args: dict[str, Any] = {"username": "ann.lee", "password": PASSWORD,
                                "full_name": "Ann Lee", "role": Role.AGENT, "agent": "A-17"}
        args.update(fields)
        with pytest.raises(AccountError, match=re.escape(message)) as caught:
            store.create_user(**args)
        assert caught.value.code == code
    assert dump(accounts_url) == before


@pytest.mark.parametrize("username", ["admin", "root", "shared", "team", "guest", "test",
                                      "supervisor", "agent", "agent07", "team-b", "ann.test",
                                      "desk12", "night_shift.shared"])  # fmt: skip
def test_shared_looking_usernames_are_refused(store: AccountStore, username: str) -> None:
    with pytest.raises(AccountError, match="looks shared or role-like") as caught:
        add(store, username, Role.SUPERVISOR)
    assert caught.value.code == "bad_username"
    assert store.users() == []


def test_personal_names_that_contain_a_denied_word_are_fine(store: AccountStore) -> None:
    for name in ("adminah.k", "tester.j", "teamwork", "r.rooth"):
        add(store, name, Role.SUPERVISOR)
    assert len(store.users()) == 4


def test_update_user(store: AccountStore) -> None:
    add(store, "ann.lee", agent="A-17")
    add(store, "bob.ray", agent="A-18")
    ann = store.update_user("ann.lee", full_name="Ann Lee-Wong", agent="A-19")
    assert (ann.full_name, ann.agent) == ("Ann Lee-Wong", "A-19")
    assert store.update_user("ann.lee") == ann  # nothing given: nothing changes
    with pytest.raises(AccountError, match="'A-18' is the account of 'bob.ray'") as caught:
        store.update_user("ann.lee", agent="A-18")
    assert caught.value.code == "agent_exists"
    with pytest.raises(AccountError) as caught:
        store.update_user("ann.lee", agent="")  # an agent needs one
    assert caught.value.code == "bad_agent"
    sup = store.update_user("ann.lee", role=Role.SUPERVISOR, agent="")
    assert (sup.role, sup.agent) == (Role.SUPERVISOR, None)
    with pytest.raises(AccountError) as caught:
        store.update_user("nobody.here", full_name="X")
    assert caught.value.code == "unknown_user"
    assert store.user("ann.lee") == sup


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(accounts_url: str) -> None:
    with open_accounts(accounts_url) as store:
        add(store, "ann.lee", Role.ADMIN)
        add(store, "bob.ray", Role.ADMIN)
        assert store.admin_count() == 2
        store.update_user("bob.ray", disabled=True)
        assert store.admin_count() == 1
        before = dump(accounts_url)
        for change in ({"disabled": True}, {"role": Role.SUPERVISOR},
                       {"role": Role.AGENT, "agent": "A-1", "disabled": True}):  # fmt: skip
            with pytest.raises(AccountError, match="last enabled admin") as caught:
                store.update_user("ann.lee", **change)
            assert caught.value.code == "last_admin"
        assert dump(accounts_url) == before
        store.update_user("bob.ray", disabled=False)
        assert store.update_user("ann.lee", role=Role.SUPERVISOR).role is Role.SUPERVISOR
        assert store.admin_count() == 1


# --- logging in ------------------------------------------------------------------------------


def test_authenticate(store: AccountStore, accounts_url: str) -> None:
    ann = add(store, "ann.lee")
    assert store.authenticate("ann.lee", PASSWORD, now=NOW + 1) == ann
    assert store.authenticate(" Ann.Lee ", PASSWORD, now=NOW + 1) == ann
    refusals = []
    for username, password in (("ann.lee", "Wrong-pass1!"), ("nobody.here", PASSWORD),
                               ("ann.lee", "")):  # fmt: skip
        with pytest.raises(AuthError) as caught:
            store.authenticate(username, password, now=NOW + 2)
        refusals.append((caught.value.code, str(caught.value)))
    # an unknown user and a wrong password are alike: nothing tells which
    assert refusals == [("bad_credentials", "wrong username or password")] * 3
    ((stored,),) = sql(accounts_url, "SELECT password_hash FROM account_users")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert not CHEAP.check_needs_rehash(stored)


def test_an_unknown_user_costs_a_hash_verification(
        store: AccountStore, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(AccountStore, "HASHER", Counting(time_cost=1, memory_cost=8,
                                                         parallelism=1))  # fmt: skip
    for _ in range(2):
        with pytest.raises(AuthError):
            store.authenticate("nobody.here", PASSWORD)
    assert len(calls) == 2 and all(h.startswith("$argon2id$") for h in calls)


def test_a_hash_with_old_parameters_is_rehashed_at_login(store: AccountStore,
                                                         accounts_url: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:  # fmt: skip
    add(store, "ann.lee")
    ((old,),) = sql(accounts_url, "SELECT password_hash FROM account_users")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(AccountStore, "HASHER", stronger)
    assert stronger.check_needs_rehash(old)
    store.authenticate("ann.lee", PASSWORD, now=NOW + 1)
    ((new,),) = sql(accounts_url, "SELECT password_hash FROM account_users")
    assert new != old and new.startswith("$argon2id$") and not stronger.check_needs_rehash(new)
    assert store.authenticate("ann.lee", PASSWORD, now=NOW + 2).username == "ann.lee"
    assert store.user("ann.lee").password_changed == NOW  # type: ignore[union-attr]


def test_five_failures_lock_the_account_for_the_lockout(accounts_url: str) -> None:
    with open_accounts(accounts_url) as store:
        add(store, "ann.lee")
        add(store, "bob.ray")
        t = NOW + 10
        for i in range(AccountStore.MAX_FAILURES):
            with pytest.raises(AuthError) as caught:
                store.authenticate("ann.lee", f"Wrong-pass{i}!", now=t + i)
            assert caught.value.code == "bad_credentials"
        locked_at = t + AccountStore.MAX_FAILURES - 1
        entries = store.audit_log(action="login.lockout")
        assert [(e.target, e.outcome, e.actor) for e in entries] == [("ann.lee", "locked", None)]
        assert entries[0].detail["until"] == locked_at + AccountStore.LOCKOUT_S
    # the count is in the database: a restart does not unlock
    with open_accounts(accounts_url) as store:
        with pytest.raises(AuthError, match="locked") as caught:
            store.authenticate("ann.lee", PASSWORD, now=locked_at + 1)  # even the right one
        assert caught.value.code == "locked"
        store.authenticate("bob.ray", PASSWORD, now=locked_at + 1)  # others are not locked
        with pytest.raises(AuthError, match="locked"):
            store.authenticate("ann.lee", PASSWORD, now=locked_at + AccountStore.LOCKOUT_S - 1)
        after = locked_at + AccountStore.LOCKOUT_S
        assert store.authenticate("ann.lee", PASSWORD, now=after).username == "ann.lee"
        # a success starts the count afresh
        for i in range(AccountStore.MAX_FAILURES - 1):
            with pytest.raises(AuthError, match="wrong"):
                store.authenticate("ann.lee", "Wrong-pass1!", now=after + 1 + i)
        store.authenticate("ann.lee", PASSWORD, now=after + 10)
        with pytest.raises(AuthError, match="wrong"):
            store.authenticate("ann.lee", "Wrong-pass1!", now=after + 11)
        assert store.authenticate("ann.lee", PASSWORD, now=after + 12).username == "ann.lee"


def test_failures_further_apart_than_the_lockout_do_not_lock(store: AccountStore) -> None:
    add(store, "ann.lee")
    step = AccountStore.LOCKOUT_S / 3
    for i in range(3 * AccountStore.MAX_FAILURES):
        with pytest.raises(AuthError, match="wrong"):
            store.authenticate("ann.lee", "Wrong-pass1!", now=NOW + i * step)
    store.authenticate("ann.lee", PASSWORD, now=NOW + 100 * step)


def test_a_disabled_user_cannot_log_in_and_loses_the_sessions(store: AccountStore) -> None:
    add(store, "ann.lee", Role.SUPERVISOR)
    add(store, "cat.ng", Role.ADMIN)
    token, _, _ = store.open_session(store.authenticate("ann.lee", PASSWORD), now=NOW)
    store.open_session(store.authenticate("ann.lee", PASSWORD), now=NOW)
    assert len(store.sessions("ann.lee", now=NOW + 1)) == 2
    store.update_user("ann.lee", disabled=True)
    assert store.session(token, now=NOW + 1) is None
    assert store.sessions(now=NOW + 1) == []
    with pytest.raises(AuthError) as caught:
        store.authenticate("ann.lee", PASSWORD, now=NOW + 2)
    assert caught.value.code == "disabled"
    with pytest.raises(AuthError) as caught:  # the wrong password does not learn that
        store.authenticate("ann.lee", "Wrong-pass1!", now=NOW + 2)
    assert caught.value.code == "bad_credentials"
    ann = store.user("ann.lee")
    assert ann is not None and ann.disabled
    with pytest.raises(AuthError):
        store.open_session(ann, now=NOW + 3)
    store.update_user("ann.lee", disabled=False)
    assert store.sessions("ann.lee", now=NOW + 4) == []  # ended, not hidden


# --- passwords over time ---------------------------------------------------------------------


def test_changing_ones_own_password(store: AccountStore) -> None:
    add(store, "ann.lee", Role.SUPERVISOR)
    token, _, _ = store.open_session(store.authenticate("ann.lee", PASSWORD), now=NOW)
    with pytest.raises(AccountError) as caught:
        store.set_password("ann.lee", OTHER_PASSWORD)
    assert caught.value.code == "old_password_required"
    with pytest.raises(AuthError) as auth:
        store.set_password("ann.lee", OTHER_PASSWORD, old="Wrong-pass1!", now=NOW + 1)
    assert auth.value.code == "bad_credentials"
    for new, code in (("weakpass", "weak_password"), (PASSWORD, "same_password")):
        with pytest.raises(AccountError) as caught:
            store.set_password("ann.lee", new, old=PASSWORD, now=NOW + 1)
        assert caught.value.code == code
    with pytest.raises(AccountError) as caught:
        store.set_password("nobody.here", OTHER_PASSWORD, old=PASSWORD)
    assert caught.value.code == "unknown_user"
    changed = store.set_password("ann.lee", OTHER_PASSWORD, old=PASSWORD, now=NOW + 100)
    assert changed.password_changed == NOW + 100 and not changed.must_change_password
    assert store.session(token, now=NOW + 101) is not None  # one's own change keeps them
    with pytest.raises(AuthError):
        store.authenticate("ann.lee", PASSWORD, now=NOW + 102)
    assert store.authenticate("ann.lee", OTHER_PASSWORD, now=NOW + 102) == changed


def test_an_admin_reset_forces_a_change_and_ends_the_sessions(store: AccountStore) -> None:
    add(store, "ann.lee", Role.SUPERVISOR)
    token, _, _ = store.open_session(store.authenticate("ann.lee", PASSWORD), now=NOW)
    for i in range(AccountStore.MAX_FAILURES):
        with pytest.raises(AuthError):
            store.authenticate("ann.lee", "Wrong-pass1!", now=NOW + i)
    reset = store.set_password("ann.lee", OTHER_PASSWORD, by_admin=True, now=NOW + 10)
    assert reset.must_change_password and reset.password_changed == NOW + 10
    assert store.session(token, now=NOW + 11) is None
    assert store.authenticate("ann.lee", OTHER_PASSWORD, now=NOW + 11) == reset  # unlocked
    mine = store.set_password("ann.lee", "Th1rd-password", old=OTHER_PASSWORD, now=NOW + 12)
    assert not mine.must_change_password


def test_password_age(store: AccountStore) -> None:
    ann = add(store, "ann.lee")
    max_age = AccountStore.PASSWORD_MAX_AGE_S
    assert not ann.password_expired(NOW + max_age - 1, max_age)
    assert ann.password_expired(NOW + max_age, max_age)
    created = store.create_user(username="bob.ray", password=PASSWORD, full_name="Bob Ray",
                                role=Role.FACILITIES, must_change_password=True)  # fmt: skip
    assert created.must_change_password and created.agent is None


# --- sessions --------------------------------------------------------------------------------


def test_an_agent_has_one_live_session(store: AccountStore) -> None:
    ann = add(store, "ann.lee")
    first, s1, ended = store.open_session(ann, ip="10.0.0.5", now=NOW)
    assert ended == [] and len(s1.id) == 16 and first != s1.id
    assert store.session(first, now=NOW + 1) == s1
    assert (s1.username, s1.role, s1.roles, s1.ip) == ("ann.lee", Role.AGENT,
                                                       frozenset({Role.AGENT}), "10.0.0.5")
    assert s1.expires == NOW + AccountStore.SESSION_TTL_S
    second, s2, ended = store.open_session(ann, ip="10.0.0.9", now=NOW + 60)
    assert ended == [s1.id]
    assert store.session(first, now=NOW + 61) is None  # a login elsewhere ended it
    assert store.session(second, now=NOW + 61) == s2
    assert store.sessions("ann.lee", now=NOW + 61) == [s2]


def test_a_supervisor_may_hold_several_sessions(store: AccountStore) -> None:
    bob = add(store, "bob.ray", Role.SUPERVISOR)
    t1, s1, e1 = store.open_session(bob, now=NOW)
    t2, s2, e2 = store.open_session(bob, now=NOW + 1)
    assert e1 == e2 == []
    assert store.session(t1, now=NOW + 2) == s1 and store.session(t2, now=NOW + 2) == s2
    assert store.sessions("bob.ray", now=NOW + 2) == [s1, s2]
    assert store.end_session(t1, now=NOW + 3)
    assert not store.end_session(t1, now=NOW + 4)  # once
    assert not store.end_session("no-such-token")
    assert store.session(t1, now=NOW + 4) is None
    t3, _, _ = store.open_session(bob)  # end_sessions counts by the wall clock
    assert store.end_sessions("bob.ray") >= 1
    assert store.session(t3) is None and store.session(t2, now=NOW + 5) is None
    assert store.end_sessions("bob.ray") == 0


def test_sessions_expire(store: AccountStore, accounts_url: str) -> None:
    ann = add(store, "ann.lee", Role.SUPERVISOR)
    token, session, _ = store.open_session(ann, now=NOW)
    assert store.session(token, now=session.expires - 1) == session
    assert store.session(token, now=session.expires) is None
    assert store.sessions(now=session.expires) == []
    assert not store.end_session(token, now=session.expires)
    assert store.session("", now=NOW) is None and store.session("x" * 10_000, now=NOW) is None
    # only a digest of the token is stored
    rows = sql(accounts_url, "SELECT * FROM account_sessions")
    assert token not in repr(rows)


def test_a_role_change_ends_the_sessions(store: AccountStore) -> None:
    add(store, "cat.ng", Role.ADMIN)
    ann = add(store, "ann.lee", Role.SUPERVISOR)
    token, _, _ = store.open_session(ann, now=NOW)
    store.update_user("ann.lee", full_name="Ann Lee-Wong")
    assert store.session(token, now=NOW + 1) is not None
    store.update_user("ann.lee", role=Role.ADMIN)
    assert store.session(token, now=NOW + 1) is None


def test_one_store_serves_several_threads(store: AccountStore) -> None:
    users = [add(store, f"sup.{name}", Role.SUPERVISOR) for name in "abcdefgh"]
    problems: list[BaseException] = []

    def work(user: User) -> None:
        try:
            for _ in range(5):
                store.authenticate(user.username, PASSWORD)
                token, session, _ = store.open_session(user)
                assert store.session(token) == session
                store.audit(action="login", outcome="ok", actor=user.username)
        except BaseException as exc:  # a thread's failure is reported by the assert below
            problems.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert len(store.sessions()) == 40
    assert len(store.audit_log(action="login", limit=1000)) == 40


# --- delegations -----------------------------------------------------------------------------


def test_a_delegation_is_requested_approved_active_and_expires(store: AccountStore) -> None:
    ann = add(store, "ann.lee")
    add(store, "bob.ray", Role.SUPERVISOR)
    add(store, "cat.ng", Role.ADMIN)
    token, _, _ = store.open_session(ann, now=NOW)
    d = store.request_delegation(grantee="ann.lee", role=Role.SUPERVISOR, reason="covering "
                                 "the late shift", expires=NOW + 3600, requested_by="bob.ray",
                                 now=NOW)  # fmt: skip
    assert (d.grantee, d.role, d.requested_by, d.requested, d.approved) == (
        "ann.lee", Role.SUPERVISOR, "bob.ray", NOW, None)
    assert not d.active(NOW + 1)
    assert store.session(token, now=NOW + 1).roles == {Role.AGENT}  # type: ignore[union-attr]
    assert store.delegations(active_only=True, now=NOW + 1) == []
    approved = store.approve_delegation(d.id, by="cat.ng", now=NOW + 10)
    assert (approved.approved_by, approved.approved) == ("cat.ng", NOW + 10)
    assert approved.active(NOW + 11)
    assert store.session(token, now=NOW + 11).roles == {  # type: ignore[union-attr]
        Role.AGENT, Role.SUPERVISOR}
    assert store.sessions("ann.lee", now=NOW + 11)[0].role is Role.AGENT
    assert store.delegations(grantee="ann.lee", active_only=True, now=NOW + 11) == [approved]
    assert store.delegations(grantee="bob.ray") == []
    # expired: gone from the session's roles, kept in the list
    assert not approved.active(NOW + 3600)
    assert store.session(token, now=NOW + 3600).roles == {Role.AGENT}  # type: ignore[union-attr]
    assert store.delegations(active_only=True, now=NOW + 3600) == []
    assert store.delegations() == [approved]


def test_a_delegation_is_revoked(store: AccountStore) -> None:
    ann = add(store, "ann.lee")
    add(store, "bob.ray", Role.SUPERVISOR)
    add(store, "cat.ng", Role.ADMIN)
    token, _, _ = store.open_session(ann, now=NOW)
    d = store.request_delegation(grantee="ann.lee", role=Role.FACILITIES, reason="flash seats",
                                 expires=NOW + 86400, requested_by="ann.lee", now=NOW)  # fmt: skip
    store.approve_delegation(d.id, by="bob.ray", now=NOW + 1)
    assert Role.FACILITIES in store.session(token, now=NOW + 2).roles  # type: ignore[union-attr]
    revoked = store.revoke_delegation(d.id, by="cat.ng", now=NOW + 3)
    assert (revoked.revoked_by, revoked.revoked) == ("cat.ng", NOW + 3)
    assert not revoked.active(NOW + 4)
    assert store.session(token, now=NOW + 4).roles == {Role.AGENT}  # type: ignore[union-attr]
    with pytest.raises(AccountError) as caught:
        store.revoke_delegation(d.id, by="cat.ng", now=NOW + 5)
    assert caught.value.code == "revoked"
    with pytest.raises(AccountError) as caught:
        store.approve_delegation(d.id, by="cat.ng", now=NOW + 5)
    assert caught.value.code == "not_requested"
    # a request can be refused (revoked before approval) too
    e = store.request_delegation(grantee="ann.lee", role=Role.ADMIN, reason="x",
                                 expires=NOW + 100, requested_by="ann.lee", now=NOW)  # fmt: skip
    assert store.revoke_delegation(e.id, by="cat.ng", now=NOW + 6).approved is None


def test_bad_delegations_are_refused_and_change_nothing(accounts_url: str) -> None:
    with open_accounts(accounts_url) as store:
        add(store, "ann.lee")
        add(store, "bob.ray", Role.SUPERVISOR)
        add(store, "cat.ng", Role.ADMIN)
        d = store.request_delegation(grantee="ann.lee", role=Role.SUPERVISOR, reason="cover",
                                     expires=NOW + 3600, requested_by="bob.ray",
                                     now=NOW)  # fmt: skip
        before = dump(accounts_url)
        good: dict[str, Any] = {"grantee": "ann.lee", "role": Role.SUPERVISOR, "reason": "cover",
                                "expires": NOW + 3600, "requested_by": "bob.ray", "now": NOW}
        for change, code in (
            ({"expires": NOW}, "bad_expiry"),
            ({"expires": NOW - 1}, "bad_expiry"),
            ({"expires": NOW + AccountStore.MAX_DELEGATION_S + 1}, "bad_expiry"),
            ({"expires": float("nan")}, "bad_expiry"),
            ({"reason": " "}, "bad_reason"),
            ({"reason": "x" * 501}, "bad_reason"),
            ({"grantee": "nobody.here"}, "unknown_user"),
            ({"requested_by": "nobody.here"}, "unknown_user"),
            ({"role": Role.AGENT}, "same_role"),
            ({"role": "boss"}, "bad_role"),
        ):
            with pytest.raises(AccountError) as caught:
                store.request_delegation(**{**good, **change})
            assert caught.value.code == code, change
        assert dump(accounts_url) == before
        add(store, "dan.ode", Role.ADMIN)
        store.update_user("dan.ode", disabled=True)
        before = dump(accounts_url)
        for by, code in (("bob.ray", "self_approval"), ("ann.lee", "self_approval"),
                         ("nobody.here", "unknown_user"), ("dan.ode", "disabled")):  # fmt: skip
            with pytest.raises(AccountError) as caught:
                store.approve_delegation(d.id, by=by, now=NOW + 1)
            assert caught.value.code == code
        with pytest.raises(AccountError, match="expired") as caught:
            store.approve_delegation(d.id, by="cat.ng", now=NOW + 3600)
        assert caught.value.code == "expired"
        for call in (store.approve_delegation, store.revoke_delegation):
            with pytest.raises(AccountError) as caught:
                call(999, by="cat.ng", now=NOW)
            assert caught.value.code == "unknown_delegation"
        assert dump(accounts_url) == before
        assert store.request_delegation(**{**good, "expires": NOW + AccountStore.
                                           MAX_DELEGATION_S}).id > d.id  # fmt: skip


# --- audit -----------------------------------------------------------------------------------


def test_audit_entries_are_appended_and_filtered(store: AccountStore) -> None:
    e1 = store.audit(action="login", outcome="ok", actor="ann.lee", ip="10.0.0.5", now=NOW)
    e2 = store.audit(action="login", outcome="bad_credentials", actor=None,
                     detail={"username": "bob.ray"}, now=NOW + 1)  # fmt: skip
    e3 = store.audit(action="seat.command", outcome="ok", actor="ann.lee", target="s101",
                     detail={"command": "logout", "n": [1, 2]}, now=NOW + 2)  # fmt: skip
    assert (e1.id, e1.t, e1.actor, e1.action, e1.target, e1.outcome, e1.detail, e1.ip) == (
        e1.id, NOW, "ann.lee", "login", None, "ok", {}, "10.0.0.5")
    assert e1.id < e2.id < e3.id
    assert e3.detail == {"command": "logout", "n": [1, 2]}
    assert store.audit_log() == [e3, e2, e1]  # newest first
    assert store.audit_log(actor="ann.lee") == [e3, e1]
    assert store.audit_log(action="login") == [e2, e1]
    assert store.audit_log(since=NOW + 1) == [e3, e2]
    assert store.audit_log(until=NOW + 1) == [e1]
    assert store.audit_log(limit=2) == [e3, e2]
    assert store.audit_log(before_id=e2.id, limit=2) == [e1]
    for limit in (0, 1001):
        with pytest.raises(AccountError) as caught:
            store.audit_log(limit=limit)
        assert caught.value.code == "bad_limit"
    with pytest.raises(AccountError) as caught:
        store.audit(action=" ", outcome="ok")
    assert caught.value.code == "bad_audit"
    assert len(store.audit_log()) == 3


def test_audit_details_keep_no_secrets_and_any_value(store: AccountStore) -> None:
    e = store.audit(action="password.reset", outcome="ok",
                    detail={"password": PASSWORD, "nested": {"new_password": "x", "token": "y"},
                            "when": Path("/x"), "ok": True}, now=NOW)  # fmt: skip
    assert e.detail == {"password": "***", "nested": {"new_password": "***", "token": "***"},
                        "when": "/x", "ok": True}  # fmt: skip
    big = store.audit(action="x", outcome="ok", detail={"blob": "z" * 20_000})
    assert "truncated" in big.detail
    odd = store.audit(action="x\x00y", outcome="ok", actor="\udc80", now=NOW)
    assert odd.action == "x\\x00y" and odd.actor == "\\udc80"


def test_the_audit_log_is_append_only(store: AccountStore, accounts_url: str) -> None:
    source = inspect.getsource(accounts_module)
    for pattern in (r"\bUPDATE\s+account_audit\b", r"\bDELETE\s+FROM\b", r"\bTRUNCATE\s+(TABLE\s+)?"
                    r"account_audit\b", r"\bOR\s+REPLACE\b", r"\bDO\s+UPDATE\b",
                    r"\bDROP\s+(TABLE|TRIGGER|FUNCTION)\b"):  # fmt: skip
        assert not re.search(pattern, source, re.IGNORECASE), pattern
    store.audit(action="login", outcome="ok", actor="ann.lee", now=NOW)
    before = sql(accounts_url, "SELECT * FROM account_audit")
    statements = ["UPDATE account_audit SET outcome = 'denied'", "DELETE FROM account_audit"]
    if accounts_url.startswith("postgresql://"):
        statements.append("TRUNCATE account_audit")
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            sql(accounts_url, statement)
    assert sql(accounts_url, "SELECT * FROM account_audit") == before


# --- schema and opening ----------------------------------------------------------------------


def test_migrations_are_numbered_from_one_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == MIGRATIONS[-1].version


def test_reopening_keeps_the_data_and_changes_nothing(accounts_url: str) -> None:
    with open_accounts(accounts_url) as store:
        assert store.schema_version() == LATEST_VERSION
        ann = add(store, "ann.lee")
        token, session, _ = store.open_session(ann, now=NOW)
        store.audit(action="login", outcome="ok", actor="ann.lee", now=NOW)
    before = dump(accounts_url)
    assert [r[:2] for r in before["account_schema_version"]] == [
        (m.version, m.summary) for m in MIGRATIONS]
    for _ in range(2):
        with open_accounts(accounts_url) as store:
            assert store.user("ann.lee") == ann
            assert store.session(token, now=NOW + 1) == session
            assert store.schema_version() == LATEST_VERSION
    assert dump(accounts_url) == before


def test_a_newer_schema_is_refused_untouched(accounts_url: str) -> None:
    with open_accounts(accounts_url) as store:
        add(store, "ann.lee")
    sql(accounts_url, "INSERT INTO account_schema_version VALUES (?, ?, ?)",
        (LATEST_VERSION + 1, "from a newer seatlink", NOW))  # fmt: skip
    before = dump(accounts_url)
    with pytest.raises(StoreError, match=rf"account schema version {LATEST_VERSION + 1} is "
                       rf"newer than this code knows \({LATEST_VERSION}\).*nothing was "
                       "changed"):  # fmt: skip
        open_accounts(accounts_url)
    assert dump(accounts_url) == before


def test_tables_without_a_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE account_users (username TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not an account store"):
        open_accounts(path)


def test_account_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown account store URL scheme 'mysql'"):
        open_accounts("mysql://root@localhost/api")
    with pytest.raises(ValueError, match="sqlite:///relative/path.db"):
        open_accounts("sqlite://api.db")
    with pytest.raises(StoreError, match="does not exist"):
        open_accounts(tmp_path / "no" / "such" / "api.db")
    open_accounts(tmp_path / "plain.db").close()
    assert (tmp_path / "plain.db").is_file()
    monkeypatch.chdir(tmp_path)
    open_accounts("sqlite:///relative.db").close()
    assert (tmp_path / "relative.db").is_file()
    with open_accounts(f"sqlite:///{tmp_path}/absolute.db") as store:
        add(store, "ann.lee")
    db = sqlite3.connect(tmp_path / "absolute.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    with open_accounts("sqlite:///:memory:") as store:
        assert add(store, "ann.lee").username == "ann.lee"
    with pytest.raises(StoreError, match="cannot connect") as caught:
        open_accounts("postgresql://api:s3cret@127.0.0.1:1/api")
    assert "s3cret" not in str(caught.value) and "api:***@127.0.0.1:1" in str(caught.value)


def test_the_accounts_share_a_database_with_the_event_store(accounts_url: str) -> None:
    from gateway.core.store import open_store

    open_store(accounts_url).close()  # the event store first: it refuses unknown SQLite files
    with open_accounts(accounts_url) as store:
        add(store, "ann.lee")
        store.audit(action="login", outcome="ok", now=NOW)
    with open_store(accounts_url) as events:
        assert list(events.events()) == []
    with open_accounts(accounts_url) as store:
        assert store.user("ann.lee") is not None
