"""The JSON payloads of the MQTT contract, one model per topic (docs/mqtt.md, "Payloads").

Every payload carries `"v": 1`, the payload schema version: a subscriber refuses a version
it does not know instead of misreading it. Enumerations travel as lower-case names
(`"not_ready"`, `"meal"`), absent values as null. Incoming commands are parsed with
`parse_command`, which turns every way a command can be wrong into one `CommandError` with
a message a person can act on.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.seatlink.codec import MAX_SEQ, NUMBER_MAX, Reason, SettingKey, State

SCHEMA_VERSION = 1

StateName = Literal["logged_out", "ready", "not_ready", "ringing", "talking", "hold", "acw"]
ReasonName = Literal["break", "meal", "meeting", "training", "restroom", "coaching",
                     "no_answer", "away", "wrap", "supervisor"]  # fmt: skip
CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
CallId = Annotated[int, Field(ge=1, le=NUMBER_MAX)]


def state_name(state: State | int) -> StateName:
    name: StateName = State(state).name.lower()  # type: ignore[assignment]
    return name


def reason_name(reason: Reason | int | None) -> ReasonName | None:
    if reason is None or reason == 0:
        return None
    name: ReasonName = Reason(reason).name.lower()  # type: ignore[assignment]
    return name


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1  # SCHEMA_VERSION

    def dump(self) -> bytes:
        return self.model_dump_json().encode()


# --- edge -> everyone -------------------------------------------------------------------------


class SeatEvent(Payload):
    """seat/{seat}/event: one reliable seat frame, exactly as the seat reported it.

    `type` says which: hello (the board booted), snapshot (the whole state: truth),
    event (something happened: history), reject (a command the seat refused)."""

    # <board>-<boot>-<n>, n the frame's ordinal in its boot: the same frame always has the
    # same id; `seat_event_n` checks it against board, boot and seq
    id: str
    seat: str
    gateway: str
    board: str
    boot: int
    seq: int
    t: float  # when the gateway took it (Unix seconds)
    type: Literal["hello", "snapshot", "event", "reject"]
    data: dict[str, Any]


_ORDINAL = re.compile(r"[1-9][0-9]{0,17}")  # canonical, and within a signed 64-bit integer


def seat_event_n(event: SeatEvent) -> int | None:
    """The n of a seat event's id `<board>-<boot>-<n>` (n = 1, 2, ...: the frame's ordinal in
    its boot, counting on where the seq wraps), or None when the id is not one of this
    board, boot and seq: n in canonical decimal, and (n - 1) % 65535 + 1 == seq."""
    prefix = f"{event.board}-{event.boot}-"
    if not event.id.startswith(prefix):
        return None
    tail = event.id[len(prefix) :]
    if not _ORDINAL.fullmatch(tail):
        return None
    n = int(tail)
    return n if (n - 1) % MAX_SEQ + 1 == event.seq else None


class Pending(Payload):
    state: StateName
    reason: ReasonName | None = None


class SeatState(Payload):
    """seat/{seat}/state (retained): where the seat is now."""

    seat: str
    gateway: str
    board: str
    boot: int
    state: StateName
    reason: ReasonName | None
    call: int | None
    since: float  # when the seat entered this state (Unix seconds, gateway clock)
    help: bool
    off_hook: bool
    hold_over_limit: bool
    pending: Pending | None
    misses: int  # consecutive ring-no-answers
    t: float  # when this was published


class SeatAvailability(Payload):
    """seat/{seat}/availability (retained). Only as good as the gateway's own status: a
    seat behind a gateway whose status is offline is unavailable whatever this says."""

    seat: str
    gateway: str
    status: Literal["online", "offline"]
    why: str  # heartbeat, missed heartbeats, link closed, gateway stopped, ...
    t: float


class SeatHealth(Payload):
    """seat/{seat}/health (retained, QoS 0): the board's latest heartbeat and the link's
    counts as the gateway sees them, both since the gateway started."""

    seat: str
    gateway: str
    board: str
    link: str  # the link's URL or device path
    uptime_s: int
    free_heap: int
    worst_loop_ms: int
    firmware: str
    seat_bad_frames: int  # host frames the seat could not read
    seat_dropped_frames: int  # frames the seat's full queue gave up on
    seat_queue_depth: int
    seat_retransmits: int
    seat_loop_errors: int
    frames_in: int  # seat frames taken by the gateway
    crc_errors: int
    garbage: int  # lines that were not frames (CRC errors included)
    duplicates: int
    out_of_order: int
    retransmits: int  # host frames the gateway sent again
    resyncs: int
    reopens: int  # times the port was opened again after a failure
    t: float
    # the board type its hello named (microbit, pico, esp32, virtual); None: not known yet
    board_name: str | None = None
    # frames the seat's full queue dropped, jumped over by its collapse snapshot (counted by
    # the seat too, in seat_dropped_frames, with frames the gateway had already taken)
    skipped: int = 0
    # frames the seat held unacked when it restarted, as far as the gateway knew of them
    # (its frames and heartbeats before the reset): gone with the seat's RAM
    lost_at_reset: int = 0
    # frames taken in order and acked whose fields made no valid message: not published
    invalid_frames: int = 0


class CommandResult(Payload):
    """seat/{seat}/cmd/result: what became of a command, once per command id.

    done: the seat acknowledged it and sent no reject within the reject window;
    rejected: the seat refused it (error, field as in docs/protocol.md Rejects), nothing
    changed; expired: not delivered before its deadline; failed: sent and never
    acknowledged (the seat may or may not have it); invalid: not a valid command, never
    sent. A `rejected` may follow a `done` if the reject arrives after the window
    (`late: true`)."""

    id: str | None
    seat: str
    gateway: str
    status: Literal["done", "rejected", "expired", "failed", "invalid"]
    error: str | None = None
    field: int | None = None
    detail: str = ""
    late: bool = False
    t: float


class GatewayStatus(Payload):
    """gateway/{gateway}/status (retained; the last will says offline)."""

    gateway: str
    status: Literal["online", "offline"]
    version: str
    t: float | None = None  # none in the last will: it is written at connect time


class GatewayHealth(Payload):
    gateway: str
    uptime_s: float
    links: int
    links_open: int
    seats_online: int
    quarantined: int
    outbox_depth: int
    outbox_oldest_age_s: float | None
    outbox_dropped: dict[str, dict[str, int]]  # seat -> reason (overflow, expired) -> count
    outbox_dropped_total: int
    events_stored: int
    repeats_refused: int
    published: int
    reconnects: int
    commands: dict[str, int]  # received, done, rejected, expired, failed, invalid
    lost_results: int  # results that could not be kept while the broker was away
    inventory_error: str | None
    # remote updates: jobs taken, invalid jobs, and seats by outcome (done, rolled_back, ...)
    firmware_updates: dict[str, int] = {}
    # seat/{seat}/agent messages: taken, and invalid (refused, nothing changed)
    sign_ins: dict[str, int] = {}
    t: float


class QuarantinedBoard(Payload):
    link: str
    board: str | None  # None: frames but no hello yet (reset the board to identify it)
    firmware: str | None
    first_seen: float
    last_seen: float


class Quarantine(Payload):
    """gateway/{gateway}/quarantine (retained): boards heard here that no seat is bound to."""

    gateway: str
    boards: list[QuarantinedBoard]
    t: float


UpdateStage = Literal[
    "queued",  # waiting for its turn (seats go one at a time)
    "reading_back",  # the running firmware is read back from the board and kept
    "writing",  # changed files written and checked on the board
    "waiting_hello",  # reset; the new firmware must say hello within the deadline
    "done",  # it did: the seat runs the new version
    "rolling_back",  # it did not: the kept version is being written back
    "rolled_back",  # the seat runs its previous version again
    "failed",  # the update or the roll-back failed: `detail` says what the board holds
    "skipped",  # not tried: an earlier seat of the job failed, or the agent stayed busy
]


class SeatFirmwareUpdate(Payload):
    """seat/{seat}/firmware (retained): the seat's latest firmware update, step by step."""

    seat: str
    gateway: str
    job: str
    board: str | None
    stage: UpdateStage
    from_version: str | None
    to_version: str
    written_bytes: int = 0
    total_bytes: int = 0
    detail: str = ""
    t: float


