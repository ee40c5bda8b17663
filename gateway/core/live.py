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
- Bounded memory: minute buckets for `keep_minutes`, the rest for `keep_days` local days.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.contract.payloads import CallEvent, SeatEvent, seat_event_n
from gateway.core.kpi import (
    NO_REASON,
    By,
    Kpis,
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
_BYS: tuple[By, ...] = ("agent", "queue", "site")
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

    @property
    def fold(self) -> _Fold:
        return self.changes[-1].after if self.changes else self.anchor


@dataclass(slots=True)
class _Call:
    events: dict[str, CallEvent]
    ended_at: float | None = None  # t of the terminal event
    last_seen: float = 0.0


class LiveKpis:
    """Feed with `feed(events)` (seat and call event models, any order), move the clock on
    with `advance(now)`, ask with `window()` or `rolling()`."""

    settle_s = 10.0  # a call is counted this long after its terminal event
    acw_wait_s = 3600.0  # ... or this long, when a seat never leaves ACW for it
    open_call_s = 4 * 3600.0  # a call without a terminal event is counted after this
    history = 32  # state changes kept per seat for late events
    keep_minutes = 120
    keep_days = 2

    def __init__(self, *, tz: ZoneInfo, site: str = "site", ring_limit: int = 3,
                 sl_threshold_s: float = 20.0) -> None:  # fmt: skip
        self.tz = tz
        self.site = site
        self.ring_limit = ring_limit
        self.sl_threshold_s = sl_threshold_s
        self.now = 0.0
        # size -> bucket start -> (by, key) -> Totals
        self._tot: dict[int, dict[float, dict[tuple[By, str], Totals]]] = {
            s: defaultdict(dict) for s in _KEPT}  # fmt: skip
        self._edges: dict[tuple[int, object], list[float]] = {}  # (size, local day) -> edges
        self._seats: dict[str, _Seat] = {}
        self._acw: dict[tuple[str, int], list[StateInterval]] = defaultdict(list)
        self._calls: dict[tuple[str, int], _Call] = {}
        self._counted: set[tuple[str, int]] = set()  # calls counted, for late steps
        self._seen: set[str] = set()
        self._seen_order: list[tuple[float, str]] = []
        self.counts: dict[str, int] = defaultdict(int)

    # --- input ----------------------------------------------------------------------------

    def feed(self, events: Iterable[SeatEvent | CallEvent]) -> None:
        for e in events:
            if e.id in self._seen:
                self.counts["duplicates"] += 1
                continue
            self._seen.add(e.id)
            self._seen_order.append((e.t, e.id))
            self.counts["events"] += 1
            if isinstance(e, SeatEvent):
                self._seat_event(e)
            else:
                self._call_event(e)

    def advance(self, now: float) -> None:
        """Count the calls that are settled at `now` and forget what is older than kept."""
        self.now = max(self.now, now)
        for key, call in list(self._calls.items()):
            if call.ended_at is None:
                if self.now - call.last_seen >= self.open_call_s:
                    self.counts["unterminated_calls"] += 1
                    self._count_call(key, call)
            elif self.now - call.ended_at >= self.settle_s and self._settled(key, call):
                self._count_call(key, call)
        self._prune()

    # --- output ---------------------------------------------------------------------------

    def window(self, granularity: Granularity, t: float, *, by: By) -> tuple[Window,
                                                                          dict[str, Kpis]]:
        """The bucket of `granularity` that holds `t`, and its figures per key (the site is
        always there). Seat time of states still open runs to `now`."""
        size = GRANULARITIES[granularity]
        win = self._bucket(size, t)
        parts = [win.start] if size != 3600 else [
            s for s in self._starts(900, win.start) if s < win.end]  # fmt: skip
        base = 60 if size == 60 else 86400 if size == 86400 else 900
        merged: dict[str, Totals] = {}
        for start in parts:
            for (b, key), tot in self._tot[base].get(start, {}).items():
                if b == by:
                    merged.setdefault(key, Totals()).add(tot)
        self._add_open_time(merged, by, win)
        return win, self._result(merged, by)

    def rolling(self, minutes: int, *, by: By) -> tuple[Window, dict[str, Kpis]]:
        """The last `minutes` whole minutes up to `now`, the current minute included."""
        if not 1 <= minutes <= self.keep_minutes:
            raise ValueError(f"a rolling window of 1..{self.keep_minutes} minutes, "
                             f"not {minutes}")  # fmt: skip
        last = self._bucket(60, self.now)
        win = Window(last.start - 60 * (minutes - 1), last.end)
        merged: dict[str, Totals] = {}
        for start, group in self._tot[60].items():
            if win.start <= start < win.end:
                for (b, key), tot in group.items():
                    if b == by:
                        merged.setdefault(key, Totals()).add(tot)
        self._add_open_time(merged, by, win)
        return win, self._result(merged, by)

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
        if iv.state == "acw" and iv.call is not None:
            spans = self._acw[(iv.seat, iv.call)]
            if sign > 0:
                spans.append(iv)
            elif iv in spans:
                spans.remove(iv)
        if iv.state == "logged_out":
            return
        for size in _KEPT:
            for win in self._windows(size, iv.start, iv.end):
                seconds = sign * win.overlap(iv.start, iv.end)
                group = self._tot[size][win.start]
                keys: tuple[tuple[By, str], ...] = (("agent", iv.seat), ("site", self.site))
                for key in keys:
                    tot = group.get(key)
                    if tot is None:
                        tot = group[key] = Totals()
                    _add_seconds(tot, iv.state, iv.reason, seconds)

    def _add_open_time(self, merged: dict[str, Totals], by: By, win: Window) -> None:
        if by == "queue":
            return
        end = min(win.end, self.now)
        for name, seat in self._seats.items():
            cur = seat.fold.cur
            if cur is None or cur.state == "logged_out":
                continue
            seconds = max(0.0, end - max(cur.start, win.start))
            if seconds > 0:
                key = name if by == "agent" else self.site
                merged.setdefault(key, Totals()).add_time(cur.state, cur.reason, seconds)

    # --- calls ----------------------------------------------------------------------------

    def _call_event(self, e: CallEvent) -> None:
        key = (e.pbx, e.call)
        if key in self._counted:
            self.counts["too_late"] += 1
            return
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call({})
        call.events[e.id] = e
        call.last_seen = max(call.last_seen, e.t)
        if _terminal(e):
            call.ended_at = e.t

    def _settled(self, key: tuple[str, int], call: _Call) -> bool:
        """Every seat of the call has left ACW for it (or gave up waiting)."""
        assert call.ended_at is not None
        if self.now - call.ended_at >= self.acw_wait_s:
            return True
        for e in call.events.values():
            seat = self._seats.get(e.seat or "")
            cur = None if seat is None else seat.fold.cur
            if cur is not None and cur.state == "acw" and cur.call == key[1]:
                return False
            # the event that ended its ACW may itself be early: give it the same settling
            spans = self._acw.get((e.seat or "", key[1]))
            if spans and self.now - max(iv.end for iv in spans) < self.settle_s:
                return False
        return True

    def _count_call(self, key: tuple[str, int], call: _Call) -> None:
        del self._calls[key]
        self._counted.add(key)
        self.counts["calls"] += 1
        events = list(call.events.values())
        facts = call_facts(events)
        seats = {leg.seat for leg in facts.legs if leg.seat}
        intervals = [iv for s in seats for iv in self._acw.pop((s, key[1]), [])]
        intervals += [StateInterval(s, "known", None, 0.0, 0.0) for s in seats
                      if s in self._seats]  # fmt: skip
        acw = acw_by_leg(facts.legs, intervals)
        for agent in (True, False):
            def totals_for(seen: _Seen, agent: bool = agent) -> Iterator[Totals]:
                keys: list[tuple[By, str]] = []
                if agent:
                    if seen.seat is not None:
                        keys.append(("agent", seen.seat))
                else:
                    keys.append(("site", self.site))
                    if seen.queue is not None:
                        keys.append(("queue", seen.queue))
                for size in _KEPT:
                    group = self._tot[size][self._bucket(size, seen.t).start]
                    for k in keys:
                        tot = group.get(k)
                        if tot is None:
                            tot = group[k] = Totals()
                        yield tot

            add_facts(facts, acw, totals_for, agent=agent, ring_limit=self.ring_limit,
                      threshold=self.sl_threshold_s)  # fmt: skip

    # --- buckets --------------------------------------------------------------------------

    def _day_edges(self, size: int, t: float) -> list[float]:
        day = datetime.fromtimestamp(t, self.tz).date()
        edges = self._edges.get((size, day))
        if edges is None:
            start = datetime.combine(day, time(), tzinfo=self.tz).timestamp()
            end = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.tz).timestamp()
            wins = buckets(start, end, size, tz=self.tz)
            edges = sorted({w.start for w in wins} | {w.end for w in wins})
            self._edges[(size, day)] = edges
        return edges

    def _bucket(self, size: int, t: float) -> Window:
        edges = self._day_edges(size, t)
        i = bisect.bisect_right(edges, t) - 1
        return Window(edges[i], edges[i + 1])

    def _starts(self, size: int, start: float) -> list[float]:
        edges = self._day_edges(size, start)
        return edges[bisect.bisect_left(edges, start):]

    def _windows(self, size: int, start: float, end: float) -> Iterator[Window]:
        t = start
        while t < end:
            win = self._bucket(size, t)
            yield win
            t = win.end

    def _result(self, merged: dict[str, Totals], by: By) -> dict[str, Kpis]:
        if by == "site":
            merged.setdefault(self.site, Totals())
        return {k: merged[k].result(by=by) for k in sorted(merged) if by == "site"
                or not merged[k].empty()}  # fmt: skip

    def _prune(self) -> None:
        minute_floor = self.now - 60 * (self.keep_minutes + 1)
        for start in [s for s in self._tot[60] if s < minute_floor]:
            del self._tot[60][start]
        day_floor = self.now - 86400 * (self.keep_days + 1)
        for size in (900, 86400):
            for start in [s for s in self._tot[size] if s < day_floor]:
                del self._tot[size][start]
        # ids older than anything that could still be counted are no longer needed
        if len(self._seen_order) > 2 * len(self._seen) // 2 + 100_000:
            self._seen_order.sort()
        while self._seen_order and self._seen_order[0][0] < day_floor:
            self._seen.discard(self._seen_order.pop(0)[1])


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
