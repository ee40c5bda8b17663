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

The agent key is the seat id: seats are desks, and the agent at a desk is known only once
accounts exist (issue 6).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.contract.payloads import CallEvent, SeatEvent

By = Literal["agent", "queue", "site"]

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
    - Each seat's events are taken in the order (t, boot, seq): by the gateway's time, and
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
        events = sorted(by_seat[seat], key=lambda e: (e.t, e.boot, e.seq))
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


@dataclass(frozen=True, slots=True)
class _Seen:
    """Something counted at `t`, for `seat` (an agent key) and `queue`."""

    t: float
    seat: str | None
    queue: str | None


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
class _Facts:
    entered: list[_Seen] = field(default_factory=list)  # enter_queue
    offers: list[_Seen] = field(default_factory=list)  # queue offers (per agent "offered")
    answers: list[_Answer] = field(default_factory=list)
    abandons: list[_Timed] = field(default_factory=list)
    ronas: list[_Seen] = field(default_factory=list)
    transfers: list[_Seen] = field(default_factory=list)
    holds: list[_Timed] = field(default_factory=list)
    legs: list[_Leg] = field(default_factory=list)


def _call_facts(call_events: Iterable[CallEvent | Mapping[str, Any]]) -> _Facts:
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
    facts = _Facts()
    for key in sorted(calls):
        _one_call(key, sorted(calls[key], key=lambda e: e.step), facts)
    return facts


def _one_call(key: tuple[str, int], events: list[CallEvent], facts: _Facts) -> None:
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
            facts.legs.append(_Leg(e.t, e.seat, e.queue, call=key,
                                   talk_s=max(0.0, length - leg.hold_s), hold_s=leg.hold_s,
                                   outbound=not inbound, consultation=consulted))  # fmt: skip


def _end_hold(leg: _OpenLeg, e: CallEvent, held: float | None, inbound: bool,
              facts: _Facts) -> None:  # fmt: skip
    if held is None:
        held = max(0.0, e.t - leg.hold_since) if leg.hold_since is not None else 0.0
    leg.hold_since = None
    leg.hold_s += held
    if inbound:
        facts.holds.append(_Timed(e.t, e.seat, e.queue, held))


def _acw_by_leg(legs: list[_Leg], intervals: list[StateInterval]) -> list[float | None]:
    """Each leg's ACW: the seat's ACW intervals of that call, the k-th to the seat's k-th
    leg of the call (any more to its last). None: no state of that seat is known."""
    known = {iv.seat for iv in intervals}
    spans: dict[tuple[str, int], list[float]] = defaultdict(list)
    for iv in sorted(intervals, key=lambda iv: iv.start):
        if iv.state == "acw" and iv.call is not None:
            spans[(iv.seat, iv.call)].append(iv.seconds)
    order: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i in sorted(range(len(legs)), key=lambda i: legs[i].t):
        order[(legs[i].seat or "", legs[i].call[1])].append(i)
    out: list[float | None] = [None] * len(legs)
    for (seat, call), idx in order.items():
        if seat not in known:
            continue
        acw = spans.get((seat, call), [])
        for n, i in enumerate(idx):
            out[i] = sum(acw[n:]) if n == len(idx) - 1 else sum(acw[n : n + 1])
    return out