class FirmwareJob(Payload):
    """gateway/{gateway}/firmware/job (retained): the latest update job and each seat's
    stage. invalid: refused before anything was touched (detail says why)."""

    gateway: str
    job: str | None
    by: str | None = None
    status: Literal["queued", "running", "done", "halted", "invalid"]
    to_version: str | None = None
    seats: dict[str, UpdateStage] = {}
    detail: str = ""
    t: float


# --- pbx -> everyone --------------------------------------------------------------------------

CallEventType = Literal[
    "enter_queue",  # the call joined a queue (again after a re-queue or a transfer to a queue)
    "offer",  # a seat was chosen and the call offered to it (ringing)
    "ring_no_answer",  # the seat rang out (RONA) or refused the offer; the call re-queues
    "answer",  # the seat answered (hook) or, outbound, the callee answered and was connected
    "hold", "unhold",
    "transfer",  # the agent transferred the call (blind or consultative, to a seat or queue)
    "transfer_return",  # a transfer to a seat unanswered after its rings came back (seed 004)
    "abandon",  # the caller hung up before an agent answered
    "release",  # the call ended after an answer; the seat goes into ACW
    "dial",  # outbound: the dialer or an agent dialled a number the gate allowed
    "no_answer",  # outbound: the callee did not answer within the ring limit (seed 003)
    "drop",  # outbound: the callee answered and no agent was free (counts against 3 %)
]
PartyName = Literal["caller", "agent", "pbx", "supervisor"]


