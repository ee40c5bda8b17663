"""A call as the simulated PBX keeps it, and the call events it publishes about it.

A call moves queued -> ringing -> talking <-> hold -> ended, and may go round again (a
ring-no-answer or a transfer to a queue queues it again). Each step becomes one
`CallEvent` (gateway/contract/payloads.py); the call keeps what the next event's durations
are measured from.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal

from gateway.contract.payloads import CallEvent, CallEventType, PartyName, TransferTarget


class Phase(enum.Enum):
    QUEUED = "queued"
    RINGING = "ringing"  # offered to `seat`
    TALKING = "talking"
    HOLD = "hold"
    DIALLING = "dialling"  # outbound: the callee's phone rings
    ENDED = "ended"


@dataclass(slots=True)
class Action:
    """A scripted step the agent (or caller) takes, `after_s` after the answer."""

    after_s: float
    do: Literal["hold", "unhold", "transfer", "complete", "hangup"]
    kind: Literal["blind", "consultative"] | None = None
    seat: str | None = None
    queue: str | None = None
    note: str = ""


@dataclass(slots=True)
class Transfer:
    """A transfer under way: the caller waits on hold at `origin` while `target` rings
    (blind or consultative to a seat), or while the receiver and origin talk (consultative
    after the answer)."""

    target: TransferTarget
    origin: str  # the sending seat, where the caller is on hold
    receiver: str | None = None  # the seat ringing or answering
    answered: bool = False
    answered_at: float | None = None  # when the receiver answered: its leg's talk_s is from here


def mask(number: str | None) -> str | None:
    if number is None:
        return None
    digits = "".join(ch for ch in number if ch.isdigit())
    return "***" + digits[-4:] if len(digits) >= 4 else "***"


@dataclass(slots=True)
class Call:
    id: int
    direction: Literal["inbound", "outbound"]
    queue: str
    arrived: float
    number: str | None = None
    patience_s: float | None = None  # inbound: the caller hangs up after waiting this long
    talk_s: float | None = None  # the caller (or callee) hangs up this long after the answer
    actions: list[Action] = field(default_factory=list)
    campaign: str | None = None
    ring_limit: int = 3
    answer_after_rings: int | None = None  # outbound sim: the callee answers in this ring

    phase: Phase = Phase.QUEUED
    seat: str | None = None  # the seat offered, answering or holding the call
    queued_at: float = 0.0
    offered_at: float = 0.0
    answered_at: float | None = None
    hold_since: float | None = None
    hold_total: float = 0.0
    leg_since: float = 0.0  # when the current seat's leg was answered
    tried: set[str] = field(default_factory=set)  # seats that rang out on this call
    transfer: Transfer | None = None
    step: int = 0
    command: str | None = None  # the id of the offer command awaiting its result

    def event(self, pbx: str, kind: CallEventType, at: float, *, seat: str | None = None,
              wait_s: float | None = None, ring_s: float | None = None,
              rings: int | None = None, hold_s: float | None = None,
              talk_s: float | None = None, by: PartyName | None = None,
              target: TransferTarget | None = None, detail: str = "",
              queue: str | None = None) -> CallEvent:  # fmt: skip
        self.step += 1
        return CallEvent(
            id=f"{pbx}-{self.id}-{self.step}", pbx=pbx, call=self.id, step=self.step,
            type=kind, t=round(at, 3), direction=self.direction,
            queue=self.queue if queue is None else queue, seat=seat, number=mask(self.number),
            arrived=round(self.arrived, 3), wait_s=_r(wait_s), ring_s=_r(ring_s), rings=rings,
            hold_s=_r(hold_s), talk_s=_r(talk_s), by=by, target=target,
            campaign=self.campaign, detail=detail,
        )  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, value), 3)


def rings_in(ring_s: float, ring_ms: int) -> int:
    """The ring an answer fell in: 1 during the first cadence period, and so on."""
    return max(1, math.floor(ring_s * 1000 / ring_ms) + 1)