@dataclass(slots=True)
class _Acc:
    offered: int = 0
    answers: list[_Answer] = field(default_factory=list)
    abandons: list[_Timed] = field(default_factory=list)
    rona: int = 0
    transfers: int = 0
    holds: list[float] = field(default_factory=list)
    legs: list[tuple[_Leg, float | None]] = field(default_factory=list)
    time: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    not_ready: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def result(self, *, by: By, ring_limit: int, threshold: float, agent: bool) -> Kpis:
        answered, abandoned = len(self.answers), len(self.abandons)
        waits = [a.wait_s for a in self.answers if a.wait_s is not None]
        rings = [a.rings for a in self.answers if a.rings is not None]
        gave_up = [a.seconds for a in self.abandons if a.seconds is not None]
        in_t = sum(w <= threshold for w in waits)
        inbound = [(leg, acw) for leg, acw in self.legs if not leg.outbound]
        talks = [leg.talk_s for leg, _ in inbound]
        with_acw = [(leg, acw) for leg, acw in inbound if acw is not None]
        one_stop = [a.agent_one_stop if agent else a.one_stop for a in self.answers]
        seat_time = by != "queue"
        busy = sum(self.time[s] for s in BUSY)
        available = sum(self.time[s] for s in AVAILABLE)
        logged_in = sum(s for state, s in self.time.items() if state != "logged_out")
        return Kpis(
            offered=self.offered,
            answered=answered,
            abandoned=abandoned,
            abandon_rate=_ratio(abandoned, answered + abandoned),
            asa_s=_mean(waits),
            avg_rings=_mean(rings),
            within_ring_limit=_ratio(sum(r <= ring_limit for r in rings), len(rings)),
            service_level=_ratio(in_t, len(waits)),
            service_level_abandoned=_ratio(
                in_t + sum(w <= threshold for w in gave_up), len(waits) + len(gave_up)
            ),
            handled=len(inbound),
            avg_talk_s=_mean(talks),
            max_talk_s=max(talks, default=None),
            holds=len(self.holds),
            avg_hold_s=_mean(self.holds),
            max_hold_s=max(self.holds, default=None),
            avg_acw_s=_mean([acw for _, acw in with_acw]),
            aht_s=_mean([leg.talk_s + leg.hold_s + acw for leg, acw in with_acw]),
            outbound_handled=len(self.legs) - len(inbound),
            rona=self.rona,
            transfers=self.transfers,
            one_stop_rate=_ratio(sum(one_stop), len(one_stop)),
            logged_in_s=logged_in if seat_time else None,
            busy_s=busy if seat_time else None,
            available_s=available if seat_time else None,
            occupancy=_ratio(busy, busy + available) if seat_time else None,
            not_ready_s=dict(sorted(self.not_ready.items())) if seat_time else {},
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
) -> dict[str, Kpis]:
    """The figures of every agent (seat id), queue or the site (key `site`) with anything
    in the window, sorted by key. The site is always there, all None and 0 when empty.

    Give every event of the calls that touch the window (the legs, holds and transfers
    around it are needed) and the seats' intervals unclipped (ACW after a release in the
    window may run past its end); the figures take from them what the window holds."""
    if by not in ("agent", "queue", "site"):
        raise ValueError(f"by {by!r}: agent, queue or site")
    facts = _call_facts(call_events)
    spans = list(intervals)
    acw = _acw_by_leg(facts.legs, spans)
    groups: dict[str, _Acc] = defaultdict(_Acc)

    def key(seen: _Seen) -> str | None:
        if seen.t not in window:
            return None
        return seen.seat if by == "agent" else seen.queue if by == "queue" else site

    for seen in facts.offers if by == "agent" else facts.entered:
        if (k := key(seen)) is not None:
            groups[k].offered += 1
    for answer in facts.answers:
        if (k := key(answer)) is not None:
            groups[k].answers.append(answer)
    for abandon in facts.abandons:
        if (k := key(abandon)) is not None:
            groups[k].abandons.append(abandon)
    for seen in facts.ronas:
        if (k := key(seen)) is not None:
            groups[k].rona += 1
    for seen in facts.transfers:
        if (k := key(seen)) is not None:
            groups[k].transfers += 1
    for hold in facts.holds:
        if (k := key(hold)) is not None and hold.seconds is not None:
            groups[k].holds.append(hold.seconds)
    for i, leg in enumerate(facts.legs):
        if not leg.consultation and (k := key(leg)) is not None:
            groups[k].legs.append((leg, acw[i]))
    if by != "queue":
        for iv in spans:
            seconds = window.overlap(iv.start, iv.end)
            if seconds <= 0 or iv.state == "logged_out":
                continue  # logged-out time is in no figure: a desk logged out is not listed
            acc = groups[iv.seat if by == "agent" else site]
            acc.time[iv.state] += seconds
            if iv.state == "not_ready":
                acc.not_ready[iv.reason or NO_REASON] += seconds
    if by == "site" and site not in groups:
        groups[site] = _Acc()  # the site is listed even when nothing happened
    return {k: groups[k].result(by=by, ring_limit=ring_limit, threshold=sl_threshold_s,
                                agent=by == "agent")
            for k in sorted(groups)}  # fmt: skip


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _mean(values: list[float] | list[int]) -> float | None:
    return sum(values) / len(values) if values else None