class TransferTarget(Payload):
    kind: Literal["blind", "consultative"]
    seat: str | None = None  # exactly one of seat and queue
    queue: str | None = None
    note: str = ""  # for the receiving agent (seed 002 §二.5)


class CallEvent(Payload):
    """call/{call}/event: one step of a call, enough to compute every KPI of docs/kpi.md.

    `id` is `<pbx>-<call>-<step>`: a subscriber drops a repeat by it. Times are Unix seconds
    on the PBX's clock; durations are the PBX's measure of the step that just ended. No
    phone number travels here (customer data stays in the PBX's store): `number` is masked
    to its last four digits."""

    id: str
    pbx: str
    call: int
    step: int  # 1, 2, ... in the order the PBX took the steps
    type: CallEventType
    t: float
    direction: Literal["inbound", "outbound"]
    queue: str | None  # the queue the call is in or came from; the campaign's for outbound
    seat: str | None  # the seat this step concerns (offered, answering, holding, releasing)
    number: str | None  # masked: "***1234"
    arrived: float  # when the call entered the PBX
    wait_s: float | None = None  # enter_queue .. this step (offer, answer, abandon)
    ring_s: float | None = None  # offer .. answer or ring_no_answer; dial .. answer, no_answer
    rings: int | None = None  # whole ring cadences in ring_s
    hold_s: float | None = None  # unhold: this hold's length; release: all holds
    talk_s: float | None = None  # release: answer .. release, holds included
    by: PartyName | None = None  # release, abandon: who ended it
    target: TransferTarget | None = None  # transfer, transfer_return
    campaign: str | None = None
    detail: str = ""  # ring_no_answer: "rang out" / "refused: ..."; transfer_return: why


class PbxStatus(Payload):
    """pbx/{pbx}/status (retained; the last will says offline)."""

    pbx: str
    status: Literal["online", "offline"]
    backend: Literal["sim", "ami"]
    version: str
    t: float | None = None


