"""Personal accounts, roles, sessions, delegated access and the audit log of the supervisor
API (issue 6).

What it enforces (../shared/design/rules-from-seeds.md §5, from S2 §二.1, §三.2, §五.2-3):

- **Personal accounts only.** One account per person: a username of 3-64 characters of
  `a-z 0-9 . _ -`, a full name, one role. Names that look shared or role-like (`SHARED_NAMES`:
  `admin`, `team`, `agent07`, `ann.test`, ...) are refused; an agent's account names the
  agent id the core uses, and no two accounts name the same agent.
- **Strong passwords** (`password_problems`): 10-128 characters with a letter, a digit and a
  special character, not containing the username. Stored as argon2id (`HASHER`, argon2-cffi's
  defaults), rehashed at the next login when the parameters change. A password older than
  `PASSWORD_MAX_AGE_S` is expired (`User.password_expired`); an admin's reset sets
  `must_change_password`, which the user's own change clears. The API lets such a user do
  nothing but change it.
- **Lockout.** `MAX_FAILURES` failed logins within `LOCKOUT_S` of the first of them lock the
  account for `LOCKOUT_S`, even with the right password. The count lives in the users table,
  so a restart does not reset it. An unknown username costs the same hash verification as a
  known one and gives the same error.
- **One live session per agent.** Sessions are opaque bearer tokens of which only a SHA-256
  is stored. An agent's new session ends the agent's other sessions (one seat, one person);
  supervisors, facilities staff and admins may hold several.
- **Delegated access** is requested with a reason and an expiry (at most
  `MAX_DELEGATION_S` ahead), approved by a third person (neither the requester nor the
  grantee), and ends when it expires or is revoked. A session's `roles` are the user's own
  role and the roles of the delegations active at the time of the lookup, so a revocation
  takes effect at the next request.
- **Access by role:** agent, supervisor, facilities, admin. The last enabled admin can be
  neither disabled nor demoted.
- **Audit.** `audit` appends an entry; `audit_log` reads them, newest first. The table is
  append-only: this module has no statement that changes or removes an entry, and triggers
  refuse anyone's UPDATE or DELETE (and TRUNCATE on PostgreSQL). The caller (the API) audits
  every login and command, since it knows who and from where; the store itself audits only
  what the caller cannot see: an account becoming locked (`login.lockout`).

- **Agents at seats** (issue 19). `sign_in` and `sign_out` keep who is signed in at each
  seat: one agent at one seat (a sign-in elsewhere signs the agent out of the old seat,
  cause `moved`), one agent per seat (another agent there is refused, `seat_taken`, unless a
  supervisor signs in over them, cause `supervisor`), agents with an agent id only, and an
  agent disabled, no agent any more or with another agent id signed out (cause `account`).
  `account_seat_agents` holds each seat's latest change as the retained seat/{seat}/agent
  carries it, with whether the broker took it (`mark_published`); `account_signins` every
  interval. Unique indexes hold the first two rules in the database too.

Bad input raises `AccountError` (its `code` a short slug, its message naming what is wrong)
before anything is written, or inside the transaction that is then rolled back: a refused
call changes nothing. A refused login raises `AuthError`.

Storage follows the event store (gateway/core/store.py): SQLite by path or `sqlite:///` URL
(WAL), PostgreSQL by `postgresql://` URL (psycopg 3), migrations (`MIGRATIONS`) applied at
open, one transaction each, and a database newer than this code refused untouched
(`StoreError`). Every table's name starts with `account_`, and the PL/pgSQL function is the
store's own, so the accounts may share a PostgreSQL database or schema with the event store.
(A SQLite file is best kept apart: the event store refuses a file that holds tables but no
event store.) Database errors after opening are the driver's own.

Threads: one connection, guarded by a lock, so one store serves a threadpool. Password
hashing (the slow part) runs outside the lock. On PostgreSQL, writers also take a
transaction-scoped advisory lock, so several API processes on one database cannot both pass
a check (the last admin, one session per agent) that only one of them should.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.core.store import Migration, StoreError
from gateway.db_url import parse_db_url, without_password

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "SHARED_NAMES",
    "AccountError",
    "AccountStore",
    "AuditEntry",
    "AuthError",
    "Delegation",
    "Role",
    "SeatAgentRecord",
    "Session",
    "SignIn",
    "SignInChange",
    "StoreError",
    "User",
    "open_accounts",
    "password_problems",
]


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    FACILITIES = "facilities"
    ADMIN = "admin"


class AccountError(ValueError):
    """Bad input: the message names what is wrong; `code` is a short slug for programs."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AuthError(Exception):
    """A refused login: `code` is `bad_credentials`, `locked` or `disabled`. The message never
    says whether the username or the password was wrong."""

    def __init__(self, code: Literal["bad_credentials", "locked", "disabled"],
                 message: str) -> None:  # fmt: skip
        super().__init__(message)
        self.code = code


# --- rules --------------------------------------------------------------------------------

PASSWORD_MIN = 10
PASSWORD_MAX = 128  # argon2 takes any length; this bounds the work a login request can ask for
USERNAME = re.compile(r"[a-z0-9._-]{3,64}")
AGENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # the core's seat and agent ids (ID_PATTERN)
FULL_NAME_MAX = 200
REASON_MAX = 500
AUDIT_TEXT_MAX = 200  # action, outcome, actor, target, ip
AUDIT_DETAIL_MAX = 8000  # characters of detail JSON; more is kept truncated, as text
AUDIT_LIMIT_MAX = 1000

# A username is refused when one of its parts (split at . _ -, trailing digits dropped) is
# one of these: such names are used by several people, or name a role rather than a person.
SHARED_NAMES = frozenset({
    "admin", "administrator", "root", "superuser", "sysadmin", "shared", "team", "group",
    "guest", "test", "demo", "temp", "tmp", "default", "user", "users", "everyone", "all",
    "staff", "office", "nobody", "anonymous", "supervisor", "agent", "agents", "facilities",
    "operator", "desk", "seat", "helpdesk", "support", "service", "system", "training",
})  # fmt: skip

_SECRET_KEYS = re.compile(r"password|passwd|token|secret", re.IGNORECASE)


def password_problems(password: str, *, username: str = "") -> list[str]:
    """What is wrong with `password` as a new password; an empty list if nothing."""
    problems: list[str] = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"at least {PASSWORD_MIN} characters (this has {len(password)})")
    if len(password) > PASSWORD_MAX:
        problems.append(f"at most {PASSWORD_MAX} characters (this has {len(password)})")
    if not any(c.isalpha() for c in password):
        problems.append("at least one letter")
    if not any(c.isdigit() for c in password):
        problems.append("at least one digit")
    if all(c.isalnum() for c in password):
        problems.append("at least one special character (not a letter or digit)")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        problems.append("valid text (no lone surrogate characters)")
    name = username.strip().casefold()
    if len(name) >= 3 and name in password.casefold():
        problems.append("not the username inside it")
    return problems


def _username_problem(username: str) -> str | None:
    if not USERNAME.fullmatch(username):
        return (f"username {username!r} is not 3-64 characters of lower-case a-z, 0-9, "
                "'.', '_' and '-'")  # fmt: skip
    parts = {p.rstrip("0123456789") for p in re.split(r"[._-]", username)}
    shared = sorted(parts & SHARED_NAMES)
    if shared:
        return (f"username {username!r} looks shared or role-like ({', '.join(shared)}): "
                "accounts are personal, name the person (e.g. ann.lee)")  # fmt: skip
    return None


