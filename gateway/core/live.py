"""Live KPIs: the figures of docs/kpi.md kept up to date event by event (issue 5).

Design requirements:

- The same figures as `kpi.kpis()` over the same events: every sample is made by kpi.py's
  own code (`call_facts`, `acw_by_leg`, `add_facts`, `Totals`), only the bookkeeping differs.
  The tests compare the two bucket by bucket.
- Constant work per event, none per query beyond the keys asked for: each sample is added to
  the `Totals` of its minute, 15-minute and day bucket (local clock of the site), per agent,
  queue and site. An hour merges its four quarters; a rolling window merges its minutes.
- Repeats count once (by event id). Order does not matter within a horizon: a call is counted
  `settle_s` after its terminal event (and once its seats left ACW for it), so its steps may
  arrive in any order until then; a seat event earlier than others of its seat already taken
  replays the seat's last `history` events. What arrives later than that is counted in
  `counts["too_late"]` and is in the store: `rebuild` from the store gives the exact figures.
- Bounded memory: minute buckets for `keep_minutes`, the rest for `keep_days` local days
  (today and yesterday).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.contract.payloads import CallEvent, SeatEvent, seat_event_n
from gateway.core.kpi import (
    NO_REASON,
    TALK,
    By,
    CallFacts,
    Kpis,
    SignIns,
    StateInterval,
    Totals,
    Window,
    _Seen,
    _state_of,
    acw_by_leg,
    add_facts,
    buckets,
    call_facts,
)

__all__ = ["GRANULARITIES", "Granularity", "LiveKpis"]

Granularity = Literal["minute", "15min", "hour", "day"]
GRANULARITIES: dict[str, int] = {"minute": 60, "15min": 900, "hour": 3600, "day": 86400}
_KEPT = (60, 900, 86400)  # bucket sizes kept; an hour is four quarters
_TERMINAL = frozenset({"abandon", "no_answer", "drop"})
_EPS = 1e-6  # seconds: what retraction leaves of a state's time is rounding, not time


def _terminal(e: CallEvent) -> bool:
    return e.type in _TERMINAL or (e.type == "release" and not e.detail)


@dataclass(frozen=True, slots=True)
class _Fold:
    """kpi._seat_intervals between two events: the open state, and the interval closed
    last (a state of no length can give it back)."""

    cur: StateInterval | None = None  # its end is not known: unused
    last: StateInterval | None = None


@dataclass(slots=True)
class _Change:
    """A seat event that says a state, what folding it in counted, and the fold after."""

    order: tuple[float, int, int]  # (t, boot, n): kpi.state_intervals' order
    state: str
    reason: str | None
    call: int | None
    start: float
    counted: list[tuple[float, StateInterval]]  # (+1 or -1, interval)
    after: _Fold


@dataclass(slots=True)
class _Seat:
    changes: list[_Change]  # the last `history` changes, in order
    anchor: _Fold  # the fold before changes[0]
    trimmed: bool = False  # changes before changes[0] were forgotten
    recent: deque[StateInterval] = field(default_factory=deque)  # closed, last keep_minutes

    @property
    def fold(self) -> _Fold:
        return self.changes[-1].after if self.changes else self.anchor


@dataclass(slots=True)
class _Call:
    events: dict[str, CallEvent]
    ended_at: float | None = None  # t of the terminal event
    ended_seen: float = 0.0  # the live clock when it arrived: a backlog's events are old
    last_seen: float = 0.0


class LiveKpis:
    """Feed with `feed(events)` (seat and call event models, any order), move the clock on
    with `advance(now)`, ask with `window()` or `rolling()`."""

    settle_s = 10.0  # a call is counted this long after its terminal event arrived
    # in event time (`event_now`): a backlog of old events must not look overdue
    acw_wait_s = 3600.0  # ... or this long after its end, when a seat never leaves ACW for it
    open_call_s = 4 * 3600.0  # a call without a terminal event is counted after this
    history = 32  # state changes kept per seat for late events
    keep_minutes = 120
    keep_days = 2  # today and yesterday

    def __init__(self, *, tz: ZoneInfo, site: str = "site", ring_limit: int = 3,
                 sl_threshold_s: float = 20.0) -> None:  # fmt: skip
        self.tz = tz
        self.site = site
        self.ring_limit = ring_limit
        self.sl_threshold_s = sl_threshold_s
        self.now = 0.0
        self.newest_t = -math.inf  # the newest event time fed
        self._arrived: float | None = None  # the live clock the event being fed arrived at
        # size -> bucket start -> by -> key -> Totals
        self._tot: dict[int, dict[float, dict[By, dict[str, Totals]]]] = {
            s: {} for s in _KEPT}  # fmt: skip
        self._flat: dict[tuple[int, float, By, str], Totals] = {}  # the same, one lookup
        self._edges: dict[tuple[int, object], list[float]] = {}  # (size, local day) -> edges
        self._span: dict[int, list[float]] = {}  # size -> the edges of the day last used
        self._seats: dict[str, _Seat] = {}
        # (seat, call) -> the seat's closed talking, hold and ACW intervals of the call:
        # acw_by_leg pairs each leg with the ACW its release started from them
        self._parts: dict[tuple[str, int], list[StateInterval]] = defaultdict(list)
        self._parts_seen: dict[tuple[str, int], float] = {}  # the live clock at the last end
        self._calls: dict[tuple[str, int], _Call] = {}
        self._counted: set[tuple[str, int]] = set()  # calls counted, for late steps
        self._counted_order: deque[tuple[float, tuple[str, int]]] = deque()
        self._seen: set[str] = set()
        self._seen_order: deque[tuple[float, str]] = deque()  # arrival order: about t order
        self.counts: dict[str, int] = defaultdict(int)
        # who is signed in at each seat, when: seat events and calls are booked by it
        self.sign_ins = SignIns()
        self._floor = -math.inf  # the start of the oldest day kept (advance moves it)

    # --- input ----------------------------------------------------------------------------

    def feed(self, events: Iterable[SeatEvent | CallEvent], *,
             arrived: float | None = None) -> None:  # fmt: skip
        """`arrived`: the live clock when they arrived, if not `now` (a replay from the
        store: when the store took them). A call settles `settle_s` after its end arrived."""
        self._arrived = arrived
        for e in events:
            if e.id in self._seen:
                self.counts["duplicates"] += 1
                continue
            self._seen.add(e.id)
            self._seen_order.append((e.t, e.id))
            self.counts["events"] += 1
            self.newest_t = max(self.newest_t, e.t)
            if isinstance(e, SeatEvent):
                self._seat_event(e)
            else:
                self._call_event(e)
        self._arrived = None

    def sign_in(self, seat: str, agent: str | None, t: float, id: str) -> None:
        """A change of who is signed in at a seat (`seat/{seat}/agent`). Take it before the
        seat's events after it: what was counted already stays booked as it was (counted in
        `late_sign_ins`; the report, from the store, books it right)."""
        if not self.sign_ins.add(seat, agent, t, id):
            self.counts["sign_in_duplicates"] += 1
            return
        self.counts["sign_ins"] += 1
        known = self._seats.get(seat)
        if known is not None and known.changes and known.changes[-1].start > t:
            self.counts["late_sign_ins"] += 1

    @property
    def event_now(self) -> float:
        """The clock of the events: the newest event time fed, but never past `now`. The
        time-outs of calls are measured on it, not on `now`: a backlog of events hours old
        (the broker's, after the core was away) is not overdue, its calls go on."""
        return min(self.now, self.newest_t)

    @property
    def _arrival(self) -> float:
        return self.now if self._arrived is None else self._arrived

    def advance(self, now: float) -> None:
        """Count the calls that are settled at `now` and forget what is older than kept."""
        self.now = max(self.now, now)
        self._floor = self.day_floor()
        event_now = self.event_now
        for key, call in list(self._calls.items()):
            if call.ended_at is None:
                if event_now - call.last_seen >= self.open_call_s:
                    self.counts["unterminated_calls"] += 1
                    self._count_call(key, call)
            elif self.now - max(call.ended_at, call.ended_seen) >= self.settle_s and \
                    self._settled(key, call, event_now):  # fmt: skip
                self._count_call(key, call)
        self._prune()

    # --- output ---------------------------------------------------------------------------

    def window(self, granularity: Granularity, t: float, *, by: By,
               key: str | None = None) -> tuple[Window, dict[str, Kpis]]:  # fmt: skip
        """The bucket of `granularity` that holds `t`, and its figures per key (the site is
        always there), or only `key`'s. Seat time of states still open runs to `now`."""
        size = GRANULARITIES[granularity]
        win = self._bucket(size, t)
        parts = [win.start] if size != 3600 else [
            s for s in self._starts(900, win.start) if s < win.end]  # fmt: skip
        base = 60 if size == 60 else 86400 if size == 86400 else 900
        buckets = [g for start in parts if (g := self._tot[base].get(start))]
        return win, self._figures([g.get(by, {}) for g in buckets], by, win, {}, key)

    def rolling(self, minutes: int, *, by: By,
                key: str | None = None) -> tuple[Window, dict[str, Kpis]]:  # fmt: skip
        """The last `minutes` whole minutes up to `now`, the current minute included."""
        if not 1 <= minutes <= self.keep_minutes:
            raise ValueError(f"a rolling window of 1..{self.keep_minutes} minutes, "
                             f"not {minutes}")  # fmt: skip
        last = self._bucket(60, self.now)
        win = Window(last.start - 60 * (minutes - 1), last.end)
        groups = [g[by] for start, g in self._tot[60].items()
                  if win.start <= start < win.end and by in g]  # fmt: skip
        time: dict[str, Totals] = {}
        if by in ("agent", "seat"):  # their minutes hold no seat time: recent intervals do
            for name, seat in self._seats.items():
                if by == "seat" and key is not None and name != key:
                    continue
                for iv in reversed(seat.recent):
                    if iv.end <= win.start:
                        break
                    lo, hi = max(iv.start, win.start), min(iv.end, win.end)
                    for a, b, agent in self.sign_ins.split(name, lo, hi):
                        into = name if by == "seat" else agent
                        if into is None or (key is not None and into != key) or b <= a:
                            continue
                        tot = time.get(into)
                        if tot is None:
                            tot = time[into] = Totals()
                        tot.add_time(iv.state, iv.reason, b - a)
                        if agent is None:
                            tot.unattributed_s += b - a
        return win, self._figures(groups, by, win, time, key)

    def open_calls(self) -> int:
        return len(self._calls)

    # --- seats ----------------------------------------------------------------------------

    def _seat_event(self, e: SeatEvent) -> None:
        said = _state_of(e)
        if said is None:
            return
        state, reason, call, start = said
        order = (e.t, e.boot, seat_event_n(e) or e.seq)
        change = _Change(order, state, reason, call, start, [], _Fold())
        seat = self._seats.get(e.seat)
        if seat is None:
            seat = self._seats[e.seat] = _Seat([], _Fold())
        i = len(seat.changes)
        if seat.changes and change.order < seat.changes[-1].order:
            i = bisect.bisect_right([c.order for c in seat.changes], change.order)
            if i == 0 and seat.trimmed:
                self.counts["too_late"] += 1
                return
            self.counts["late_seat_events"] += 1
            for later in reversed(seat.changes[i:]):
                for sign, iv in reversed(later.counted):
                    self._seat_time(iv, -sign)
        seat.changes.insert(i, change)
        fold = seat.changes[i - 1].after if i else seat.anchor
        for c in seat.changes[i:]:
            c.counted = []
            fold = c.after = self._step(e.seat, fold, c)
        if len(seat.changes) > self.history:
            seat.anchor = seat.changes.pop(0).after
            seat.trimmed = True

    def _step(self, name: str, fold: _Fold, c: _Change) -> _Fold:
        """kpi._seat_intervals, one event at a time; counts what it closes in c.counted."""
        cur, start = fold.cur, c.start
        if cur is not None:
            if (cur.state, cur.reason, cur.call) == (c.state, c.reason, c.call):
                return fold
            start = max(start, cur.start)
            last = fold.last
            if start > cur.start:
                closed = StateInterval(name, cur.state, cur.reason, cur.start, start, cur.call)
                self._count_time(c, 1.0, closed)
                last = closed
            elif last is not None and last.end == start and (
                (last.state, last.reason, last.call) == (c.state, c.reason, c.call)
            ):
                self._count_time(c, -1.0, last)  # a state of no length: back to the one before
                return _Fold(StateInterval(name, last.state, last.reason, last.start,
                                           last.start, last.call), None)  # fmt: skip
            return _Fold(StateInterval(name, c.state, c.reason, start, start, c.call), last)
        return _Fold(StateInterval(name, c.state, c.reason, start, start, c.call), fold.last)

    def _count_time(self, c: _Change, sign: float, iv: StateInterval) -> None:
        c.counted.append((sign, iv))
        self._seat_time(iv, sign)

    def _seat_time(self, iv: StateInterval, sign: float) -> None:
        if iv.call is not None and (iv.state == "acw" or iv.state in TALK):
            spans = self._parts[(iv.seat, iv.call)]
            if sign > 0:
                spans.append(iv)
                self._parts_seen[(iv.seat, iv.call)] = self._arrival
            elif iv in spans:
                spans.remove(iv)
        if iv.state == "logged_out":
            return
        # per agent, per 15 minutes and day: the site's is summed when asked for, and the
        # rolling minutes are taken from the seats' recent intervals
        recent = self._seats[iv.seat].recent
        if sign > 0:
            recent.append(iv)
            while recent and recent[0].end < self.now - 60 * (self.keep_minutes + 1):
                recent.popleft()
        elif iv in recent:
            recent.remove(iv)
        for size in _KEPT:
            # what is older than kept is in no bucket (a board whose clock was never set
            # must not make buckets for every minute of years)
            lo = max(iv.start, self._floor if size != 60 else self.now - 60 * (
                self.keep_minutes + 1))  # fmt: skip
            for start, end in self._spans(size, lo, iv.end):
                a, b = max(start, lo), min(end, iv.end)
                seconds = sign * (b - a)
                site = self._totals(size, start, "site", self.site)
                seat = None if size == 60 else self._totals(size, start, "seat", iv.seat)
                if seat is not None:
                    _add_seconds(seat, iv.state, iv.reason, seconds)
                _add_seconds(site, iv.state, iv.reason, seconds)
                # the agent's: the time each agent was signed in at the seat
                for x, y, agent in self.sign_ins.split(iv.seat, a, b):
                    piece = sign * (y - x)
                    if agent is None:
                        site.unattributed_s += piece
                        if seat is not None:
                            seat.unattributed_s += piece
                    elif size != 60:
                        _add_seconds(self._totals(size, start, "agent", agent), iv.state,
                                     iv.reason, piece)  # fmt: skip

    # --- calls ----------------------------------------------------------------------------

    def _call_event(self, e: CallEvent) -> None:
        key = (e.pbx, e.call)
        if key in self._counted:
            self.counts["too_late"] += 1
            return
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call({})
        if e.id in call.events:
            return  # a repeat whose id was forgotten: the call has it
        call.events[e.id] = e
        call.last_seen = max(call.last_seen, e.t)
        if _terminal(e):
            call.ended_at, call.ended_seen = e.t, self._arrival
        # what this one event decides counts now (an answer is in `answered` while the
        # call goes on); the rest once the call is over
        self._add(call_facts((e,)), [], "arrival")

    def _settled(self, key: tuple[str, int], call: _Call, event_now: float) -> bool:
        """Every seat of the call has left ACW for it (or the events moved `acw_wait_s`
        past its end: gave up waiting)."""
        assert call.ended_at is not None
        if event_now - call.ended_at >= self.acw_wait_s:
            return True
        for e in call.events.values():
            seat = self._seats.get(e.seat or "")
            cur = None if seat is None else seat.fold.cur
            if cur is not None and cur.state == "acw" and cur.call == key[1]:
                return False
            # the event that ended its part (its ACW) may itself be early: give it the
            # same settling
            part = (e.seat or "", key[1])
            spans = self._parts.get(part)
            if spans and self.now - max(max(iv.end for iv in spans),
                                        self._parts_seen.get(part, 0.0)) < self.settle_s:
                return False  # fmt: skip
        return True

    def _count_call(self, key: tuple[str, int], call: _Call) -> None:
        del self._calls[key]
        self._counted.add(key)
        self._counted_order.append((self.now, key))
        self.counts["calls"] += 1
        events = list(call.events.values())
        facts = call_facts(events)
        seats = {leg.seat for leg in facts.legs if leg.seat}
        intervals = [iv for s in seats for iv in self._parts.pop((s, key[1]), [])]
        for s in {e.seat for e in events if e.seat}:
            self._parts_seen.pop((s, key[1]), None)
            if s not in seats:  # states of the call at a seat with no leg of it: unpaired
                self._parts.pop((s, key[1]), None)
        intervals += [StateInterval(s, "known", None, 0.0, 0.0) for s in seats
                      if s in self._seats]  # fmt: skip
        self._add(facts, acw_by_leg(facts.legs, intervals), "end")

    def _add(self, facts: CallFacts, acw: list[float | None],
             part: Literal["arrival", "end"]) -> None:  # fmt: skip
        for agent in (True, False):
            def totals_for(seen: _Seen, agent: bool = agent) -> Iterator[Totals]:
                keys: list[tuple[By, str]] = []
                if agent:
                    if seen.seat is not None:
                        keys.append(("seat", seen.seat))
                        who = self.sign_ins.agent_at(seen.seat, seen.owner_t)
                        if who is not None:
                            keys.append(("agent", who))
                else:
                    keys.append(("site", self.site))
                    if seen.queue is not None:
                        keys.append(("queue", seen.queue))
                if seen.t < self._floor:
                    return  # older than the days kept
                for size in _KEPT:
                    start = self._start(size, seen.t)
                    for b, k in keys:
                        yield self._totals(size, start, b, k)

            add_facts(facts, acw, totals_for, agent=agent, ring_limit=self.ring_limit,
                      threshold=self.sl_threshold_s, part=part,
                      unattributed=self.sign_ins.unattributed)  # fmt: skip

    # --- buckets --------------------------------------------------------------------------

    def _day_edges(self, size: int, t: float) -> list[float]:
        """The bucket edges of the local day holding `t`, first to last (midnight to
        midnight). The day last asked for answers without a time-zone conversion."""
        span = self._span.get(size)
        if span is not None and span[0] <= t < span[-1]:
            return span
        day = datetime.fromtimestamp(t, self.tz).date()
        edges = self._edges.get((size, day))
        if edges is None:
            start = datetime.combine(day, time(), tzinfo=self.tz).timestamp()
            end = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.tz).timestamp()
            wins = buckets(start, end, size, tz=self.tz)
            edges = [e for e in sorted({w.start for w in wins} | {w.end for w in wins})
                     if start <= e <= end]  # fmt: skip
            self._edges[(size, day)] = edges
        self._span[size] = edges
        return edges

    def _bucket(self, size: int, t: float) -> Window:
        edges = self._day_edges(size, t)
        i = bisect.bisect_right(edges, t) - 1
        return Window(edges[i], edges[i + 1])

    def _start(self, size: int, t: float) -> float:
        edges = self._day_edges(size, t)
        if len(edges) * size == 86400 + size:  # a day of 24 h: the buckets are even
            return edges[0] + (t - edges[0]) // size * size
        return edges[bisect.bisect_right(edges, t) - 1]

    def _spans(self, size: int, start: float, end: float) -> Iterator[tuple[float, float]]:
        """The (start, end) of each bucket of `size` that [start, end) overlaps."""
        t = start
        while t < end:
            edges = self._day_edges(size, t)
            i = bisect.bisect_right(edges, t) - 1
            while i + 1 < len(edges) and edges[i] < end:
                yield edges[i], edges[i + 1]
                i += 1
            t = edges[-1]

    def _totals(self, size: int, start: float, by: By, key: str) -> Totals:
        tot = self._flat.get((size, start, by, key))
        if tot is not None:
            return tot
        group = self._tot[size].get(start)
        if group is None:
            group = self._tot[size][start] = {}
        keyed = group.get(by)
        if keyed is None:
            keyed = group[by] = {}
        tot = keyed[key] = self._flat[(size, start, by, key)] = Totals()
        return tot

    def _figures(self, groups: list[dict[str, Totals]], by: By, win: Window,
                 time: dict[str, Totals], only: str | None) -> dict[str, Kpis]:  # fmt: skip
        """The keys' figures (or only one's): one bucket's Totals as they are, several
        merged, plus seat time given (`time`) and that of states still open."""
        open_time, open_nobody = self._open_time(by, win, only)
        if only is not None:
            keys = {only}
        else:
            keys = {k for g in groups for k in g} | set(open_time) | set(time)
        if by == "site":
            keys.add(self.site)
        out: dict[str, Kpis] = {}
        empty = Totals()
        for key in sorted(keys):
            parts = [tot for g in groups if (tot := g.get(key)) is not None]
            if len(parts) == 1 and key not in time:
                tot = parts[0]  # as it is: the open time is an overlay, not added to it
            elif not parts and key not in time:
                tot = empty
            else:
                tot = Totals()
                for part in parts:
                    tot.add(part)
                if key in time:
                    tot.add_seconds_of(time[key])
            extra = open_time.get(key, ())
            if by == "site" or extra or not tot.empty():
                out[key] = tot.result(by=by, extra_time=extra,
                                      extra_unattributed_s=open_nobody.get(key, 0.0))  # fmt: skip
        return out

    def _open_time(self, by: By, win: Window, only: str | None
                   ) -> tuple[dict[str, list[tuple[str, str | None, float]]],
                              dict[str, float]]:  # fmt: skip
        """The seat time of the states still open, per key, and the part of it with nobody
        signed in."""
        out: dict[str, list[tuple[str, str | None, float]]] = defaultdict(list)
        nobody: dict[str, float] = defaultdict(float)
        if by == "queue":
            return out, nobody
        end = min(win.end, self.now)
        seats: Iterable[tuple[str, _Seat]] = self._seats.items()
        if by == "seat" and only is not None:
            seats = [(only, self._seats[only])] if only in self._seats else []
        for name, seat in seats:
            cur = seat.fold.cur
            if cur is None or cur.state == "logged_out":
                continue
            lo = max(cur.start, win.start)
            if end <= lo:
                continue
            if by != "agent":
                into = name if by == "seat" else self.site
                out[into].append((cur.state, cur.reason, end - lo))
            for a, b, agent in self.sign_ins.split(name, lo, end):
                if by != "agent":
                    if agent is None:
                        nobody[name if by == "seat" else self.site] += b - a
                elif agent is not None and (only is None or agent == only):
                    out[agent].append((cur.state, cur.reason, b - a))
        return out, nobody

    def _starts(self, size: int, start: float) -> list[float]:
        edges = self._day_edges(size, start)
        return edges[bisect.bisect_left(edges, start):]

    def day_floor(self) -> float:
        """The start of the oldest local day kept: today's and the `keep_days` - 1 before."""
        start = self._day_edges(86400, self.now)[0]
        for _ in range(self.keep_days - 1):
            start = self._day_edges(86400, start - 1)[0]
        return start

    def _prune(self) -> None:
        minute_floor = self.now - 60 * (self.keep_minutes + 1)
        day_floor = self.day_floor()
        for size, floor in ((60, minute_floor), (900, day_floor), (86400, day_floor)):
            for start in [s for s in self._tot[size] if s < floor]:
                for by, keyed in self._tot[size].pop(start).items():
                    for key in keyed:
                        del self._flat[(size, start, by, key)]
        # a repeat older than this finds its call counted (too late) or its seat's fold
        # unmoved by a state it is in already: the ids are for counting repeats
        seen_floor = self.now - 60 * self.keep_minutes
        while self._seen_order and self._seen_order[0][0] < seen_floor:
            self._seen.discard(self._seen_order.popleft()[1])
        self.sign_ins.forget_before(day_floor)
        while self._counted_order and self._counted_order[0][0] < day_floor:
            self._counted.discard(self._counted_order.popleft()[1])
        # the states of calls never counted (their events lost, or late past their count)
        for stale in [k for k, ivs in self._parts.items()
                      if not ivs or ivs[-1].end < day_floor]:  # fmt: skip
            del self._parts[stale]
            self._parts_seen.pop(stale, None)


def _add_seconds(tot: Totals, state: str, reason: str | None, seconds: float) -> None:
    """Seat time, signed: a replay takes back what it counted before."""
    if seconds == 0:
        return
    if seconds > 0:
        tot.add_time(state, reason, seconds)
        return
    for table, name in ((tot.time, state), (tot.not_ready, reason or NO_REASON)):
        if table is tot.not_ready and state != "not_ready":
            continue
        left = table.get(name, 0.0) + seconds
        if abs(left) < _EPS:
            table.pop(name, None)
        else:
            table[name] = left