class QueueHealth(Payload):
    waiting: int
    oldest_wait_s: float | None
    ready_seats: int


class CampaignHealth(Payload):
    dialled: int
    denied: int
    answered: int
    no_answer: int
    dropped: int
    drop_rate_30d: float  # drops / callee answers over the last 30 days
    ratio: float  # lines dialled per Ready agent, as paced now
    remaining: int  # numbers not yet dialled


class PbxHealth(Payload):
    pbx: str
    backend: Literal["sim", "ami"]
    uptime_s: float
    calls_active: int
    queues: dict[str, QueueHealth]
    campaigns: dict[str, CampaignHealth]
    counts: dict[str, int]  # call event type -> count since start
    lost: int  # messages given up while the broker was away (the queue overflowed)
    seats_known: int
    ami_connected: bool | None = None
    t: float


class ComplianceDecisionMessage(Payload):
    """pbx/{pbx}/compliance: one outbound dial's decision (docs/compliance.md). The full
    number is kept in the PBX's decision store; here it is masked."""

    id: str  # <pbx>-d<n>
    pbx: str
    allowed: bool
    rule: str  # the rule that decided: parse, blocked_class, dnc, caller_id, ...
    seed: str  # the seed the rule comes from
    reason: str
    number: str  # masked
    caller_id: str | None
    campaign: str | None  # None: a manual dial
    seat: str | None
    call: int | None  # the call dialled when allowed
    at: float


class PbxCommandResult(Payload):
    """pbx/{pbx}/cmd/result: once per call control request."""

    id: str | None
    pbx: str
    status: Literal["done", "denied", "invalid"]
    detail: str = ""
    call: int | None = None
    t: float


# --- commands (api -> pbx) --------------------------------------------------------------------


class _PbxCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1]
    id: CommandId


class DialCommand(_PbxCommand):
    """A manual dial by an agent: through the compliance gate like every automatic one."""

    command: Literal["dial"]
    seat: str
    number: Annotated[str, Field(min_length=1, max_length=40)]
    caller_id: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    authorisation: Annotated[str, Field(max_length=32)] | None = None


class CallControlCommand(_PbxCommand):
    command: Literal["hold", "unhold", "complete", "hangup"]
    call: CallId


class TransferCommand(_PbxCommand):
    command: Literal["transfer"]
    call: CallId
    kind: Literal["blind", "consultative"]
    seat: str | None = None
    queue: str | None = None
    note: Annotated[str, Field(max_length=500)] = ""


class DncCommand(_PbxCommand):
    """A Do-Not-Call request: takes effect before the result is sent."""

    command: Literal["dnc_add"]
    number: Annotated[str, Field(min_length=1, max_length=40)]


PbxCommand = Annotated[
    DialCommand | CallControlCommand | TransferCommand | DncCommand,
    Field(discriminator="command"),
]
_PBX_COMMAND = TypeAdapter(PbxCommand)


# --- commands (api/pbx -> edge) ---------------------------------------------------------------


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1]
    id: CommandId
    expires_in_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class OfferCommand(_Command):
    command: Literal["offer"]
    call: CallId
    ring_limit: int | None = None
    ring_ms: int | None = None


class CallCommand(_Command):
    command: Literal["cancel", "connected", "released"]
    call: CallId


class HoldCommand(_Command):
    command: Literal["hold"]
    call: CallId
    on: bool = True


class SetStateCommand(_Command):
    command: Literal["set_state"]
    state: Literal["logged_out", "ready", "not_ready"]
    reason: ReasonName | None = None


class SettingsCommand(_Command):
    command: Literal["settings"]
    settings: dict[str, int] = Field(min_length=1, max_length=13)


class HelpCommand(_Command):
    command: Literal["help"]
    on: bool


