"""The KPI formulas of docs/kpi.md, per agent, queue or site, over any window.

Pure: no I/O and no clock. Every time is an argument, and the same input always gives the
same figures, whatever order or how many times the events arrived. Three steps:

1. `state_intervals(seat_events, until=...)`: each seat's `state` events and snapshots
   (docs/mqtt.md, `seat/{seat}/event`) become intervals: seat, state, reason, start, end
   and the call the state belongs to.
2. `buckets(start, end, size_s, tz=...)` (15-minute, hourly, daily intervals on the site's
   local clock) or `rolling(now, seconds)`: the windows.
3. `kpis(call_events, intervals, window=..., by=...)`: one `Kpis` per agent, queue or the
   site. Each figure is attributed to a window by the time of the event that decides it
   (docs/kpi.md lists which); a figure without a sample is None, never a division by zero.

Agents sign in to seats with their accounts (`seat/{seat}/agent`, issue 19): `SignIns`
holds who was signed in at each seat when, and `kpis(..., by="agent", sign_ins=...)` books
each seat's events to the agent signed in at that moment (docs/kpi.md, Keys). `by="seat"`
is the desk's own view, whoever sat at it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.contract.payloads import CallEvent, SeatAgent, SeatEvent, seat_event_n

By = Literal["agent", "seat", "queue", "site"]
BYS: tuple[By, ...] = ("agent", "seat", "queue", "site")

STATES = frozenset({"logged_out", "ready", "not_ready", "ringing", "talking", "hold", "acw"})
BUSY = frozenset({"talking", "hold", "acw"})  # occupancy's numerator
AVAILABLE = frozenset({"ready", "ringing"})  # beside BUSY, occupancy's denominator
CONSULTATION = "consultation ended"  # release detail of a consulted seat's leg (docs/mqtt.md)
NO_REASON = "none"  # not_ready_s key of a Not Ready state that came without a reason


# --- windows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open span [start, end) of Unix seconds: an event at `end` is the next
    window's."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def overlap(self, start: float, end: float) -> float:
        """Seconds of [start, end) inside the window."""
        return max(0.0, min(end, self.end) - max(start, self.start))


def rolling(now: float, seconds: float) -> Window:
    """The live window: the last `seconds` before `now`."""
    if seconds <= 0:
        raise ValueError(f"a rolling window of {seconds} s")
    return Window(now - seconds, now)


def buckets(start: float, end: float, size_s: int, *, tz: ZoneInfo) -> list[Window]:
    """The aligned intervals of `size_s` seconds (900, 3600, 86400, or any divisor of a day)
    that overlap [start, end), on the local clock of `tz`.

    A bucket starts where the local wall clock reads a multiple of `size_s` after midnight,
    so a daily bucket runs from local midnight to the next one: 23 or 25 hours on the days
    the clocks change. A wall time that does not exist (the hour skipped in spring) starts
    nothing of its own; one that happens twice (the hour repeated in autumn) starts a bucket
    both times. Buckets are whole, not cut to [start, end)."""
    if size_s <= 0 or 86400 % size_s:
        raise ValueError(f"bucket size {size_s} s: a whole divisor of a day (900, 3600, 86400)")
    if end <= start:
        return []
    day = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
    edges: set[float] = set()
    while day <= last:
        midnight = datetime.combine(day, time(), tzinfo=tz)
        for k in range(86400 // size_s):
            edges.update(_instants(midnight + timedelta(seconds=k * size_s), tz))
        day += timedelta(days=1)
    return [Window(a, b) for a, b in pairwise(sorted(edges)) if b > start and a < end]


def _instants(wall: datetime, tz: ZoneInfo) -> set[float]:
    """The moments the local clock reads `wall`: one, two in a repeated hour, and in a
    skipped hour the moment the clock jumped past it (fold 0 reads it at the old offset)."""
    found = set()
    for fold in (0, 1):
        t = wall.replace(fold=fold).timestamp()
        if datetime.fromtimestamp(t, tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
            found.add(t)
    return found or {wall.replace(fold=0).timestamp()}


# --- seat state intervals ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateInterval:
    """A seat in one state (and reason, and call) from `start` to `end` (gateway clock)."""

    seat: str
    state: str
    reason: str | None
    start: float
    end: float
    call: int | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


def state_intervals(
    seat_events: Iterable[SeatEvent | Mapping[str, Any]],
    *,
    until: float,
    since: float | None = None,
) -> list[StateInterval]:
    """Every seat's state over time, sorted by seat and start.

    - A repeat (the same event `id`) counts once.
    - Each seat's events are taken in the order (t, boot, n): by the gateway's time, and
      by the seat's own sequence among events of the same time.
    - A `state` event starts its state at its `t`. A `snapshot` is the truth: if it differs
      from the state the events gave, its state started `secs` before its `t` (but not before
      the state it replaces). A `hello` (the board booted) starts `logged_out`, the state a
      booted seat is in. Other events carry no change of state.
    - A state event to the same state, reason and call continues the interval.
    - Before its first state the seat is unknown (no interval). The last interval ends at
      `until`; events from `until` on are left out. With `since`, intervals are cut to
      start there (the window [since, until))."""
    seen: set[str] = set()
    by_seat: dict[str, list[SeatEvent]] = defaultdict(list)
    for raw in seat_events:
        e = raw if isinstance(raw, SeatEvent) else SeatEvent.model_validate(raw)
        if e.id in seen:
            continue
        seen.add(e.id)
        by_seat[e.seat].append(e)
    out: list[StateInterval] = []
    for seat in sorted(by_seat):
        events = sorted(by_seat[seat], key=lambda e: (e.t, e.boot, seat_event_n(e) or e.seq))
        out.extend(_seat_intervals(seat, events, until))
    if since is not None:
        out = clip(out, Window(since, until))
    return out


def _seat_intervals(seat: str, events: list[SeatEvent], until: float) -> list[StateInterval]:
    out: list[StateInterval] = []
    cur: StateInterval | None = None  # the open interval; its end is not known yet
    for e in events:
        if e.t >= until:
            break
        change = _state_of(e)
        if change is None:
            continue
        state, reason, call, start = change
        if cur is not None:
            if _same(cur, state, reason, call):
                continue
            start = max(start, cur.start)
            if start > cur.start:
                out.append(StateInterval(seat, cur.state, cur.reason, cur.start, start, cur.call))
            elif out and out[-1].end == start and _same(out[-1], state, reason, call):
                cur = out.pop()  # back to where it was before a state of no length: go on
                continue
        cur = StateInterval(seat, state, reason, start, start, call)
    if cur is not None and until > cur.start:
        out.append(StateInterval(seat, cur.state, cur.reason, cur.start, until, cur.call))
    return out


def _same(iv: StateInterval, state: str, reason: str | None, call: int | None) -> bool:
    return (iv.state, iv.reason, iv.call) == (state, reason, call)


def _state_of(e: SeatEvent) -> tuple[str, str | None, int | None, float] | None:
    """(state, reason, call, since when) that a seat event says, or None."""
    if e.type == "hello":
        return "logged_out", None, None, e.t
    d = e.data
    if e.type == "event" and d.get("event") != "state":
        return None
    if e.type not in ("event", "snapshot") or d.get("state") not in STATES:
        return None
    start = e.t
    if e.type == "snapshot":
        secs = d.get("secs")
        if isinstance(secs, int | float) and secs > 0:
            start = e.t - secs
    reason = d.get("reason")
    call = d.get("call")
    return (str(d["state"]), reason if isinstance(reason, str) else None,
            call if isinstance(call, int) and call > 0 else None, start)  # fmt: skip


def clip(intervals: Iterable[StateInterval], window: Window) -> list[StateInterval]:
    """The parts of the intervals inside the window."""
    out = []
    for iv in intervals:
        start, end = max(iv.start, window.start), min(iv.end, window.end)
        if end > start:
            out.append(StateInterval(iv.seat, iv.state, iv.reason, start, end, iv.call))
    return out


# --- who is signed in where ------------------------------------------------------------------


SignInLike = SeatAgent | Mapping[str, Any] | tuple[str, str | None, float, str]


class SignIns:
    """Who was signed in at each seat, when: the `seat/{seat}/agent` changes (SeatAgent
    models, dicts, or (seat, agent, t, id) tuples). A change holds from its `t` until the
    seat's next one; before a seat's first change nobody is signed in there. A repeat (the
    same id) counts once; changes at the same instant are taken in id order, so the
    outcome does not depend on the order they came in."""

    def __init__(self, changes: Iterable[SignInLike] = ()) -> None:
        self._seats: dict[str, list[tuple[float, str, str | None]]] = {}  # (t, id, agent)
        self._ids: set[str] = set()
        for change in changes:
            if isinstance(change, tuple):
                self.add(*change)
            else:
                m = change if isinstance(change, SeatAgent) else SeatAgent.model_validate(change)
                self.add(m.seat, m.agent, m.t, m.id)

    def add(self, seat: str, agent: str | None, t: float, id: str) -> bool:
        """Take one change; False if its id was taken already."""
        if id in self._ids:
            return False
        self._ids.add(id)
        bisect.insort(self._seats.setdefault(seat, []), (t, id, agent))
        return True

    def agent_at(self, seat: str | None, t: float) -> str | None:
        """The agent signed in at `seat` at `t` (a change at `t` holds already), or None."""
        changes = self._seats.get(seat or "")
        if not changes:
            return None
        i = bisect.bisect_right(changes, (t, "\U0010ffff"))
        return changes[i - 1][2] if i else None

    def split(self, seat: str, start: float,
              end: float) -> list[tuple[float, float, str | None]]:  # fmt: skip
        """[start, end) at `seat` cut where the agent signed in changes: (start, end, agent)."""
        changes = self._seats.get(seat)
        if not changes or end <= start:
            return [(start, end, None)] if end > start else []
        out: list[tuple[float, float, str | None]] = []
        t, agent = start, self.agent_at(seat, start)
        for at, _, who in changes[bisect.bisect_right(changes, (start, "\U0010ffff")):]:
            if at >= end:
                break
            if who != agent:
                if at > t:
                    out.append((t, at, agent))
                t, agent = at, who
        out.append((t, end, agent))
        return out

    def unattributed(self, seen: _Seen) -> bool:
        """A sample at a seat with nobody signed in (for its agent's time)."""
        return seen.seat is not None and self.agent_at(seen.seat, seen.owner_t) is None

    def seats_of(self, agent: str, start: float, end: float) -> list[str]:
        """The seats `agent` was signed in at during [start, end), sorted."""
        return sorted(seat for seat in self._seats
                      if any(who == agent for _, _, who in self.split(seat, start, end)))

    def last_change(self, seat: str) -> float | None:
        changes = self._seats.get(seat)
        return changes[-1][0] if changes else None

    def forget_before(self, t: float) -> None:
        """Forget the changes older than each seat's last one before `t` (memory)."""
        for changes in self._seats.values():
            i = bisect.bisect_right(changes, (t, ""))
            if i > 1:
                for _, id, _ in changes[: i - 1]:
                    self._ids.discard(id)
                del changes[: i - 1]

    def __len__(self) -> int:
        return sum(len(c) for c in self._seats.values())


# --- the figures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kpis:
    """One agent's, queue's or the site's figures over one window (docs/kpi.md).

    Ratios are 0..1. Times are seconds. None: no sample (a zero denominator), or, for the
    seat-time figures of a queue, not a queue's figure (seats are not in queues here)."""

    offered: int  # inbound calls that entered the queue; per agent: queue offers rung at it
    answered: int  # inbound answers from a queue (transfer answers not included)
    abandoned: int  # inbound callers who hung up before an answer
    abandon_rate: float | None  # abandoned / (answered + abandoned)
    asa_s: float | None  # mean wait_s of the answers
    avg_rings: float | None  # mean rings of the answers
    within_ring_limit: float | None  # answers with rings <= ring_limit / answers
    service_level: float | None  # answered within T / answered
    service_level_abandoned: float | None  # (answered <= T + abandoned <= T) / (ans + ab)
    handled: int  # inbound legs released (an agent's part of a call, answer to release)
    avg_talk_s: float | None  # per handled leg, holds not included
    max_talk_s: float | None
    holds: int  # single holds that ended
    avg_hold_s: float | None  # per single hold
    max_hold_s: float | None
    avg_acw_s: float | None  # per handled leg whose seat's states are known
    aht_s: float | None  # (talk + hold + ACW) per handled leg whose seat's states are known
    outbound_handled: int  # outbound legs released (not in the inbound figures above)
    rona: int  # ring_no_answer call events (redirect on no answer)
    transfers: int  # transfer events of inbound calls
    one_stop_rate: float | None  # answered calls without a transfer / answered calls
    logged_in_s: float | None  # seat time in any state but logged_out
    busy_s: float | None  # seat time talking, on hold and in ACW
    available_s: float | None  # seat time Ready or ringing
    occupancy: float | None  # busy / (busy + available)
    not_ready_s: Mapping[str, float] = field(default_factory=dict)  # reason -> seat time
    # booked to no agent (nobody signed in at the seat): seat and site, with sign-ins given
    unattributed_handled: int = 0  # legs (inbound and outbound) answered at such a seat
    unattributed_s: float | None = None  # seat time logged in at such a seat


@dataclass(frozen=True, slots=True)
class _Seen:
    """Something counted at `t`, for `seat` and `queue`; its agent is the one signed in at
    the seat at `at` (the answer of the leg it belongs to), or at `t` when None."""

    t: float
    seat: str | None
    queue: str | None
    at: float | None = field(default=None, kw_only=True)

    @property
    def owner_t(self) -> float:
        return self.t if self.at is None else self.at


@dataclass(frozen=True, slots=True)
class _Answer(_Seen):
    wait_s: float | None
    rings: int | None
    one_stop: bool  # the call has no transfer event at all (queue and site view)
    agent_one_stop: bool  # the answering seat did not transfer the call after answering


@dataclass(frozen=True, slots=True)
class _Timed(_Seen):
    seconds: float | None  # abandon: wait_s; hold: the hold's length


@dataclass(frozen=True, slots=True)
class _Leg(_Seen):
    """One seat's part of a call, counted at its release."""

    call: tuple[str, int]
    talk_s: float  # answer .. release, holds not included
    hold_s: float  # this seat's holds in this leg
    outbound: bool
    consultation: bool  # a consulted seat's leg that ended before the caller came to it


@dataclass(slots=True)
class _OpenLeg:
    answered_at: float | None
    transfer_from: str | None = None  # the sending seat, for a leg that took a transfer
    hold_since: float | None = None
    hold_s: float = 0.0


@dataclass(slots=True)
class CallFacts:
    entered: list[_Seen] = field(default_factory=list)  # enter_queue
    offers: list[_Seen] = field(default_factory=list)  # queue offers (per agent "offered")
    answers: list[_Answer] = field(default_factory=list)
    abandons: list[_Timed] = field(default_factory=list)
    ronas: list[_Seen] = field(default_factory=list)
    transfers: list[_Seen] = field(default_factory=list)
    holds: list[_Timed] = field(default_factory=list)
    legs: list[_Leg] = field(default_factory=list)


def call_facts(call_events: Iterable[CallEvent | Mapping[str, Any]]) -> CallFacts:
    """Each call's events (repeats dropped by id, in step order) as the samples the
    figures count."""
    seen: set[str] = set()
    calls: dict[tuple[str, int], list[CallEvent]] = defaultdict(list)
    for raw in call_events:
        e = raw if isinstance(raw, CallEvent) else CallEvent.model_validate(raw)
        if e.id in seen:
            continue
        seen.add(e.id)
        calls[(e.pbx, e.call)].append(e)
    facts = CallFacts()
    for key in sorted(calls):
        _one_call(key, sorted(calls[key], key=lambda e: e.step), facts)
    return facts


def _one_call(key: tuple[str, int], events: list[CallEvent], facts: CallFacts) -> None:
    transfers = [(e.step, e.seat) for e in events if e.type == "transfer"]
    legs: dict[str, _OpenLeg] = {}
    last_sender: str | None = None
    for e in events:
        inbound = e.direction == "inbound"
        at = _Seen(e.t, e.seat, e.queue)
        if e.type == "enter_queue" and inbound:
            facts.entered.append(at)
        elif e.type == "offer" and inbound and e.target is None:
            facts.offers.append(at)
        elif e.type == "ring_no_answer":
            facts.ronas.append(at)
        elif e.type == "abandon" and inbound:
            facts.abandons.append(_Timed(e.t, e.seat, e.queue, e.wait_s))
        elif e.type == "transfer":
            last_sender = e.seat
            if inbound:
                facts.transfers.append(at)
        elif e.type == "answer" and e.seat is not None:
            legs[e.seat] = _OpenLeg(e.t, last_sender if e.target is not None else None)
            if inbound and e.target is None:
                later = [s for step, s in transfers if step > e.step and s == e.seat]
                facts.answers.append(_Answer(e.t, e.seat, e.queue, e.wait_s, e.rings,
                                             one_stop=not transfers,
                                             agent_one_stop=not later))  # fmt: skip
        elif e.type in ("hold", "unhold") and e.seat is not None:
            leg = legs.setdefault(e.seat, _OpenLeg(None))
            if e.type == "hold":
                leg.hold_since = e.t
            elif leg.hold_since is not None or e.hold_s is not None:
                _end_hold(leg, e, e.hold_s, inbound, facts)
        elif e.type == "release" and e.seat is not None:
            leg = legs.pop(e.seat, _OpenLeg(None))
            if leg.hold_since is not None:  # released on hold: the hold ends here
                _end_hold(leg, e, None, inbound, facts)
            length = e.talk_s
            if length is None:
                length = 0.0 if leg.answered_at is None else max(0.0, e.t - leg.answered_at)
            consulted = e.detail == CONSULTATION or (
                leg.transfer_from is not None and leg.transfer_from in legs
            )
            # the leg is the agent's who answered it, even one signed out before its end
            facts.legs.append(_Leg(e.t, e.seat, e.queue, call=key,
                                   talk_s=max(0.0, length - leg.hold_s), hold_s=leg.hold_s,
                                   outbound=not inbound, consultation=consulted,
                                   at=leg.answered_at))  # fmt: skip


def _end_hold(leg: _OpenLeg, e: CallEvent, held: float | None, inbound: bool,
              facts: CallFacts) -> None:  # fmt: skip
    if held is None:
        held = max(0.0, e.t - leg.hold_since) if leg.hold_since is not None else 0.0
    leg.hold_since = None
    leg.hold_s += held
    if inbound:
        facts.holds.append(_Timed(e.t, e.seat, e.queue, held, at=leg.answered_at))


TALK = frozenset({"talking", "hold"})  # a seat's part of a call before its release


def acw_by_leg(legs: list[_Leg], intervals: list[StateInterval]) -> list[float | None]:
    """Each leg's ACW: the ACW that the leg's own release started at its seat. None: no
    state of that seat is known.

    The PBX's legs and the seat's states share no clock, only the call id. So each seat's
    states of a call (talking, hold, ACW) are read as its ends of the call, in order: a
    run of talking and hold ends where the seat leaves it, and the ACW that follows at once
    is that end's (none: WRAP pressed at once, or `acw_s` 0); an ACW with no talk before it
    (its talk state lost) is an end of its own. The seat's k-th end of the call goes with
    its k-th leg of it; ends beyond its last leg are the last leg's."""
    known = {iv.seat for iv in intervals}
    states: dict[tuple[str, int], list[StateInterval]] = defaultdict(list)
    for iv in intervals:
        if iv.call is not None and (iv.state == "acw" or iv.state in TALK):
            states[(iv.seat, iv.call)].append(iv)
    order: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i in sorted(range(len(legs)), key=lambda i: legs[i].t):
        order[(legs[i].seat or "", legs[i].call[1])].append(i)
    out: list[float | None] = [None] * len(legs)
    for (seat, call), idx in order.items():
        if seat not in known:
            continue
        ends = leg_ends(states.get((seat, call), []))
        for n, i in enumerate(idx):
            out[i] = sum(ends[n:]) if n == len(idx) - 1 else sum(ends[n : n + 1])
    return out


def leg_ends(states: Iterable[StateInterval]) -> list[float]:
    """One seat's talking, hold and ACW intervals of one call, as the ACW seconds of each
    end of its part in the call, in order (acw_by_leg)."""
    ends: list[float] = []
    prev: StateInterval | None = None
    talking = False  # in a run of talking and hold whose end is not counted yet
    for iv in sorted(states, key=lambda iv: iv.start):
        next_to = prev is not None and prev.end == iv.start  # nothing else in between
        if iv.state in TALK:
            if talking and not next_to:
                ends.append(0.0)  # the last run ended into another state: no ACW
            talking = True
        elif talking and next_to:
            ends.append(iv.seconds)  # the ACW the release started
            talking = False
        elif prev is not None and prev.state == "acw" and next_to:
            ends[-1] += iv.seconds  # the same ACW, its interval cut by a snapshot
        else:
            if talking:
                ends.append(0.0)
            ends.append(iv.seconds)  # an ACW with no talk before it: an end of its own
            talking = False
        prev = iv
    if talking:
        ends.append(0.0)
    return ends


@dataclass(slots=True)
class Totals:
    """The sufficient statistics of one key's figures over one window: sums, counts and
    maxima, so that windows merge (`add`) and the live core can keep them per interval
    instead of every sample. `result()` gives the Kpis. Which samples a Totals holds is
    decided by the caller (`kpis()` or the live projector), through the same `add_*`."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    waits: int = 0  # answers with a wait_s
    wait_sum: float = 0.0
    waits_in_t: int = 0  # answers with wait_s <= T
    rings: int = 0  # answers with a ring count
    ring_sum: int = 0
    rings_within: int = 0  # answers with rings <= ring limit
    gave_up: int = 0  # abandons with a wait_s
    gave_up_in_t: int = 0  # abandons with wait_s <= T
    one_stop: int = 0
    one_stop_known: int = 0  # answers whose call is over (live: the rest may yet transfer)
    handled: int = 0
    talk_sum: float = 0.0
    talk_max: float | None = None
    with_acw: int = 0
    acw_sum: float = 0.0
    aht_sum: float = 0.0
    outbound_handled: int = 0
    holds: int = 0
    hold_sum: float = 0.0
    hold_max: float | None = None
    rona: int = 0
    transfers: int = 0
    unattributed_handled: int = 0  # legs answered at a seat with nobody signed in
    unattributed_s: float = 0.0  # logged-in seat time with nobody signed in
    time: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    not_ready: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    # --- samples ---

    def add_answer(self, wait_s: float | None, rings: int | None, one_stop: bool | None, *,
                   ring_limit: int, threshold: float) -> None:  # fmt: skip
        """`one_stop` None: not known yet (the call goes on); add it later to `one_stop`."""
        self.answered += 1
        if one_stop is not None:
            self.add_one_stop(one_stop)
        if wait_s is not None:
            self.waits += 1
            self.wait_sum += wait_s
            self.waits_in_t += wait_s <= threshold
        if rings is not None:
            self.rings += 1
            self.ring_sum += rings
            self.rings_within += rings <= ring_limit

    def add_one_stop(self, one_stop: bool) -> None:
        self.one_stop += one_stop
        self.one_stop_known += 1

    def add_abandon(self, wait_s: float | None, *, threshold: float) -> None:
        self.abandoned += 1
        if wait_s is not None:
            self.gave_up += 1
            self.gave_up_in_t += wait_s <= threshold

    def add_hold(self, seconds: float) -> None:
        self.holds += 1
        self.hold_sum += seconds
        self.hold_max = seconds if self.hold_max is None else max(self.hold_max, seconds)

    def add_leg(self, talk_s: float, hold_s: float, acw_s: float | None, *,
                outbound: bool) -> None:  # fmt: skip
        if outbound:
            self.outbound_handled += 1
            return
        self.handled += 1
        self.talk_sum += talk_s
        self.talk_max = talk_s if self.talk_max is None else max(self.talk_max, talk_s)
        if acw_s is not None:
            self.with_acw += 1
            self.acw_sum += acw_s
            self.aht_sum += talk_s + hold_s + acw_s

    def add_time(self, state: str, reason: str | None, seconds: float) -> None:
        """Seat time; logged-out time is in no figure (a desk logged out is not listed)."""
        if state == "logged_out" or seconds <= 0:
            return
        self.time[state] += seconds
        if state == "not_ready":
            self.not_ready[reason or NO_REASON] += seconds

    def add(self, other: Totals) -> None:
        """Merge another window's Totals of the same key into this one."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("talk_max", "hold_max"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None and (mine is None or theirs > mine):
                setattr(self, name, theirs)
        for state, seconds in other.time.items():
            self.time[state] += seconds
        for reason, seconds in other.not_ready.items():
            self.not_ready[reason] += seconds

    def add_seconds_of(self, other: Totals) -> None:
        """Another Totals' seat time only."""
        self.unattributed_s += other.unattributed_s
        for state, seconds in other.time.items():
            self.time[state] += seconds
        for reason, seconds in other.not_ready.items():
            self.not_ready[reason] += seconds

    def empty(self) -> bool:
        return not (any(getattr(self, n) for n in _COUNTS) or self.time)

    # --- figures ---

    def result(self, *, by: By, extra_time: Iterable[tuple[str, str | None, float]] = (),
               extra_unattributed_s: float = 0.0, attributing: bool = True) -> Kpis:  # fmt: skip
        """The figures; `extra_time`: seat time to count beside this Totals' own (a state
        still open), without changing it, and `extra_unattributed_s` the part of it with
        nobody signed in. `attributing`: sign-ins were given (else no unattributed_s)."""
        seat_time = by != "queue"
        time, not_ready = self.time, self.not_ready
        if extra_time:
            time, not_ready = dict(time), dict(not_ready)
            for state, reason, seconds in extra_time:
                if state != "logged_out" and seconds > 0:
                    time[state] = time.get(state, 0.0) + seconds
                    if state == "not_ready":
                        key = reason or NO_REASON
                        not_ready[key] = not_ready.get(key, 0.0) + seconds
        busy = sum(time.get(s, 0.0) for s in BUSY)
        available = sum(time.get(s, 0.0) for s in AVAILABLE)
        logged_in = sum(time.values())
        return Kpis(
            offered=self.offered,
            answered=self.answered,
            abandoned=self.abandoned,
            abandon_rate=_ratio(self.abandoned, self.answered + self.abandoned),
            asa_s=_ratio(self.wait_sum, self.waits),
            avg_rings=_ratio(self.ring_sum, self.rings),
            within_ring_limit=_ratio(self.rings_within, self.rings),
            service_level=_ratio(self.waits_in_t, self.waits),
            service_level_abandoned=_ratio(self.waits_in_t + self.gave_up_in_t,
                                           self.waits + self.gave_up),  # fmt: skip
            handled=self.handled,
            avg_talk_s=_ratio(self.talk_sum, self.handled),
            max_talk_s=self.talk_max,
            holds=self.holds,
            avg_hold_s=_ratio(self.hold_sum, self.holds),
            max_hold_s=self.hold_max,
            avg_acw_s=_ratio(self.acw_sum, self.with_acw),
            aht_s=_ratio(self.aht_sum, self.with_acw),
            outbound_handled=self.outbound_handled,
            rona=self.rona,
            transfers=self.transfers,
            one_stop_rate=_ratio(self.one_stop, self.one_stop_known),
            logged_in_s=logged_in if seat_time else None,
            busy_s=busy if seat_time else None,
            available_s=available if seat_time else None,
            occupancy=_ratio(busy, busy + available) if seat_time else None,
            not_ready_s=dict(sorted(not_ready.items())) if seat_time else {},
            unattributed_handled=self.unattributed_handled,
            unattributed_s=self.unattributed_s + extra_unattributed_s
            if attributing and by in ("seat", "site") else None,
        )


_COUNTS = tuple(
    f.name for f in fields(Totals) if f.name not in ("talk_max", "hold_max", "time", "not_ready")
)


def kpis(
    call_events: Iterable[CallEvent | Mapping[str, Any]],
    intervals: Iterable[StateInterval],
    *,
    window: Window,
    by: By,
    ring_limit: int = 3,
    sl_threshold_s: float = 20.0,
    site: str = "site",
    sign_ins: SignIns | None = None,
) -> dict[str, Kpis]:
    """The figures of every agent (agent id), seat, queue or the site (key `site`) with
    anything in the window, sorted by key. The site is always there, all None and 0 when
    empty.

    `by="agent"` needs `sign_ins`: each sample is booked to the agent signed in at its seat
    (docs/kpi.md, Keys); what happened at a seat with nobody signed in is no agent's, and is
    counted in the seat's and the site's `unattributed_handled` and `unattributed_s` (only
    when `sign_ins` is given: without them those stay 0 and None).

    Give every event of the calls that touch the window (the legs, holds and transfers
    around it are needed) and the seats' intervals unclipped (ACW after a release in the
    window may run past its end); the figures take from them what the window holds."""
    if by not in BYS:
        raise ValueError(f"by {by!r}: agent, seat, queue or site")
    if by == "agent" and sign_ins is None:
        raise ValueError("by agent needs sign_ins: who was signed in at each seat, when")
    facts = call_facts(call_events)
    spans = list(intervals)
    groups: dict[str, Totals] = defaultdict(Totals)

    def key_of(seen: _Seen) -> str | None:
        if by == "agent":
            assert sign_ins is not None
            return None if seen.seat is None else sign_ins.agent_at(seen.seat, seen.owner_t)
        return seen.seat if by == "seat" else seen.queue if by == "queue" else site

    def totals_for(seen: _Seen) -> tuple[Totals, ...]:
        if seen.t not in window:
            return ()
        k = key_of(seen)
        return () if k is None else (groups[k],)

    unattributed = None if sign_ins is None else sign_ins.unattributed
    add_facts(facts, acw_by_leg(facts.legs, spans), totals_for,
              agent=by in ("agent", "seat"), ring_limit=ring_limit, threshold=sl_threshold_s,
              unattributed=unattributed)  # fmt: skip
    if by != "queue":
        for iv in spans:
            if iv.state == "logged_out" or window.overlap(iv.start, iv.end) <= 0:
                continue
            pieces = [(iv.start, iv.end, iv.seat)] if sign_ins is None else \
                sign_ins.split(iv.seat, iv.start, iv.end)  # fmt: skip
            for start, end, agent in pieces:
                seconds = window.overlap(start, end)
                if seconds <= 0:
                    continue
                if by == "agent":
                    if agent is not None:
                        groups[agent].add_time(iv.state, iv.reason, seconds)
                    continue
                tot = groups[iv.seat if by == "seat" else site]
                tot.add_time(iv.state, iv.reason, seconds)
                if sign_ins is not None and agent is None:
                    tot.unattributed_s += seconds
    if by == "site" and site not in groups:
        groups[site] = Totals()  # the site is listed even when nothing happened
    return {k: groups[k].result(by=by, attributing=sign_ins is not None)
            for k in sorted(groups)}  # fmt: skip


def add_facts(
    facts: CallFacts,
    acw: Sequence[float | None],
    totals_for: Callable[[_Seen], Iterable[Totals]],
    *,
    agent: bool,
    ring_limit: int,
    threshold: float,
    part: Literal["all", "arrival", "end"] = "all",
    unattributed: Callable[[_Seen], bool] | None = None,
) -> None:
    """Add calls' samples to the Totals `totals_for(sample)` names (none: not counted).
    `agent`: the Totals are agents', whose one-stop is their own (no transfer after their
    answer) and whose `offered` is the queue offers rung at them.

    `part`, for the live core: `arrival` adds what one event decides by itself (offered,
    answered with its wait and rings, abandoned, RONA, transfers), from the facts of that
    one event; `end` adds the rest from the whole call (one-stop, holds, legs with ACW).
    `unattributed(leg)`: whether a leg is no agent's (counted in `unattributed_handled`)."""
    early, late = part != "end", part != "arrival"
    for seen in (facts.offers if agent else facts.entered) if early else ():
        for tot in totals_for(seen):
            tot.offered += 1
    for answer in facts.answers:
        one_stop = answer.agent_one_stop if agent else answer.one_stop
        for tot in totals_for(answer):
            if early:
                tot.add_answer(answer.wait_s, answer.rings, one_stop if late else None,
                               ring_limit=ring_limit, threshold=threshold)  # fmt: skip
            else:
                tot.add_one_stop(one_stop)
    for abandon in facts.abandons if early else ():
        for tot in totals_for(abandon):
            tot.add_abandon(abandon.seconds, threshold=threshold)
    for seen in facts.ronas if early else ():
        for tot in totals_for(seen):
            tot.rona += 1
    for seen in facts.transfers if early else ():
        for tot in totals_for(seen):
            tot.transfers += 1
    if not late:
        return
    for hold in facts.holds:
        if hold.seconds is not None:
            for tot in totals_for(hold):
                tot.add_hold(hold.seconds)
    for leg, leg_acw in zip(facts.legs, acw, strict=True):
        if not leg.consultation:
            nobody = unattributed is not None and unattributed(leg)
            for tot in totals_for(leg):
                tot.add_leg(leg.talk_s, leg.hold_s, leg_acw, outbound=leg.outbound)
                tot.unattributed_handled += nobody


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