def _check_full_name(full_name: str) -> str:
    name = full_name.strip()
    if not 1 <= len(name) <= FULL_NAME_MAX or not name.isprintable():
        raise AccountError("bad_full_name", f"full name {full_name!r} is not 1-{FULL_NAME_MAX} "
                           "printable characters: accounts are personal")  # fmt: skip
    return name


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError("bad_role", f"role {role!r} is not one of "
                           f"{', '.join(r.value for r in Role)}") from None  # fmt: skip


def _check_agent(agent: str | None, role: Role) -> str | None:
    if agent is not None and not AGENT_ID.fullmatch(agent):
        raise AccountError("bad_agent", f"agent id {agent!r} is not 1-64 characters of "
                           "A-Z a-z 0-9 _ . -")  # fmt: skip
    if role is Role.AGENT and agent is None:
        raise AccountError("bad_agent", "an agent's account needs the agent id the core uses "
                           "(agent=...)")  # fmt: skip
    return agent


def _check_seat(seat: str) -> str:
    if not AGENT_ID.fullmatch(seat):
        raise AccountError("bad_seat", f"seat id {seat!r} is not 1-64 characters of "
                           "A-Z a-z 0-9 _ . -")  # fmt: skip
    return seat


def _check_password(password: str, username: str) -> None:
    problems = password_problems(password, username=username)
    if problems:
        raise AccountError("weak_password", f"the password needs {'; '.join(problems)}")


def _clean(text: str, limit: int) -> str:
    """Storable in either database: no NUL, no lone surrogate; at most `limit` characters."""
    safe = text[: limit + 1].encode("utf-8", "backslashreplace").decode("utf-8")
    safe = safe.replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def _redacted(value: Any) -> Any:
    """`value` with what is under a key naming a secret replaced: an audit log is read by
    people who must not learn passwords or tokens from it, whatever a caller passes."""
    if isinstance(value, Mapping):
        return {str(k): "***" if _SECRET_KEYS.search(str(k)) else _redacted(v)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def _now(now: float | None) -> float:
    return time.time() if now is None else now


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    username: str
    full_name: str
    role: Role
    agent: str | None  # the agent id the core uses; required for role agent
    disabled: bool
    created: float
    password_changed: float
    must_change_password: bool  # set by an admin's reset, cleared by the user's own change

    def password_expired(self, now: float, max_age_s: float) -> bool:
        return now - self.password_changed >= max_age_s


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # public: safe to show and log (the token is not)
    username: str
    role: Role  # the user's own role
    roles: frozenset[Role]  # own role + active delegations, at the time of the lookup
    created: float
    expires: float
    ip: str


@dataclass(frozen=True, slots=True)
class Delegation:
    id: int
    grantee: str
    role: Role
    reason: str
    requested_by: str
    requested: float
    expires: float
    approved_by: str | None
    approved: float | None
    revoked_by: str | None
    revoked: float | None

    def active(self, now: float) -> bool:
        return self.approved is not None and self.revoked is None and now < self.expires


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    t: float
    actor: str | None
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any]
    ip: str | None


SignInCause = Literal["self", "supervisor", "moved", "account"]


@dataclass(frozen=True, slots=True)
class SeatAgentRecord:
    """A seat's latest sign-in change: what its retained seat/{seat}/agent carries."""

    seat: str
    change: str  # the change's unique id (the payload's `id`)
    agent: str | None  # null: nobody is signed in at the seat
    username: str | None
    name: str | None
    t: float
    by: str
    cause: SignInCause
    previous: str | None  # the agent signed in before this change
    published: bool  # the broker has taken it (PUBACK)


@dataclass(frozen=True, slots=True)
class SignIn:
    """One agent's interval at one seat; `signed_out` is None while it lasts."""

    id: int
    seat: str
    agent: str
    username: str
    name: str
    signed_in: float
    signed_in_by: str
    in_cause: Literal["self", "supervisor"]
    signed_out: float | None
    signed_out_by: str | None
    out_cause: SignInCause | None


@dataclass(frozen=True, slots=True)
class SignInChange:
    """What a sign-in or sign-out did: `seats` are the seats whose record changed (none when
    nothing did: the agent was at that seat already)."""

    signin: SignIn | None  # the agent's sign-in after the change (None after a sign-out)
    seats: tuple[SeatAgentRecord, ...]
    moved_from: str | None = None  # the seat the agent was signed out of (cause moved)
    replaced: SignIn | None = None  # the agent a supervisor's sign-in signed out
    ended: SignIn | None = None  # a sign-out: the interval it ended


# --- schema -------------------------------------------------------------------------------