class MessageCommand(_Command):
    """A supervisor's message: the colour flashes over the seat's light for `seconds`
    (0 ends one early)."""

    command: Literal["message"]
    colour: Literal["red", "green", "yellow", "blue", "magenta", "cyan", "white"]
    seconds: Annotated[int, Field(ge=0, le=600)]


class SyncCommand(_Command):
    command: Literal["sync"]


SeatCommand = Annotated[
    OfferCommand | CallCommand | HoldCommand | SetStateCommand | SettingsCommand
    | HelpCommand | MessageCommand | SyncCommand,
    Field(discriminator="command"),
]
_COMMAND = TypeAdapter(SeatCommand)


SeatId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class FirmwareUpdateCommand(BaseModel):
    """gateway/{gateway}/firmware/cmd: update these seats, one after another, to `bundle`
    (a firmware bundle document, docs/fleet.md). The job stops at the first seat that does
    not come back on the new version (that seat is rolled back, the rest skipped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1]
    id: CommandId
    seats: Annotated[list[SeatId], Field(min_length=1, max_length=512)]
    bundle: dict[str, Any]
    hello_deadline_s: Annotated[float, Field(ge=5, le=600)] = 60.0
    idle_wait_s: Annotated[float, Field(ge=0, le=3600)] = 300.0  # for a seat on a call
    by: Annotated[str, Field(max_length=64)] | None = None  # who asked: the audit's user


_FIRMWARE_COMMAND = TypeAdapter(FirmwareUpdateCommand)


class CommandError(ValueError):
    """Not a command the edge can send; `id` is the command's id when it could be read."""

    def __init__(self, message: str, *, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


def parse_command(raw: bytes) -> SeatCommand:
    command: SeatCommand = _parse(raw, _COMMAND)
    return command


def parse_firmware_command(raw: bytes) -> FirmwareUpdateCommand:
    cmd: FirmwareUpdateCommand = _parse(raw, _FIRMWARE_COMMAND)
    if len(set(cmd.seats)) != len(cmd.seats):
        raise CommandError("seats: a seat is listed twice", id=cmd.id)
    return cmd


def parse_pbx_command(raw: bytes) -> PbxCommand:
    cmd: PbxCommand = _parse(raw, _PBX_COMMAND)
    if isinstance(cmd, TransferCommand) and (cmd.seat is None) == (cmd.queue is None):
        raise CommandError("transfer: give exactly one of seat and queue", id=cmd.id)
    return cmd


def _parse(raw: bytes, adapter: TypeAdapter[Any]) -> Any:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"not JSON: {exc}") from None
    except RecursionError:  # thousands of nested arrays: JSON, but no command
        raise CommandError("nested too deeply") from None
    if not isinstance(obj, dict):
        raise CommandError("a command is a JSON object")
    raw_id = obj.get("id")
    cid = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 64 else None
    if obj.get("v") != SCHEMA_VERSION:
        raise CommandError(f"payload version {obj.get('v')!r}: this gateway reads v "
                           f"{SCHEMA_VERSION}", id=cid)  # fmt: skip
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'command'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise CommandError(problems, id=cid) from None


def setting_keys(settings: dict[str, int]) -> dict[SettingKey, int]:
    """Setting names (docs/seat.md) to keys; CommandError for an unknown name."""
    by_name = {key.spec.name: key for key in SettingKey}
    out: dict[SettingKey, int] = {}
    for name, value in settings.items():
        key = by_name.get(name)
        if key is None:
            raise CommandError(f"settings: no setting {name!r} (known: "
                               f"{', '.join(sorted(by_name))})")  # fmt: skip
        out[key] = value
    return out


# --- api -> everyone -------------------------------------------------------------------------

SignInCause = Literal["self", "supervisor", "moved", "account"]


