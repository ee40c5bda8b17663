"""Request and response bodies of the supervisor API (docs/api.md). Requests are strict:
an unknown field, a wrong type or a value out of range is a 422 naming the field, and
nothing is done."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from gateway.api.accounts import Role
from gateway.contract.payloads import ReasonName
from gateway.fleet.flash import parse_bundle
from gateway.seatlink.codec import SETTINGS

SeatId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[a-z0-9._-]+$")]
Password = Annotated[str, Field(min_length=1, max_length=128)]
Note = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)


def _report_day(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"a day from {FIRST_DAY} to {LAST_DAY}")
    return day


# a day of the reports: year 1 or 9999 is a date, but no site's day (its neighbours overflow)
ReportDay = Annotated[date, AfterValidator(_report_day)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth and users ---------------------------------------------------------------------------


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires: float
    session: str
    must_change_password: bool
    ended_sessions: int  # an agent's earlier sessions this login ended


class Me(BaseModel):
    username: str
    full_name: str
    role: Role
    roles: list[Role]  # with active delegations
    agent: str | None
    session: str
    expires: float
    must_change_password: bool


class PasswordChange(Strict):
    old: Password
    new: Password


class UserOut(BaseModel):
    username: str
    full_name: str
    role: Role
    agent: str | None
    disabled: bool
    created: float
    password_changed: float
    must_change_password: bool


class UserCreate(Strict):
    username: Username
    full_name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    agent: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None
    password: Password


class UserUpdate(Strict):
    full_name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    role: Role | None = None
    agent: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None
    disabled: bool | None = None


class PasswordReset(Strict):
    password: Password


class DelegationRequest(Strict):
    grantee: Username
    role: Role
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    hours: Annotated[float, Field(gt=0, le=30 * 24)]


class DelegationOut(BaseModel):
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
    active: bool


class AuditOut(BaseModel):
    id: int
    t: float
    actor: str | None
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any]
    ip: str | None


# --- seats and commands -----------------------------------------------------------------------


class Seat(BaseModel):
    seat: str
    online: bool
    state: str | None
    reason: str | None
    call: int | None
    since: float | None
    time_in_state_s: float | None
    help: bool
    off_hook: bool
    hold_over_limit: bool
    pending: dict[str, Any] | None
    misses: int
    gateway: str | None
    board: str | None
    board_name: str | None = None  # the board type its hello named: microbit, pico, virtual...
    boot: int | None
    firmware: str | None
    health: dict[str, Any] | None
    link_quality: float | None
    availability: str | None
    firmware_update: dict[str, Any] | None = None  # the latest remote update (seat_firmware)
    # who is signed in at the seat (the retained seat/{seat}/agent; docs/api.md)
    agent: str | None = None
    agent_name: str | None = None
    agent_since: float | None = None


class ForceState(Strict):
    state: Literal["ready", "not_ready", "logged_out"]
    reason: ReasonName | None = None  # not_ready only; default "supervisor"

    @model_validator(mode="after")
    def _reason(self) -> ForceState:
        if self.state != "not_ready" and self.reason is not None:
            raise ValueError(f"a reason goes with not_ready only, not {self.state}")
        return self


class SeatMessage(Strict):
    """A message on the seat's light: the colour flashes over it for `seconds` (0 ends
    one early)."""

    colour: Literal["red", "green", "yellow", "blue", "magenta", "cyan", "white"]
    seconds: Annotated[int, Field(ge=0, le=600)] = 30


class SeatSettings(Strict):
    """Ring, ACW and hold timers a supervisor may push (docs/seat.md, Settings): at least
    one, each within the seat's own range (`gateway.seatlink.codec.SETTINGS`)."""

    ring_limit: int | None = None
    ring_ms: int | None = None
    miss_limit: int | None = None
    acw_s: int | None = None
    acw_stay_nr: int | None = None
    hold_remind_s: int | None = None
    hold_limit_s: int | None = None
    away_s: int | None = None

    @model_validator(mode="after")
    def _ranges(self) -> SeatSettings:
        given = self.given()
        if not given:
            raise ValueError("no setting given: at least one of " + ", ".join(_SETTABLE))
        for name, value in given.items():
            spec = _SETTABLE[name]
            if not spec.minimum <= value <= spec.maximum:
                raise ValueError(f"{name} {value} is not {spec.minimum}..{spec.maximum} "
                                 f"{spec.unit}")  # fmt: skip
        return self

    def given(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


_SETTABLE = {spec.name: spec for spec in SETTINGS.values()
             if spec.name in SeatSettings.model_fields}  # fmt: skip


class GroupSettings(Strict):
    seats: Annotated[list[SeatId], Field(min_length=1)]
    settings: SeatSettings


class Outcome(BaseModel):
    """What became of one command (docs/api.md: outcomes)."""

    seat: str | None = None
    command: str
    id: str
    status: Literal["done", "rejected", "expired", "failed", "invalid", "denied", "again",
                    "unknown", "no_result"]  # fmt: skip
    detail: str = ""
    error: str | None = None
    field: int | None = None


class GroupOutcome(BaseModel):
    outcomes: list[Outcome]
    done: int
    not_done: int


# --- alerts, compliance -----------------------------------------------------------------------


class AlertAction(Strict):
    note: Note = ""


class DncAdd(Strict):
    number: Annotated[str, Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 ()./-]+$")]


# --- firmware ---------------------------------------------------------------------------------


class FirmwareUpdate(Strict):
    """Update these seats to `bundle` (a firmware bundle, docs/fleet.md): each gateway takes
    its seats one after another and stops at the first that does not come back on the new
    version (rolled back)."""

    seats: Annotated[list[SeatId], Field(min_length=1, max_length=512)]
    bundle: dict[str, Any]
    hello_deadline_s: Annotated[float, Field(ge=5, le=600)] = 60.0
    idle_wait_s: Annotated[float, Field(ge=0, le=3600)] = 300.0

    @model_validator(mode="after")
    def _checked(self) -> FirmwareUpdate:
        if len(set(self.seats)) != len(self.seats):
            raise ValueError("a seat is listed twice")
        # the whole bundle, every file's size and SHA-256, before anything is sent
        parse_bundle(self.bundle, where="bundle")
        return self


class FirmwareJobView(BaseModel):
    gateway: str
    job: str | None
    by: str | None = None
    status: str
    to_version: str | None = None
    seats: dict[str, str] = {}
    detail: str = ""
    t: float | None = None


class FirmwareUpdateAccepted(BaseModel):
    to_version: str
    jobs: list[FirmwareJobView]  # one per gateway, as each gateway answered


# --- agents at seats --------------------------------------------------------------------------

_SEAT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def seat_id(value: str) -> str:
    """The contract's ids (gateway/contract/topics.py ID_PATTERN), said plainly."""
    if not _SEAT_ID.fullmatch(value):
        raise ValueError(f"seat id {value[:80]!r} is not 1-64 characters of A-Z a-z 0-9 _ . - "
                         "(as on the desk's label, e.g. s101)")  # fmt: skip
    return value


# a seat id with a message a person can act on, where the pattern's own would not do
CheckedSeat = Annotated[str, Field(json_schema_extra={"pattern": r"^[A-Za-z0-9_.-]{1,64}$"}),
                        AfterValidator(seat_id)]  # fmt: skip
SignInCause = Literal["self", "supervisor", "moved", "account"]


class SignInRequest(Strict):
    """An agent signs in at the desk's seat."""

    seat: CheckedSeat


class SignInFor(Strict):
    """A supervisor signs an agent in at a seat."""

    username: Username


class SignInOut(BaseModel):
    """An agent signed in at a seat (a current sign-in)."""

    seat: str
    agent: str
    username: str
    name: str
    since: float
    by: str
    cause: Literal["self", "supervisor"]


class SignInInterval(BaseModel):
    """One agent's time at one seat; `until` is null while it lasts."""

    seat: str
    agent: str
    username: str
    name: str
    since: float
    by: str
    cause: Literal["self", "supervisor"]
    until: float | None
    until_by: str | None
    until_cause: SignInCause | None


class SignInAnswer(BaseModel):
    """What a sign-in or sign-out did."""

    signin: SignInOut | None  # the agent's sign-in after it (null after a sign-out)
    changed: bool  # false: it was so already, nothing was changed or published
    moved_from: str | None = None  # the seat the agent was signed out of (cause moved)
    replaced: SignInInterval | None = None  # the agent a supervisor's sign-in signed out
    ended: SignInInterval | None = None  # a sign-out: the interval it ended
    changes: dict[str, str] = {}  # seat -> the id of its seat/{seat}/agent message
    # the broker took every change (seat/{seat}/agent); false: stored, and published when
    # the broker is back
    published: bool
    message: str  # for the person at the desk


class MySignIn(BaseModel):
    signin: SignInOut | None
    last_signout: SignInInterval | None  # the latest ended one (a move, a supervisor...)


class MyDesk(BaseModel):
    """An agent's own page: where it is signed in, its seat's state, its KPIs against the
    site's targets and the open alerts of its seat."""

    username: str
    full_name: str
    agent: str | None
    signin: SignInOut | None
    last_signout: SignInInterval | None
    seat: Seat | None  # the seat's live state, when the floor knows the seat
    kpis: dict[str, Any] | None  # the core's live kpi/agent/<agent id>, when there is one
    targets: dict[str, float]
    alerts: list[dict[str, Any]]  # the open alerts of the seat signed in at


class SignInHistory(BaseModel):
    day: date
    timezone: str
    signins: list[SignInInterval]  # every interval that overlaps the local day


class DeskLink(BaseModel):
    seat: str
    url: str  # the desk's page, to print on the desk's label (or as a QR code)
