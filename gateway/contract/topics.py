"""Every MQTT topic of seatlink, in one typed map (docs/mqtt.md documents each one).

Topics are `<root>/v1/<site>/<entity>/<id>/<leaf>`: the root (default `seatlink`) and the
site come from settings, the contract version is part of the path so a v2 can run beside
v1 during an upgrade. Ids (seat, gateway, call) are at most 64 characters of
`A-Z a-z 0-9 _ . -`: never an MQTT wildcard or level separator, so a topic always parses back
to exactly one entry of `TOPICS`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

VERSION = "v1"
DEFAULT_ROOT = "seatlink"
ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # every id in a topic (and payloads)


class TopicError(ValueError):
    """A topic or an id that is not part of the contract."""


class Role(enum.StrEnum):
    """Who publishes on a topic (docs/mqtt.md: the roles over one contract)."""

    EDGE = "edge"
    PBX = "pbx"
    CORE = "core"
    API = "api"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    pattern: str  # below <root>/v1/<site>/, with {placeholders} for ids
    publisher: Role
    retained: bool
    qos: int
    summary: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{(\w+)\}", self.pattern))


def _spec(name: str, pattern: str, publisher: Role, *, retained: bool, qos: int,
          summary: str) -> tuple[str, TopicSpec]:  # fmt: skip
    return name, TopicSpec(name, pattern, publisher, retained, qos, summary)


TOPICS: Mapping[str, TopicSpec] = dict([
    _spec("seat_state", "seat/{seat}/state", Role.EDGE, retained=True, qos=1,
          summary="the seat's current state, light and call; republished after every "
                  "reconnect"),
    _spec("seat_event", "seat/{seat}/event", Role.EDGE, retained=False, qos=1,
          summary="every event the seat reported, once, with its idempotent event id"),
    _spec("seat_availability", "seat/{seat}/availability", Role.EDGE, retained=True, qos=1,
          summary="online / offline: offline after 3 missed heartbeats or a lost link"),
    _spec("seat_health", "seat/{seat}/health", Role.EDGE, retained=True, qos=0,
          summary="link quality and board figures from the latest heartbeat"),
    _spec("seat_cmd", "seat/{seat}/cmd", Role.API, retained=False, qos=1,
          summary="a command for the seat (never retained: a late subscriber must not "
                  "replay it)"),
    _spec("seat_cmd_result", "seat/{seat}/cmd/result", Role.EDGE, retained=False, qos=1,
          summary="what became of a command: done, rejected (with the seat's error), "
                  "expired"),
    _spec("gateway_status", "gateway/{gateway}/status", Role.EDGE, retained=True, qos=1,
          summary="online / offline, the offline being the gateway's MQTT last will"),
    _spec("gateway_health", "gateway/{gateway}/health", Role.EDGE, retained=True, qos=0,
          summary="outbox depth and drops, reconnects, seats bridged and quarantined"),
    _spec("firmware_cmd", "gateway/{gateway}/firmware/cmd", Role.API, retained=False, qos=1,
          summary="a firmware update for some of the gateway's seats, with the bundle "
                  "(never retained)"),
    _spec("firmware_job", "gateway/{gateway}/firmware/job", Role.EDGE, retained=True, qos=1,
          summary="the gateway's latest firmware update job: queued, running, done, halted "
                  "or invalid, with each seat's stage"),
    _spec("seat_firmware", "seat/{seat}/firmware", Role.EDGE, retained=True, qos=1,
          summary="the seat's latest firmware update, step by step: read back, writing, "
                  "waiting for hello, done, rolled back or failed"),
    _spec("gateway_quarantine", "gateway/{gateway}/quarantine", Role.EDGE, retained=True,
          qos=1, summary="boards heard on this gateway that no seat is bound to"),
    _spec("call_event", "call/{call}/event", Role.PBX, retained=False, qos=1,
          summary="a step of a call: queued, offered, answered, held, transferred, ended"),
    _spec("pbx_status", "pbx/{pbx}/status", Role.PBX, retained=True, qos=1,
          summary="online / offline, the offline being the PBX connector's MQTT last will"),
    _spec("pbx_health", "pbx/{pbx}/health", Role.PBX, retained=True, qos=0,
          summary="calls waiting per queue, calls in progress, counts, dialer pacing and "
                  "drop rates"),
    _spec("pbx_cmd", "pbx/{pbx}/cmd", Role.API, retained=False, qos=1,
          summary="a call control request: dial, hold, unhold, transfer, complete, hang up, "
                  "Do-Not-Call"),
    _spec("pbx_cmd_result", "pbx/{pbx}/cmd/result", Role.PBX, retained=False, qos=1,
          summary="what became of a call control request: done or invalid, with a reason"),
    _spec("compliance_decision", "pbx/{pbx}/compliance", Role.PBX, retained=False, qos=1,
          summary="every outbound dial's compliance decision: allow or deny, rule, seed, "
                  "reason"),
    _spec("seat_agent", "seat/{seat}/agent", Role.API, retained=True, qos=1,
          summary="who is signed in at the seat, and the change that made it so (an agent "
                  "signing in or out, a supervisor, a move to another seat)"),
    _spec("seat_alert", "seat/{seat}/alert", Role.CORE, retained=False, qos=1,
          summary="a policy alert on the seat raised, acknowledged, resolved or cleared, "
                  "naming its rule and seed"),
    _spec("alerts_open", "alerts/open", Role.CORE, retained=True, qos=1,
          summary="every alert still open: what a wallboard shows when it starts"),
    _spec("alert_cmd", "alerts/cmd", Role.API, retained=False, qos=1,
          summary="acknowledge or resolve an alert (one core worker takes each)"),
    _spec("alert_cmd_result", "alerts/cmd/result", Role.CORE, retained=False, qos=1,
          summary="what became of an alert command: done, again, unknown or invalid"),
    _spec("kpi_live", "kpi/{scope}/{key}", Role.CORE, retained=True, qos=0,
          summary="live KPIs of the site, a queue or an agent: the rolling 15 minutes, the "
                  "current 15 minutes and today"),
    _spec("core_status", "core/{core}/status", Role.CORE, retained=True, qos=1,
          summary="online / offline, the offline being the core worker's MQTT last will"),
    _spec("core_health", "core/{core}/health", Role.CORE, retained=True, qos=0,
          summary="events stored, repeats, bad input by reason, lag, live counts, alerts"),
])  # fmt: skip


def check_id(kind: str, value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise TopicError(f"{kind} id {value!r} is not 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


@dataclass(frozen=True, slots=True)
class Parsed:
    spec: TopicSpec
    ids: dict[str, str]


class Topics:
    """The topics of one site: `Topics(site="hq").seat_state("s101")`."""

    def __init__(self, *, site: str, root: str = DEFAULT_ROOT) -> None:
        self.site = check_id("site", site)
        self.root = check_id("root", root)
        self.prefix = f"{self.root}/{VERSION}/{self.site}/"

    def topic(self, name: str, **ids: str) -> str:
        spec = TOPICS.get(name)
        if spec is None:
            raise TopicError(f"no topic {name!r} in the contract")
        if set(ids) != set(spec.params):
            raise TopicError(f"topic {name} takes {', '.join(spec.params)}, "
                             f"not {', '.join(sorted(ids)) or 'nothing'}")  # fmt: skip
        return self.prefix + spec.pattern.format(**{k: check_id(k, v) for k, v in ids.items()})

    def subscription(self, name: str) -> str:
        """The filter that matches topic `name` for every id (`+` in place of each)."""
        spec = TOPICS[name]
        return self.prefix + spec.pattern.format(**dict.fromkeys(spec.params, "+"))

    def parse(self, topic: str) -> Parsed:
        """Which contract topic this is, and its ids; TopicError for anything else."""
        if not topic.startswith(self.prefix):
            raise TopicError(f"{topic!r} is not under {self.prefix}")
        levels = topic[len(self.prefix):].split("/")
        for spec in TOPICS.values():
            parts = spec.pattern.split("/")
            if len(parts) != len(levels):
                continue
            ids: dict[str, str] = {}
            for part, level in zip(parts, levels, strict=True):
                if part.startswith("{"):
                    if not ID_PATTERN.fullmatch(level):
                        break
                    ids[part[1:-1]] = level
                elif part != level:
                    break
            else:
                return Parsed(spec, ids)
        raise TopicError(f"{topic!r} is no topic of the contract")

    def seat_state(self, seat: str) -> str:
        return self.topic("seat_state", seat=seat)

    def seat_event(self, seat: str) -> str:
        return self.topic("seat_event", seat=seat)

    def seat_cmd(self, seat: str) -> str:
        return self.topic("seat_cmd", seat=seat)

    def gateway_status(self, gateway: str) -> str:
        return self.topic("gateway_status", gateway=gateway)