def _sqlite_append_only(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{what} BEFORE {what.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never changed or "
        "removed'); END"
        for what in ("update", "delete")
    )


_ROLES_CHECK = f"CHECK (role IN ({', '.join(repr(r.value) for r in Role)}))"
SIGN_IN_CAUSES = ("self", "supervisor", "moved", "account")  # the contract's SignInCause
_CAUSES_CHECK = f"CHECK (cause IN ({', '.join(repr(c) for c in SIGN_IN_CAUSES)}))"


def _signins_table(id_column: str, collate: str) -> tuple[str, ...]:
    """Every sign-in interval: open (signed_out null) while the agent is at the seat."""
    return (
        f"""CREATE TABLE account_signins (
            id {id_column},
            seat TEXT{collate} NOT NULL,
            agent TEXT{collate} NOT NULL,
            username TEXT{collate} NOT NULL REFERENCES account_users (username),
            name TEXT NOT NULL,
            signed_in DOUBLE PRECISION NOT NULL,
            signed_in_by TEXT NOT NULL,
            in_cause TEXT NOT NULL CHECK (in_cause IN ('self', 'supervisor')),
            signed_out DOUBLE PRECISION,
            signed_out_by TEXT,
            out_cause TEXT CHECK (out_cause IN ({', '.join(repr(c) for c in SIGN_IN_CAUSES)}))
        )""",
        "CREATE UNIQUE INDEX account_signins_open_by_user ON account_signins (username) "
        "WHERE signed_out IS NULL",
        "CREATE UNIQUE INDEX account_signins_open_by_seat ON account_signins (seat) "
        "WHERE signed_out IS NULL",
        "CREATE INDEX account_signins_by_time ON account_signins (signed_in)",
        "CREATE INDEX account_signins_by_user ON account_signins (username, id)",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, sessions, delegations; the audit log, append-only",
        common=(
            f"""CREATE TABLE account_users (
                username TEXT{{collate_c}} PRIMARY KEY,
                full_name TEXT NOT NULL,
                role TEXT NOT NULL {_ROLES_CHECK},
                agent TEXT{{collate_c}} UNIQUE,
                disabled BOOLEAN NOT NULL,
                password_hash TEXT NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                password_changed DOUBLE PRECISION NOT NULL,
                must_change_password BOOLEAN NOT NULL,
                failures INTEGER NOT NULL DEFAULT 0,
                first_failure DOUBLE PRECISION,
                locked_until DOUBLE PRECISION
            )""",
            """CREATE TABLE account_sessions (
                id TEXT{collate_c} PRIMARY KEY,
                token_sha256 TEXT{collate_c} NOT NULL UNIQUE,
                username TEXT{collate_c} NOT NULL REFERENCES account_users (username),
                created DOUBLE PRECISION NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                ip TEXT NOT NULL,
                ended DOUBLE PRECISION,
                ended_why TEXT
            )""",
            "CREATE INDEX account_sessions_live ON account_sessions (username) "
            "WHERE ended IS NULL",
        ),
        sqlite=(
            f"""CREATE TABLE account_delegations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                grantee TEXT NOT NULL REFERENCES account_users (username),
                role TEXT NOT NULL {_ROLES_CHECK},
                reason TEXT NOT NULL,
                requested_by TEXT NOT NULL REFERENCES account_users (username),
                requested DOUBLE PRECISION NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                approved_by TEXT REFERENCES account_users (username),
                approved DOUBLE PRECISION,
                revoked_by TEXT REFERENCES account_users (username),
                revoked DOUBLE PRECISION
            )""",
            """CREATE TABLE account_audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                t DOUBLE PRECISION NOT NULL,
                actor TEXT,
                action TEXT NOT NULL,
                target TEXT,
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL,
                ip TEXT
            )""",
            *_sqlite_append_only("account_audit"),
            "CREATE INDEX account_delegations_by_grantee ON account_delegations (grantee)",
            "CREATE INDEX account_audit_by_t ON account_audit (t)",
            "CREATE INDEX account_audit_by_actor ON account_audit (actor, id)",
            "CREATE INDEX account_audit_by_action ON account_audit (action, id)",
        ),
        postgresql=(
            f"""CREATE TABLE account_delegations (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                grantee TEXT COLLATE "C" NOT NULL REFERENCES account_users (username),
                role TEXT NOT NULL {_ROLES_CHECK},
                reason TEXT NOT NULL,
                requested_by TEXT COLLATE "C" NOT NULL REFERENCES account_users (username),
                requested DOUBLE PRECISION NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                approved_by TEXT COLLATE "C" REFERENCES account_users (username),
                approved DOUBLE PRECISION,
                revoked_by TEXT COLLATE "C" REFERENCES account_users (username),
                revoked DOUBLE PRECISION
            )""",
            """CREATE TABLE account_audit (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                t DOUBLE PRECISION NOT NULL,
                actor TEXT COLLATE "C",
                action TEXT COLLATE "C" NOT NULL,
                target TEXT,
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL,
                ip TEXT
            )""",
            # the accounts' own function: the event store's may not be in this schema
            "CREATE FUNCTION seatlink_account_append_only() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION '% is append-only: rows are never changed or "
            "removed', TG_TABLE_NAME; END $$",
            "CREATE TRIGGER account_audit_append_only BEFORE UPDATE OR DELETE ON account_audit "
            "FOR EACH ROW EXECUTE FUNCTION seatlink_account_append_only()",
            "CREATE TRIGGER account_audit_no_truncate BEFORE TRUNCATE ON account_audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION seatlink_account_append_only()",
            "CREATE INDEX account_delegations_by_grantee ON account_delegations (grantee)",
            "CREATE INDEX account_audit_by_t ON account_audit (t)",
            "CREATE INDEX account_audit_by_actor ON account_audit (actor, id)",
            "CREATE INDEX account_audit_by_action ON account_audit (action, id)",
        ),
    ),
    Migration(
        2,
        "agents signed in at seats: each seat's latest change and every sign-in interval",
        common=(
            # one row per seat: what seat/{seat}/agent carries (nobody: agent and username
            # null), and whether the broker has taken it
            f"""CREATE TABLE account_seat_agents (
                seat TEXT{{collate_c}} PRIMARY KEY,
                change TEXT{{collate_c}} NOT NULL UNIQUE,
                agent TEXT{{collate_c}},
                username TEXT{{collate_c}} REFERENCES account_users (username),
                name TEXT,
                t DOUBLE PRECISION NOT NULL,
                by_user TEXT NOT NULL,
                cause TEXT NOT NULL {_CAUSES_CHECK},
                previous TEXT,
                published BOOLEAN NOT NULL
            )""",
            # one agent at one seat, one agent per seat: the database says so too
            "CREATE UNIQUE INDEX account_seat_agents_one_seat ON account_seat_agents "
            "(username) WHERE username IS NOT NULL",
            "CREATE UNIQUE INDEX account_seat_agents_one_agent ON account_seat_agents "
            "(agent) WHERE agent IS NOT NULL",
        ),
        sqlite=_signins_table("INTEGER PRIMARY KEY AUTOINCREMENT", ""),
        postgresql=_signins_table("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                                  ' COLLATE "C"'),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = "account_schema_version"
_TABLES = ("account_users", "account_sessions", "account_delegations", "account_audit",
           "account_seat_agents", "account_signins")
_CREATE_VERSION_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} (version INTEGER PRIMARY KEY, "
    "summary TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
)
_LOCK_KEY = 0x5EA7ACC0  # PostgreSQL advisory lock of the account store's writers

_USER_COLUMNS = ("username, full_name, role, agent, disabled, created, password_changed, "
                 "must_change_password")  # fmt: skip
_DELEGATION_COLUMNS = ("id, grantee, role, reason, requested_by, requested, expires, "
                       "approved_by, approved, revoked_by, revoked")  # fmt: skip
_AUDIT_COLUMNS = "id, t, actor, action, target, outcome, detail, ip"


def _user(row: Sequence[Any]) -> User:
    return User(username=row[0], full_name=row[1], role=Role(row[2]), agent=row[3],
                disabled=bool(row[4]), created=float(row[5]), password_changed=float(row[6]),
                must_change_password=bool(row[7]))  # fmt: skip


def _delegation(row: Sequence[Any]) -> Delegation:
    return Delegation(id=int(row[0]), grantee=row[1], role=Role(row[2]), reason=row[3],
                      requested_by=row[4], requested=float(row[5]), expires=float(row[6]),
                      approved_by=row[7], approved=row[8], revoked_by=row[9],
                      revoked=row[10])  # fmt: skip


_SEAT_AGENT_COLUMNS = ("seat, change, agent, username, name, t, by_user, cause, previous, "
                       "published")  # fmt: skip
_SIGNIN_COLUMNS = ("id, seat, agent, username, name, signed_in, signed_in_by, in_cause, "
                   "signed_out, signed_out_by, out_cause")  # fmt: skip


def _seat_agent(row: Sequence[Any]) -> SeatAgentRecord:
    return SeatAgentRecord(seat=row[0], change=row[1], agent=row[2], username=row[3],
                           name=row[4], t=float(row[5]), by=row[6], cause=row[7],
                           previous=row[8], published=bool(row[9]))  # fmt: skip


def _signin(row: Sequence[Any]) -> SignIn:
    return SignIn(id=int(row[0]), seat=row[1], agent=row[2], username=row[3], name=row[4],
                  signed_in=float(row[5]), signed_in_by=row[6], in_cause=row[7],
                  signed_out=None if row[8] is None else float(row[8]),
                  signed_out_by=row[9], out_cause=row[10])  # fmt: skip


def _audit_entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(id=int(row[0]), t=float(row[1]), actor=row[2], action=row[3],
                      target=row[4], outcome=row[5], detail=json.loads(row[6]),
                      ip=row[7])  # fmt: skip


# --- the two databases --------------------------------------------------------------------


class _Backend(Protocol):
    dialect: Literal["sqlite", "postgresql"]
    where: str  # for messages (no password)
    errors: tuple[type[Exception], ...]

    def prepare(self) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def tables(self, names: Sequence[str]) -> set[str]: ...

    def ensure(self) -> None: ...

    def close(self) -> None: ...


class _Sqlite:
    dialect: Literal["sqlite", "postgresql"] = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str) -> None:
        self.where = path
        if path != ":memory:" and not Path(path).parent.is_dir():
            raise StoreError(f"{path}: directory {Path(path).parent} does not exist")
        try:
            # several threads share it under the store's lock
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=10)  # fmt: skip
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from None

    def prepare(self) -> None:
        # After the version check: a newer database is refused untouched.
        if self.where != ":memory:":
            (mode,) = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode != "wal":
                raise StoreError(f"{self.where}: cannot use write-ahead logging (journal "
                                 f"mode {mode}); is it on a network file system?")  # fmt: skip
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now: checks and writes as one
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def tables(self, names: Sequence[str]) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(n) for (n,) in rows} & set(names)

    def ensure(self) -> None:
        pass

    def close(self) -> None:
        self._db.close()