class SeatAgent(Payload):
    """seat/{seat}/agent (retained): who is signed in at the seat since `t`, and the change
    that made it so. Each change has its own `id`, so a subscriber that sees the retained
    copy again (a reconnect) can tell it from a new change.

    `agent` is the agent id of the account (the key of its KPIs in the core), null when
    nobody is signed in. `cause`: self (the
    agent, from the desk's page), supervisor (`by` names them), moved (the agent signed in
    at another seat: this seat's sign-out), account (the account was disabled or removed)."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    seat: str
    agent: str | None
    name: str | None  # the agent's full name, for tiles and pages
    t: float  # when the change happened (Unix seconds, the API's clock)
    by: str  # the username of the account that made the change
    cause: SignInCause
    previous: str | None = None  # the agent signed in before this change, if any


# --- core -> everyone -------------------------------------------------------------------------

AlertStatus = Literal["raised", "acknowledged", "resolved", "cleared"]


class AlertMessage(Payload):
    """seat/{seat}/alert: a policy alert and what just happened to it (docs/alerts.md).
    `agent`: who was signed in at the seat (the window rules: whose samples they are)."""

    id: str
    rule: str
    seed: str  # where the rule comes from, e.g. "S3 1.6"
    rule_text: str
    seat: str
    call: int | None
    since: float  # when the condition started
    raised: float
    measured: float  # the value when raised
    threshold: float
    unit: str
    severity: str
    message: str
    status: AlertStatus  # this change
    t: float  # when this change happened
    who: str | None = None  # acknowledged / resolved: the person; cleared: null
    note: str = ""  # a person's note, or why the condition ended
    agent: str | None = None  # the agent signed in at the seat (its id), null: nobody


class AlertsOpen(Payload):
    """alerts/open (retained): every alert neither resolved nor cleared, oldest first."""

    t: float
    alerts: list[AlertMessage]
    more: int = 0  # open alerts left out to keep the message small (the oldest are kept)


class AlertCommand(BaseModel):
    """alerts/cmd: acknowledge or resolve an alert, on behalf of a person."""

    model_config = ConfigDict(extra="forbid")
    v: Literal[1]
    id: CommandId
    action: Literal["acknowledge", "resolve"]
    alert: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
    who: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    note: Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")] = ""


_ALERT_COMMAND = TypeAdapter(AlertCommand)


def parse_alert_command(raw: bytes) -> AlertCommand:
    cmd: AlertCommand = _parse(raw, _ALERT_COMMAND)
    return cmd


class AlertCommandResult(Payload):
    """alerts/cmd/result."""

    id: str | None  # the command's id, null when it could not be read
    alert: str | None
    status: Literal["done", "again", "unknown", "invalid", "failed"]
    reason: str = ""  # failed: the store could not take it now; the request may be repeated


class CoreStatus(Payload):
    """core/{core}/status (retained; the last will says offline)."""

    core: str
    status: Literal["online", "offline"]
    version: str
    t: float | None = None


class CoreHealth(Payload):
    """core/{core}/health (retained, every `health_interval_s`)."""

    core: str
    t: float
    leader: bool  # this worker publishes the KPIs and the open alerts
    received: int  # messages taken from the broker
    store: dict[str, Any]  # EventStore.counts(): stored, duplicates, rejected by reason
    live: dict[str, int]  # LiveKpis.counts: events, duplicates, calls, late, too_late
    alerts: dict[str, Any]  # raised, cleared, open, by rule
    position: int  # the store position this worker has followed to
    lag_s: float | None  # now - the newest event time followed
    backlog: int  # messages waiting to be stored
    published: int
    dropped: int  # outgoing messages given up while the broker was away


class KpiLive(Payload):
    """kpi/{scope}/{key} (retained): `scope` site, queue, agent (key: the agent id) or seat
    (key: the seat id, whoever sat there). Each window holds the docs/kpi.md figures by
    name; null where there is no sample."""

    scope: Literal["site", "queue", "agent", "seat"]
    key: str
    t: float
    windows: dict[str, dict[str, Any]]  # rolling_15min, current_15min, today