class _Postgres:
    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg

        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self.where = without_password(url)
        self._url = url
        self._conn: psycopg.Connection[tuple[Any, ...]] = self._connect()

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        try:
            return psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot connect: {exc}".strip()) from None

    def prepare(self) -> None:
        pass

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not params:  # no placeholders: a '%' (in PL/pgSQL) stays itself
            cur = self._conn.execute(sql.encode())
        else:
            cur = self._conn.execute(sql.replace("?", "%s").encode(), params)
        return cur.fetchall() if cur.description is not None else []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            # keyed by schema too: account stores in other schemas never wait on this one
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                               (_LOCK_KEY,))  # fmt: skip
            yield

    def tables(self, names: Sequence[str]) -> set[str]:
        # the tables the unqualified names resolve to (search_path), as the statements see them
        rows = self._conn.execute("SELECT name FROM unnest(%s::text[]) AS name "
                                  "WHERE to_regclass(name) IS NOT NULL",
                                  (list(names),))  # fmt: skip
        return {str(n) for (n,) in rows}

    def ensure(self) -> None:
        # psycopg does not reconnect by itself: after a server restart the next call would
        # fail for ever. The call that met the broken connection has failed already.
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()

    def close(self) -> None:
        self._conn.close()


def open_accounts(url: str | Path) -> AccountStore:
    """Open (and migrate) the account store at `url`: a plain path, `sqlite:///relative.db`
    or `sqlite:////absolute.db` (SQLite, created if missing, WAL), or
    `postgresql://user@host:port/db` (PostgreSQL)."""
    dialect, target = parse_db_url(url, what="account store")
    backend: _Backend = _Sqlite(target) if dialect == "sqlite" else _Postgres(target)
    try:
        store = AccountStore(backend)
        store._migrate()
        store._dummy_hash()  # now, so that the first unknown username costs no extra hash
    except BaseException:
        backend.close()
        raise
    return store


# --- the store ----------------------------------------------------------------------------


class AccountStore:
    """Open with `open_accounts`; use as a context manager or call `close`. Safe for use
    from several threads."""

    SESSION_TTL_S = 8 * 3600.0  # a shift
    MAX_FAILURES = 5
    LOCKOUT_S = 15 * 60.0  # MAX_FAILURES failures within this lock the account for this long
    PASSWORD_MAX_AGE_S = 90 * 86400.0
    MAX_DELEGATION_S = 30 * 86400.0
    HASHER: ClassVar[PasswordHasher] = PasswordHasher()  # argon2id, argon2-cffi's defaults

    def __init__(self, backend: _Backend) -> None:
        self._db = backend
        self._lock = threading.RLock()
        self._dummy: tuple[PasswordHasher, str] | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AccountStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return self._db.dialect

    # --- schema -----------------------------------------------------------------------

    def schema_version(self) -> int:
        """The newest migration applied; 0 for a database without the accounts."""
        with self._lock:
            self._db.ensure()
            return self._schema_version()

    def _schema_version(self) -> int:
        found = self._db.tables((_VERSION_TABLE, *_TABLES))
        if _VERSION_TABLE not in found:
            if found:
                raise StoreError(f"{self._db.where}: tables {', '.join(sorted(found))} but no "
                                 f"{_VERSION_TABLE}: not an account store of seatlink; "
                                 "nothing was changed")  # fmt: skip
            return 0
        rows = self._db.query(f"SELECT version FROM {_VERSION_TABLE} ORDER BY version")
        versions = [int(v) for (v,) in rows]
        if versions != list(range(1, len(versions) + 1)):
            raise StoreError(f"{self._db.where}: {_VERSION_TABLE} holds {versions}, not 1..n; "
                             "nothing was changed")  # fmt: skip
        return len(versions)

    def _check_not_newer(self, version: int) -> None:
        if version > LATEST_VERSION:
            raise StoreError(f"{self._db.where}: account schema version {version} is newer "
                             f"than this code knows ({LATEST_VERSION}): upgrade seatlink to "
                             "open it; nothing was changed")  # fmt: skip

    def _migrate(self) -> list[int]:
        try:
            with self._lock:
                self._check_not_newer(self._schema_version())
                self._db.prepare()
                applied: list[int] = []
                for migration in MIGRATIONS:
                    with self._db.transaction():
                        current = self._schema_version()  # again, under the writers' lock
                        self._check_not_newer(current)
                        if current >= migration.version:
                            continue
                        self._db.query(_CREATE_VERSION_TABLE)
                        for statement in migration.statements(self._db.dialect):
                            self._db.query(statement)
                        self._db.query(
                            f"INSERT INTO {_VERSION_TABLE} VALUES (?, ?, ?)",
                            (migration.version, migration.summary, time.time()))
                        applied.append(migration.version)
                return applied
        except self._db.errors as exc:
            raise StoreError(f"{self._db.where}: cannot open the account store: {exc}") from exc

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock:
            self._db.ensure()
            with self._db.transaction():
                yield

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            self._db.ensure()
            yield

    # --- users ------------------------------------------------------------------------

    def create_user(self, *, username: str, password: str, full_name: str, role: Role,
                    agent: str | None = None, now: float | None = None,
                    must_change_password: bool = False) -> User:  # fmt: skip
        """A new personal account. AccountError: `bad_username` (malformed or shared-looking),
        `bad_full_name`, `bad_role`, `bad_agent`, `weak_password`, `exists`, `agent_exists`."""
        problem = _username_problem(username)
        if problem:
            raise AccountError("bad_username", problem)
        name = _check_full_name(full_name)
        role = _check_role(role)
        agent = _check_agent(agent, role)
        _check_password(password, username)
        t = _now(now)
        hashed = self.HASHER.hash(password)  # outside the lock: the slow part
        with self._writing():
            if self._user_row(username):
                raise AccountError("exists", f"user {username!r} exists already")
            self._check_agent_free(agent, username)
            self._db.query(
                f"INSERT INTO account_users ({_USER_COLUMNS}, password_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (username, name, role.value, agent, False, t, t, must_change_password, hashed))
            return self._get(username)

    def user(self, username: str) -> User | None:
        with self._reading():
            rows = self._user_row(username.strip().lower())
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        with self._reading():
            rows = self._db.query(f"SELECT {_USER_COLUMNS} FROM account_users "
                                  "ORDER BY username")  # fmt: skip
        return [_user(r) for r in rows]

    def admin_count(self) -> int:
        """Enabled admins."""
        with self._reading():
            return self._admin_count()

    def update_user(self, username: str, *, full_name: str | None = None,
                    role: Role | None = None, agent: str | None = None,
                    disabled: bool | None = None, by: str = "system") -> User:  # fmt: skip
        """Change what is given (agent="" removes the agent id). Disabling a user, or
        changing the role, ends the user's sessions: a changed person logs in afresh. An
        agent signed in at a seat who is disabled, is no agent any more or gets another
        agent id is signed out (cause `account`, by `by`): the seat's record would name
        someone who may not be there. AccountError: `unknown_user`, `bad_full_name`,
        `bad_role`, `bad_agent`, `agent_exists`, `last_admin` (the last enabled admin
        disabled or demoted)."""
        name = None if full_name is None else _check_full_name(full_name)
        new_role = None if role is None else _check_role(role)
        with self._writing():
            old = self._get(username)
            role_after = old.role if new_role is None else new_role
            agent_after = old.agent if agent is None else (agent or None)
            _check_agent(agent_after, role_after)
            if agent_after != old.agent:
                self._check_agent_free(agent_after, username)
            disabled_after = old.disabled if disabled is None else disabled
            was_admin = old.role is Role.ADMIN and not old.disabled
            if was_admin and (role_after is not Role.ADMIN or disabled_after) \
                    and self._admin_count() <= 1:  # fmt: skip
                raise AccountError("last_admin", f"{username!r} is the last enabled admin: "
                                   "make another admin first")  # fmt: skip
            self._db.query(
                "UPDATE account_users SET full_name = ?, role = ?, agent = ?, disabled = ? "
                "WHERE username = ?",
                (old.full_name if name is None else name, role_after.value, agent_after,
                 disabled_after, username))  # fmt: skip
            if (disabled_after and not old.disabled) or role_after is not old.role:
                self._end_live(username, time.time(),
                               "disabled" if disabled_after else "role changed")  # fmt: skip
            signin = self._open_signin(username=username)
            if signin is not None and (disabled_after or role_after is not Role.AGENT
                                       or agent_after != old.agent):  # fmt: skip
                t = time.time()
                self._close(signin, t, by, "account")
                self._set_seat(signin.seat, None, t, by, "account", previous=signin.agent)
            return self._get(username)

    def set_password(self, username: str, new: str, *, old: str | None = None,
                     by_admin: bool = False, now: float | None = None) -> User:  # fmt: skip
        """The user's own change (`old` required; a wrong one is a failed login: AuthError
        `bad_credentials`, and counts towards the lockout) clears `must_change_password`. An
        admin's reset (`by_admin`) sets it, lifts a lockout and ends all the user's sessions.
        AccountError: `unknown_user`, `old_password_required`, `weak_password`,
        `same_password`."""
        t = _now(now)
        with self._reading():
            rows = self._user_row(username, with_hash=True)
        if not rows:
            raise AccountError("unknown_user", f"no user {username!r}")
        current_hash = str(rows[0][8])
        if not by_admin and old is None:
            raise AccountError("old_password_required", "changing one's own password needs "
                               "the current one (old=...)")  # fmt: skip
        _check_password(new, username)
        if not by_admin:
            assert old is not None
            self._login(username, old, t)  # raises AuthError, counting the failure
        if self._verify(current_hash, new):
            raise AccountError("same_password", "the new password is the current one")
        hashed = self.HASHER.hash(new)
        with self._writing():
            self._get(username)
            if by_admin:
                self._db.query(
                    "UPDATE account_users SET password_hash = ?, password_changed = ?, "
                    "must_change_password = ?, failures = 0, first_failure = NULL, "
                    "locked_until = NULL WHERE username = ?", (hashed, t, True, username))
                self._end_live(username, t, "password reset")
            else:
                self._db.query(
                    "UPDATE account_users SET password_hash = ?, password_changed = ?, "
                    "must_change_password = ? WHERE username = ?", (hashed, t, False, username))
            return self._get(username)

    def authenticate(self, username: str, password: str, *, now: float | None = None) -> User:
        """The user if the password is right. AuthError `bad_credentials` (unknown user or
        wrong password, alike), `locked` (MAX_FAILURES failures within LOCKOUT_S: refused
        even with the right password until LOCKOUT_S after the last), `disabled` (only said
        to whoever knows the password)."""
        return self._login(username.strip().lower(), password, _now(now))

    def _login(self, username: str, password: str, now: float) -> User:
        with self._reading():
            rows = self._db.query(
                f"SELECT {_USER_COLUMNS}, password_hash, locked_until FROM account_users "
                "WHERE username = ?", (username,))  # fmt: skip
        if not rows:
            # the same work as a real check, so that response time tells no usernames
            self._verify(self._dummy_hash(), password)
            raise AuthError("bad_credentials", "wrong username or password")
        row = rows[0]
        stored_hash, locked_until = str(row[8]), row[9]
        if locked_until is not None and now < locked_until:
            raise AuthError("locked", f"too many failed logins: locked for "
                            f"{math.ceil((locked_until - now) / 60)} more minutes")  # fmt: skip
        if not self._verify(stored_hash, password):
            self._count_failure(username, now)
            raise AuthError("bad_credentials", "wrong username or password")
        user = _user(row)
        rehashed = self.HASHER.hash(password) if self._needs_rehash(stored_hash) else None
        with self._writing():
            self._db.query("UPDATE account_users SET failures = 0, first_failure = NULL, "
                           "locked_until = NULL WHERE username = ?", (username,))  # fmt: skip
            if rehashed is not None:
                # only if unchanged meanwhile: a concurrent password change wins
                self._db.query("UPDATE account_users SET password_hash = ? "
                               "WHERE username = ? AND password_hash = ?",
                               (rehashed, username, stored_hash))  # fmt: skip
        if user.disabled:
            raise AuthError("disabled", f"account {username!r} is disabled")
        return user

    def _count_failure(self, username: str, now: float) -> None:
        with self._writing():
            rows = self._db.query("SELECT failures, first_failure, locked_until "
                                  "FROM account_users WHERE username = ?", (username,))  # fmt: skip
            if not rows:
                return
            failures, first, locked_until = int(rows[0][0]), rows[0][1], rows[0][2]
            if locked_until is not None and now < locked_until:
                return  # locked meanwhile by a concurrent attempt
            if first is None or now - first >= self.LOCKOUT_S:
                failures, first = 0, now  # a new window starts with this failure
            failures += 1
            if failures >= self.MAX_FAILURES:
                until = now + self.LOCKOUT_S
                self._db.query("UPDATE account_users SET failures = 0, first_failure = NULL, "
                               "locked_until = ? WHERE username = ?",
                               (until, username))  # fmt: skip
                self._append_audit(t=now, actor=None, action="login.lockout", target=username,
                                   outcome="locked", detail={"failures": failures,
                                                             "until": until}, ip=None)  # fmt: skip
            else:
                self._db.query("UPDATE account_users SET failures = ?, first_failure = ? "
                               "WHERE username = ?", (failures, first, username))  # fmt: skip

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.HASHER.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self.HASHER.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def _dummy_hash(self) -> str:
        hasher = self.HASHER
        if self._dummy is None or self._dummy[0] is not hasher:
            self._dummy = (hasher, hasher.hash(secrets.token_urlsafe(16)))
        return self._dummy[1]

    def _user_row(self, username: str, *, with_hash: bool = False) -> list[tuple[Any, ...]]:
        extra = ", password_hash" if with_hash else ""
        return self._db.query(f"SELECT {_USER_COLUMNS}{extra} FROM account_users "
                              "WHERE username = ?", (username,))  # fmt: skip

    def _get(self, username: str) -> User:
        rows = self._user_row(username)
        if not rows:
            raise AccountError("unknown_user", f"no user {username!r}")
        return _user(rows[0])

    def _get_enabled(self, username: str) -> User:
        # who requests, approves or revokes: a disabled account acts no more
        user = self._get(username)
        if user.disabled:
            raise AccountError("disabled", f"user {username!r} is disabled")
        return user

    def _check_agent_free(self, agent: str | None, username: str) -> None:
        if agent is None:
            return
        rows = self._db.query("SELECT username FROM account_users WHERE agent = ? AND "
                              "username <> ?", (agent, username))  # fmt: skip
        if rows:
            raise AccountError("agent_exists", f"agent id {agent!r} is the account of "
                               f"{rows[0][0]!r} already")  # fmt: skip

    def _admin_count(self) -> int:
        ((n,),) = self._db.query("SELECT count(*) FROM account_users WHERE role = ? AND "
                                 "NOT disabled", (Role.ADMIN.value,))  # fmt: skip
        return int(n)

    # --- sessions ---------------------------------------------------------------------

    def open_session(self, user: User, *, ip: str = "",
                     now: float | None = None) -> tuple[str, Session, list[str]]:  # fmt: skip
        """A new session of `user` (after `authenticate`): (bearer token, session, ids of
        the sessions this ended). An agent's other sessions end: one live session per agent.
        AuthError `disabled` if the user was disabled meanwhile."""
        t = _now(now)
        token = secrets.token_urlsafe(32)
        session_id = secrets.token_hex(8)
        with self._writing():
            current = self._get(user.username)
            if current.disabled:
                raise AuthError("disabled", f"account {user.username!r} is disabled")
            ended = self._end_live(user.username, t, "login elsewhere") \
                if current.role is Role.AGENT else []  # fmt: skip
            self._db.query(
                "INSERT INTO account_sessions (id, token_sha256, username, created, expires, "
                "ip) VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, _digest(token), user.username, t, t + self.SESSION_TTL_S,
                 _clean(ip, AUDIT_TEXT_MAX)))  # fmt: skip
            roles = self._roles({user.username: current.role}, t)
        session = Session(id=session_id, username=user.username, role=current.role,
                          roles=roles[user.username], created=t, expires=t + self.SESSION_TTL_S,
                          ip=_clean(ip, AUDIT_TEXT_MAX))  # fmt: skip
        return token, session, ended

    def session(self, token: str, *, now: float | None = None) -> Session | None:
        """The live session of `token`, or None (unknown, ended, expired, user disabled)."""
        if not token or len(token) > 512:
            return None
        found = self._live_sessions(_now(now), token_sha256=_digest(token))
        return found[0] if found else None

    def sessions(self, username: str | None = None, *,
                 now: float | None = None) -> list[Session]:  # fmt: skip
        """Live sessions (of `username`), oldest first."""
        return self._live_sessions(_now(now), username=username)

    def end_session(self, token: str, *, now: float | None = None) -> bool:
        """End the session of `token` (logout); False if it was not live."""
        t = _now(now)
        with self._writing():
            rows = self._db.query(
                "UPDATE account_sessions SET ended = ?, ended_why = ? WHERE token_sha256 = ? "
                "AND ended IS NULL AND expires > ? RETURNING id",
                (t, "logout", _digest(token), t))  # fmt: skip
        return bool(rows)

    def end_sessions(self, username: str) -> int:
        """End every live session of `username`; how many."""
        with self._writing():
            return len(self._end_live(username, time.time(), "ended by admin"))

    def _end_live(self, username: str, now: float, why: str) -> list[str]:
        """End the user's sessions; the ids of those that were live at `now`."""
        # Expired ones end too: with a caller's clock behind the wall clock (or a test's
        # ahead of it) "expired" is relative, and an ended session stays ended.
        rows = self._db.query(
            "UPDATE account_sessions SET ended = ?, ended_why = ? WHERE username = ? "
            "AND ended IS NULL RETURNING id, expires", (now, why, username))
        return sorted(str(i) for i, expires in rows if expires > now)

    def _live_sessions(self, now: float, *, token_sha256: str | None = None,
                       username: str | None = None) -> list[Session]:  # fmt: skip
        where = ["s.ended IS NULL", "s.expires > ?", "NOT u.disabled"]
        args: list[Any] = [now]
        if token_sha256 is not None:
            where.append("s.token_sha256 = ?")
            args.append(token_sha256)
        if username is not None:
            where.append("s.username = ?")
            args.append(username)
        with self._reading():
            rows = self._db.query(
                "SELECT s.id, s.username, u.role, s.created, s.expires, s.ip "
                "FROM account_sessions s JOIN account_users u ON u.username = s.username "
                f"WHERE {' AND '.join(where)} ORDER BY s.created, s.id", args)
            roles = self._roles({r[1]: Role(r[2]) for r in rows}, now) if rows else {}
        return [Session(id=r[0], username=r[1], role=Role(r[2]), roles=roles[r[1]],
                        created=float(r[3]), expires=float(r[4]), ip=r[5])
                for r in rows]  # fmt: skip

    def _roles(self, own: Mapping[str, Role], now: float) -> dict[str, frozenset[Role]]:
        """Each user's own role with the roles of their active delegations."""
        where = ""
        args: list[Any] = [now]
        if len(own) == 1:
            where = " AND grantee = ?"
            args.append(next(iter(own)))
        rows = self._db.query(
            "SELECT grantee, role FROM account_delegations WHERE approved IS NOT NULL AND "
            f"revoked IS NULL AND expires > ?{where}", args)  # fmt: skip
        granted: dict[str, set[Role]] = {}
        for grantee, role in rows:
            granted.setdefault(grantee, set()).add(Role(role))
        return {name: frozenset({role, *granted.get(name, ())}) for name, role in own.items()}

    # --- delegations ------------------------------------------------------------------

    def request_delegation(self, *, grantee: str, role: Role, reason: str, expires: float,
                           requested_by: str, now: float | None = None) -> Delegation:  # fmt: skip
        """Ask for `grantee` to hold `role` until `expires`; not active until approved.
        AccountError: `bad_role`, `bad_reason`, `bad_expiry`, `unknown_user`, `disabled`
        (grantee or requester), `same_role`."""
        t = _now(now)
        role = _check_role(role)
        text = reason.strip()
        if not 1 <= len(text) <= REASON_MAX or "\x00" in text:
            raise AccountError("bad_reason", f"a delegation needs a reason of 1-{REASON_MAX} "
                               "characters")  # fmt: skip
        if not (math.isfinite(expires) and t < expires <= t + self.MAX_DELEGATION_S):
            raise AccountError("bad_expiry", f"expires {expires} is not after now ({t:.0f}) "
                               f"and at most {self.MAX_DELEGATION_S / 86400:g} days "
                               "ahead")  # fmt: skip
        with self._writing():
            who = self._get(grantee)
            self._get_enabled(requested_by)
            if who.disabled:
                raise AccountError("disabled", f"user {grantee!r} is disabled")
            if who.role is role:
                raise AccountError("same_role", f"{role.value} is {grantee!r}'s own role")
            ((new_id,),) = self._db.query(
                "INSERT INTO account_delegations (grantee, role, reason, requested_by, "
                "requested, expires) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (grantee, role.value, text, requested_by, t, expires))  # fmt: skip
            return self._delegation(int(new_id))

    def approve_delegation(self, id: int, *, by: str, now: float | None = None) -> Delegation:
        """Approve a requested delegation. AccountError: `unknown_delegation`,
        `unknown_user`, `disabled` (the approver), `self_approval` (by the requester or the
        grantee), `not_requested` (approved or revoked already), `expired`."""
        t = _now(now)
        with self._writing():
            d = self._delegation(id)
            self._get_enabled(by)
            if by in (d.requested_by, d.grantee):
                raise AccountError("self_approval", f"delegation {id} needs approval by someone "
                                   "other than its requester and its grantee")  # fmt: skip
            if d.approved is not None or d.revoked is not None:
                raise AccountError("not_requested", f"delegation {id} is "
                                   f"{'revoked' if d.revoked is not None else 'approved'} "
                                   "already")  # fmt: skip
            if t >= d.expires:
                raise AccountError("expired", f"delegation {id} expired before its approval")
            self._db.query("UPDATE account_delegations SET approved_by = ?, approved = ? "
                           "WHERE id = ?", (by, t, id))  # fmt: skip
            return self._delegation(id)

    def revoke_delegation(self, id: int, *, by: str, now: float | None = None) -> Delegation:
        """End a delegation now, approved or still requested (a refusal). AccountError:
        `unknown_delegation`, `unknown_user`, `disabled` (the revoker), `revoked`
        (already)."""
        t = _now(now)
        with self._writing():
            d = self._delegation(id)
            self._get_enabled(by)
            if d.revoked is not None:
                raise AccountError("revoked", f"delegation {id} was revoked already")
            self._db.query("UPDATE account_delegations SET revoked_by = ?, revoked = ? "
                           "WHERE id = ?", (by, t, id))  # fmt: skip
            return self._delegation(id)

    def delegations(self, *, grantee: str | None = None, active_only: bool = False,
                    now: float | None = None) -> list[Delegation]:  # fmt: skip
        """Delegations in the order they were requested."""
        where: list[str] = []
        args: list[Any] = []
        if grantee is not None:
            where.append("grantee = ?")
            args.append(grantee)
        if active_only:
            where.append("approved IS NOT NULL AND revoked IS NULL AND expires > ?")
            args.append(_now(now))
        with self._reading():
            rows = self._db.query(
                f"SELECT {_DELEGATION_COLUMNS} FROM account_delegations"
                + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id", args)
        return [_delegation(r) for r in rows]

    def _delegation(self, id: int) -> Delegation:
        rows = self._db.query(f"SELECT {_DELEGATION_COLUMNS} FROM account_delegations "
                              "WHERE id = ?", (id,))  # fmt: skip
        if not rows:
            raise AccountError("unknown_delegation", f"no delegation {id}")
        return _delegation(rows[0])

    # --- agents at seats ---------------------------------------------------------------

    def sign_in(self, *, seat: str, username: str, by: str, supervisor: bool = False,
                now: float | None = None) -> SignInChange:  # fmt: skip
        """Sign agent `username` in at `seat`, on behalf of `by` (the agent itself, or a
        supervisor: `supervisor`). One agent at one seat: a sign-in elsewhere is signed out
        (cause `moved`). One agent per seat: another agent there is refused (`seat_taken`,
        naming them) unless `supervisor`, who signs them out (cause `supervisor`). Signing
        in where one is signed in already changes nothing (no seats in the answer).
        AccountError: `bad_seat`, `unknown_user`, `disabled` (the agent or `by`),
        `not_agent` (no agent role or no agent id), `seat_taken`."""
        _check_seat(seat)
        t = _now(now)
        with self._writing():
            self._get_enabled(by)
            user = self._get(username)
            if user.disabled:
                raise AccountError("disabled", f"user {username!r} is disabled")
            if user.role is not Role.AGENT or user.agent is None:
                raise AccountError("not_agent", f"{username!r} is not an agent with an agent "
                                   "id: only agents are signed in at seats")  # fmt: skip
            mine = self._open_signin(username=username)
            if mine is not None and mine.seat == seat:
                return SignInChange(signin=mine, seats=())
            there = self._open_signin(seat=seat)
            if there is not None and not supervisor:
                raise AccountError("seat_taken", f"seat {seat} is taken: {there.name} "
                                   f"({there.username}, agent {there.agent}) is signed in "
                                   "there; they sign out first, or a supervisor signs you "
                                   "in")  # fmt: skip
            cause: Literal["self", "supervisor"] = "supervisor" if supervisor else "self"
            changed: list[SeatAgentRecord] = []
            if mine is not None:  # first, so the old seat frees the agent (unique index)
                self._close(mine, t, by, "moved")
                changed.append(self._set_seat(mine.seat, None, t, by, "moved",
                                              previous=mine.agent))  # fmt: skip
            if there is not None:
                self._close(there, t, by, "supervisor")
            self._db.query(
                f"INSERT INTO account_signins ({_SIGNIN_COLUMNS.removeprefix('id, ')}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                (seat, user.agent, username, user.full_name, t, by, cause))  # fmt: skip
            changed.append(self._set_seat(seat, user, t, by, cause,
                                          previous=None if there is None else there.agent))
            signin = self._open_signin(username=username)
            replaced = None if there is None else self._signin_by_id(there.id)
        return SignInChange(signin=signin, seats=tuple(changed),
                            moved_from=None if mine is None else mine.seat,
                            replaced=replaced)  # fmt: skip

    def sign_out(self, *, by: str, seat: str | None = None, username: str | None = None,
                 cause: SignInCause = "self", now: float | None = None) -> SignInChange:
        """Sign out whoever is at `seat`, or agent `username` wherever it is. AccountError:
        `bad_seat`, `unknown_user`, `disabled` (`by`), `not_signed_in`."""
        if (seat is None) == (username is None):
            raise ValueError("sign_out takes a seat or a username")
        if seat is not None:
            _check_seat(seat)
        t = _now(now)
        with self._writing():
            self._get_enabled(by)
            if username is not None:
                self._get(username)
            there = self._open_signin(seat=seat, username=username)
            if there is None:
                raise AccountError("not_signed_in", f"nobody is signed in at seat {seat}"
                                   if seat is not None else
                                   f"{username!r} is not signed in at any seat")  # fmt: skip
            self._close(there, t, by, cause)
            record = self._set_seat(there.seat, None, t, by, cause, previous=there.agent)
            return SignInChange(signin=None, seats=(record,),
                                ended=self._signin_by_id(there.id))  # fmt: skip

    def signin_of(self, username: str) -> SignIn | None:
        """The agent's current sign-in."""
        with self._reading():
            return self._open_signin(username=username)

    def last_signout(self, username: str) -> SignIn | None:
        """The agent's latest ended sign-in (a move, a supervisor or the agent's own)."""
        with self._reading():
            rows = self._db.query(f"SELECT {_SIGNIN_COLUMNS} FROM account_signins WHERE "
                                  "username = ? AND signed_out IS NOT NULL ORDER BY "
                                  "signed_out DESC, id DESC LIMIT 1", (username,))  # fmt: skip
        return _signin(rows[0]) if rows else None

    def signed_in(self) -> list[SignIn]:
        """Every current sign-in, by seat."""
        with self._reading():
            rows = self._db.query(f"SELECT {_SIGNIN_COLUMNS} FROM account_signins WHERE "
                                  "signed_out IS NULL ORDER BY seat")  # fmt: skip
        return [_signin(r) for r in rows]

    def signins(self, *, since: float, until: float) -> list[SignIn]:
        """Every sign-in interval that overlaps [since, until), in the order they began."""
        with self._reading():
            rows = self._db.query(
                f"SELECT {_SIGNIN_COLUMNS} FROM account_signins WHERE signed_in < ? AND "
                "(signed_out IS NULL OR signed_out > ? OR (signed_out = signed_in AND "
                "signed_in >= ?)) ORDER BY signed_in, id", (until, since, since))  # fmt: skip
        return [_signin(r) for r in rows]

    def seat_agents(self, *, unpublished_only: bool = False) -> list[SeatAgentRecord]:
        """Every seat's latest change (what its retained seat/{seat}/agent must hold)."""
        where = " WHERE NOT published" if unpublished_only else ""
        with self._reading():
            rows = self._db.query(f"SELECT {_SEAT_AGENT_COLUMNS} FROM account_seat_agents"
                                  f"{where} ORDER BY seat")  # fmt: skip
        return [_seat_agent(r) for r in rows]

    def seat_agent(self, seat: str) -> SeatAgentRecord | None:
        with self._reading():
            rows = self._db.query(f"SELECT {_SEAT_AGENT_COLUMNS} FROM account_seat_agents "
                                  "WHERE seat = ?", (seat,))  # fmt: skip
        return _seat_agent(rows[0]) if rows else None

    def mark_published(self, seat: str, change: str) -> bool:
        """The broker took `change` of `seat`; False if a later change replaced it."""
        with self._writing():
            rows = self._db.query("UPDATE account_seat_agents SET published = ? WHERE "
                                  "seat = ? AND change = ? RETURNING seat",
                                  (True, seat, change))  # fmt: skip
        return bool(rows)

    def _open_signin(self, *, seat: str | None = None,
                     username: str | None = None) -> SignIn | None:  # fmt: skip
        column, value = ("seat", seat) if seat is not None else ("username", username)
        rows = self._db.query(f"SELECT {_SIGNIN_COLUMNS} FROM account_signins WHERE "
                              f"{column} = ? AND signed_out IS NULL", (value,))  # fmt: skip
        return _signin(rows[0]) if rows else None

    def _signin_by_id(self, id: int) -> SignIn:
        rows = self._db.query(f"SELECT {_SIGNIN_COLUMNS} FROM account_signins WHERE id = ?",
                              (id,))  # fmt: skip
        return _signin(rows[0])

    def _close(self, signin: SignIn, t: float, by: str, cause: SignInCause) -> None:
        self._db.query("UPDATE account_signins SET signed_out = ?, signed_out_by = ?, "
                       "out_cause = ? WHERE id = ?", (max(t, signin.signed_in), by, cause,
                                                      signin.id))  # fmt: skip

    def _set_seat(self, seat: str, user: User | None, t: float, by: str, cause: SignInCause,
                  *, previous: str | None) -> SeatAgentRecord:  # fmt: skip
        change = "sa-" + secrets.token_hex(12)
        values = (change, None if user is None else user.agent,
                  None if user is None else user.username,
                  None if user is None else user.full_name, t, by, cause, previous, False)
        updated = self._db.query(
            "UPDATE account_seat_agents SET change = ?, agent = ?, username = ?, name = ?, "
            "t = ?, by_user = ?, cause = ?, previous = ?, published = ? WHERE seat = ? "
            "RETURNING seat", (*values, seat))  # fmt: skip
        if not updated:
            self._db.query(f"INSERT INTO account_seat_agents ({_SEAT_AGENT_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (seat, *values))  # fmt: skip
        rows = self._db.query(f"SELECT {_SEAT_AGENT_COLUMNS} FROM account_seat_agents "
                              "WHERE seat = ?", (seat,))  # fmt: skip
        return _seat_agent(rows[0])

    # --- audit ------------------------------------------------------------------------

    def audit(self, *, action: str, outcome: str, actor: str | None = None,
              target: str | None = None, detail: Mapping[str, Any] | None = None,
              ip: str | None = None, now: float | None = None) -> AuditEntry:  # fmt: skip
        """Append an entry. Values under keys naming a password, token or secret are kept as
        `***`; a detail that is not JSON is kept as text. AccountError `bad_audit` for an
        empty action or outcome."""
        if not action.strip() or not outcome.strip():
            raise AccountError("bad_audit", "an audit entry needs an action and an outcome")
        with self._writing():
            return self._append_audit(t=_now(now), actor=actor, action=action, target=target,
                                      outcome=outcome, detail=detail, ip=ip)  # fmt: skip

    def _append_audit(self, *, t: float, actor: str | None, action: str, target: str | None,
                      outcome: str, detail: Mapping[str, Any] | None,
                      ip: str | None) -> AuditEntry:  # fmt: skip
        text = json.dumps(_redacted(dict(detail or {})), default=str, sort_keys=True,
                          ensure_ascii=False)  # fmt: skip
        text = _clean(text, AUDIT_DETAIL_MAX + 1)
        if len(text) > AUDIT_DETAIL_MAX:
            text = json.dumps({"truncated": text[: AUDIT_DETAIL_MAX // 2]}, ensure_ascii=False)

        def opt(value: str | None) -> str | None:
            return None if value is None else _clean(value, AUDIT_TEXT_MAX)

        ((new_id,),) = self._db.query(
            "INSERT INTO account_audit (t, actor, action, target, outcome, detail, ip) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (t, opt(actor), _clean(action.strip(), AUDIT_TEXT_MAX), opt(target),
             _clean(outcome.strip(), AUDIT_TEXT_MAX), text, opt(ip)))  # fmt: skip
        rows = self._db.query(f"SELECT {_AUDIT_COLUMNS} FROM account_audit WHERE id = ?",
                              (new_id,))  # fmt: skip
        return _audit_entry(rows[0])

    def audit_log(self, *, actor: str | None = None, action: str | None = None,
                  since: float | None = None, until: float | None = None,
                  before_id: int | None = None, limit: int = 100) -> list[AuditEntry]:  # fmt: skip
        """Entries with since <= t < until, newest first, at most `limit` (1-1000); page on
        with before_id = the last id of a page. AccountError `bad_limit`."""
        if not 1 <= limit <= AUDIT_LIMIT_MAX:
            raise AccountError("bad_limit", f"limit {limit} is not 1-{AUDIT_LIMIT_MAX}")
        where: list[str] = []
        args: list[Any] = []
        for column, op, value in (("actor", "=", actor), ("action", "=", action),
                                  ("t", ">=", since), ("t", "<", until),
                                  ("id", "<", before_id)):  # fmt: skip
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        with self._reading():
            rows = self._db.query(
                f"SELECT {_AUDIT_COLUMNS} FROM account_audit"
                + (f" WHERE {' AND '.join(where)}" if where else "")
                + " ORDER BY id DESC LIMIT ?", [*args, limit])  # fmt: skip
        return [_audit_entry(r) for r in rows]


def _digest(token: str) -> str:
    # a token is 256 random bits: a plain SHA-256 is enough for a stolen database to tell none
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
