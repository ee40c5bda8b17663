"""A second, deliberately plain computation of the KPIs of docs/kpi.md (issue 18).

Written from docs/kpi.md alone, not from gateway/core/kpi.py, and sharing none of its code:
the events are read as plain dicts, every figure of every window is a loop over the whole
day's records, and nothing is clever. tests/core/test_kpi_reference.py holds the core's
answers (the daily report from the store, the live KPIs on MQTT) against it.

`Day(call_events, seat_events, until, sign_ins)` reads the day once (repeats dropped, each
call in step order, each seat's timeline, who was signed in where); `day.kpis(start, end,
by=..., ring_limit=L, sl_threshold_s=T)` gives `{key: {figure: value}}` for the window
[start, end), `by` site, queue, seat (whoever sat there) or agent (docs/kpi.md, Keys: an
event is the agent's signed in at its seat at its time, a leg and its holds the agent's
signed in when it was answered; what was nobody's is `unattributed_*` of the seat, the
queue (calls) and the site).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BUSY = ("talking", "hold", "acw")
AVAILABLE = ("ready", "ringing")
FIGURES = (
    "offered", "answered", "abandoned", "abandon_rate", "asa_s", "avg_rings",
    "within_ring_limit", "service_level", "service_level_abandoned", "handled", "avg_talk_s",
    "max_talk_s", "holds", "avg_hold_s", "max_hold_s", "avg_acw_s", "aht_s",
    "outbound_handled", "rona", "transfers", "one_stop_rate", "logged_in_s", "busy_s",
    "available_s", "occupancy", "not_ready_s", "unattributed_handled", "unattributed_s",
)  # fmt: skip


@dataclass
class Interval:
    seat: str
    start: float
    end: float
    state: str
    reason: str | None
    call: int | None


@dataclass
class Hold:
    call: int
    seat: str
    queue: str
    start_step: int
    end_t: float  # the unhold's or the release's time
    length: float
    answer_t: float  # its leg's answer: the agent signed in then holds it


@dataclass
class Leg:
    call: int
    seat: str
    queue: str  # the release's
    inbound: bool
    answer_step: int
    release_step: int
    release_t: float
    answer_t: float
    talk_s: float  # release.talk_s
    consultation: bool
    holds: list[Hold] = field(default_factory=list)
    acw: float | None = None  # None: the seat's states are unknown

    @property
    def hold(self) -> float:
        return sum(h.length for h in self.holds)

    @property
    def talk(self) -> float:
        return self.talk_s - self.hold


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _mean(values: list[float]) -> float | None:
    return None if not values else sum(values) / len(values)


def _n(event: Mapping[str, Any]) -> int:
    """The frame count n of a seat event id `<board>-<boot>-<n>` (docs/mqtt.md)."""
    return int(event["id"][len(f"{event['board']}-{event['boot']}-"):])


class Day:
    def __init__(self, call_events: Iterable[Mapping[str, Any]],
                 seat_events: Iterable[Mapping[str, Any]], until: float,
                 sign_ins: Iterable[Mapping[str, Any]] = ()) -> None:  # fmt: skip
        self.until = until
        self.sign_ins: dict[str, list[tuple[float, str, str | None]]] = {}
        for c in {c["id"]: c for c in sign_ins}.values():
            self.sign_ins.setdefault(c["seat"], []).append((c["t"], c["id"], c["agent"]))
        for changes in self.sign_ins.values():
            changes.sort()
        self.calls: dict[int, list[Mapping[str, Any]]] = {}
        seen: set[str] = set()
        for e in call_events:
            if e["id"] not in seen:
                seen.add(e["id"])
                self.calls.setdefault(e["call"], []).append(e)
        for steps in self.calls.values():
            steps.sort(key=lambda e: e["step"])
        self.events = [e for steps in self.calls.values() for e in steps]
        by_seat: dict[str, list[Mapping[str, Any]]] = {}
        for e in seat_events:
            if e["id"] not in seen:
                seen.add(e["id"])
                by_seat.setdefault(e["seat"], []).append(e)
        self.intervals: dict[str, list[Interval]] = {
            seat: self._timeline(seat, events) for seat, events in by_seat.items()}  # fmt: skip
        self.legs: list[Leg] = []
        self.holds: list[Hold] = []
        for steps in self.calls.values():
            self._read_call(steps)
        for leg in self.legs:
            leg.holds = [h for h in self.holds if h.call == leg.call and h.seat == leg.seat
                         and leg.answer_step < h.start_step < leg.release_step]  # fmt: skip
        self._acw()

    # --- seats ------------------------------------------------------------------------------

    def agent_at(self, seat: str | None, t: float) -> str | None:
        """The last change at the seat at or before t; none: nobody."""
        agent = None
        for at, _, who in self.sign_ins.get(seat or "", []):
            if at <= t:
                agent = who
        return agent

    def pieces(self, iv: Interval) -> list[tuple[float, float, str | None]]:
        """The interval cut where the agent signed in at its seat changes."""
        cuts = sorted({iv.start, iv.end} | {t for t, _, _ in self.sign_ins.get(iv.seat, [])
                                            if iv.start < t < iv.end})  # fmt: skip
        return [(a, b, self.agent_at(iv.seat, a)) for a, b in zip(cuts, cuts[1:], strict=False)]

    def _timeline(self, seat: str, events: list[Mapping[str, Any]]) -> list[Interval]:
        events = sorted(events, key=lambda e: (e["t"], e["boot"], _n(e)))
        out: list[Interval] = []
        current: Interval | None = None

        def begin(t: float, state: str, reason: str | None, call: int | None) -> None:
            nonlocal current
            if current is not None:
                current.end = t
                out.append(current)
            current = Interval(seat, t, t, state, reason, call)

        for e in events:
            data = e["data"]
            if e["type"] == "hello":
                begin(e["t"], "logged_out", None, None)
            elif e["type"] == "event" and data["event"] == "state":
                new = (data["state"], data["reason"], data["call"])
                if current is None or new != (current.state, current.reason, current.call):
                    begin(e["t"], *new)
            elif e["type"] == "snapshot":
                new = (data["state"], data["reason"], data["call"])
                if current is None or new != (current.state, current.reason, current.call):
                    start = e["t"] - data["secs"]
                    if current is not None:
                        start = max(start, current.start)
                    begin(start, *new)
        if current is not None:
            current.end = self.until
            out.append(current)
        return [i for i in out if i.end > i.start]

    # --- calls ------------------------------------------------------------------------------

    def _read_call(self, steps: list[Mapping[str, Any]]) -> None:
        inbound = steps[0]["direction"] == "inbound"
        for i, e in enumerate(steps):
            if e["type"] == "hold":
                for later in steps[i + 1:]:
                    if later["seat"] == e["seat"] and later["type"] in ("unhold", "release"):
                        length = later["hold_s"] if later["type"] == "unhold" \
                            else later["t"] - e["t"]  # fmt: skip
                        answered = [a["t"] for a in steps[:i] if a["type"] == "answer"
                                    and a["seat"] == e["seat"]]  # fmt: skip
                        hold = Hold(e["call"], e["seat"], later["queue"], e["step"],
                                    later["t"], length, answered[-1])  # fmt: skip
                        if inbound:
                            self.holds.append(hold)
                        break
            if e["type"] != "release":
                continue
            answers = [a for a in steps[:i] if a["type"] == "answer" and a["seat"] == e["seat"]]
            answer = answers[-1]
            consultation = e["detail"] == "consultation ended"
            target = answer["target"]
            if target is not None and target["kind"] == "consultative":
                transfers = [t for t in steps[:i] if t["type"] == "transfer"
                             and t["step"] < answer["step"]]  # fmt: skip
                sender = transfers[-1]["seat"]
                since = transfers[-1]["step"]
                released = [r for r in steps[:i] if r["type"] == "release"
                            and r["seat"] == sender and r["step"] > since]  # fmt: skip
                if not released:  # the sender still holds the call
                    consultation = True
            leg = Leg(e["call"], e["seat"], e["queue"], inbound, answer["step"], e["step"],
                      e["t"], answer["t"], e["talk_s"], consultation)  # fmt: skip
            self.legs.append(leg)

    def _acw(self) -> None:
        """Each leg's ACW from its seat's ends of the call (docs/kpi.md, Terms, ACW)."""
        legs_of: dict[tuple[str, int], list[Leg]] = {}
        for leg in self.legs:
            legs_of.setdefault((leg.seat, leg.call), []).append(leg)
        for (seat, call), legs in legs_of.items():
            intervals = self.intervals.get(seat)
            if not intervals:
                continue  # unknown: left out of the ACW and AHT averages
            ends: list[float] = []
            before = "other"
            for iv in intervals:
                if iv.call == call and iv.state in ("talking", "hold"):
                    kind = "run"
                    if before != "run":
                        ends.append(0.0)
                elif iv.call == call and iv.state == "acw":
                    kind = "acw"
                    if before in ("run", "acw"):
                        ends[-1] += iv.end - iv.start
                    else:
                        ends.append(iv.end - iv.start)
                else:
                    kind = "other"
                before = kind
            legs.sort(key=lambda leg: (leg.release_t, leg.release_step))
            for k, leg in enumerate(legs):
                leg.acw = ends[k] if k < len(ends) else 0.0
            if len(ends) > len(legs):
                legs[-1].acw = (legs[-1].acw or 0.0) + sum(ends[len(legs):])

    # --- the figures of one window ----------------------------------------------------------

    def kpis(self, start: float, end: float, *, by: str, ring_limit: int = 3,
             sl_threshold_s: float = 20.0, site: str = "site") -> dict[str, dict[str, Any]]:
        def inside(t: float) -> bool:
            return start <= t < end

        def key_of(seat: str | None, queue: str | None, t: float) -> str | None:
            if by == "agent":
                return self.agent_at(seat, t) if seat is not None else None
            return {"seat": seat, "queue": queue, "site": site}[by]

        keys: set[str] = {site} if by == "site" else set()
        for e in self.events:
            if inside(e["t"]):
                k = key_of(e["seat"], e["queue"], e["t"])
                if k is not None:
                    keys.add(k)
        # a leg or a hold ending at a seat its agent has left since
        for seat, queue, t, answer_t in [(x.seat, x.queue, x.release_t, x.answer_t)
                                         for x in self.legs if not x.consultation] + \
                [(h.seat, h.queue, h.end_t, h.answer_t) for h in self.holds]:  # fmt: skip
            if inside(t):
                k = key_of(seat, queue, answer_t)
                if k is not None:
                    keys.add(k)
        if by in ("agent", "seat", "site"):
            for seat, intervals in self.intervals.items():
                for iv in intervals:
                    for a, b, agent in self.pieces(iv):
                        if iv.state != "logged_out" and min(b, end) > max(a, start):
                            k = agent if by == "agent" else seat if by == "seat" else site
                            if k is not None:
                                keys.add(k)
        # what the window holds, then each key's part of it
        events = [e for e in self.events if inside(e["t"])]
        legs = [leg for leg in self.legs if inside(leg.release_t)]
        holds = [h for h in self.holds if inside(h.end_t)]
        return {k: self._figures(k, events, legs, holds, key_of, start, end, by, ring_limit,
                                 sl_threshold_s) for k in sorted(keys)}  # fmt: skip

    def _figures(self, key: str, events: list[Mapping[str, Any]], window_legs: list[Leg],
                 window_holds: list[Hold], key_of: Any, start: float, end: float, by: str,
                 ring_limit: int, sl_threshold_s: float) -> dict[str, Any]:  # fmt: skip
        f: dict[str, Any] = {}
        mine = [e for e in events if key_of(e["seat"], e["queue"], e["t"]) == key]
        inbound = [e for e in mine if e["direction"] == "inbound"]
        if by in ("agent", "seat"):
            offered = [e for e in inbound if e["type"] == "offer" and e["target"] is None]
        else:
            offered = [e for e in inbound if e["type"] == "enter_queue"]
        answers = [e for e in inbound if e["type"] == "answer" and e["target"] is None]
        abandons = [e for e in mine if e["type"] == "abandon"]
        f["offered"] = len(offered)
        f["answered"] = len(answers)
        f["abandoned"] = len(abandons)
        f["abandon_rate"] = _ratio(len(abandons), len(answers) + len(abandons))
        waits = [e["wait_s"] for e in answers if e["wait_s"] is not None]
        rings = [e["rings"] for e in answers if e["rings"] is not None]
        f["asa_s"] = _mean(waits)
        f["avg_rings"] = _mean(rings)
        f["within_ring_limit"] = _ratio(sum(1 for r in rings if r <= ring_limit), len(rings))
        f["service_level"] = _ratio(sum(1 for w in waits if w <= sl_threshold_s), len(waits))
        ab_waits = [e["wait_s"] for e in abandons if e["wait_s"] is not None]
        f["service_level_abandoned"] = _ratio(
            sum(1 for w in waits + ab_waits if w <= sl_threshold_s), len(waits) + len(ab_waits))
        legs = [leg for leg in window_legs if key_of(leg.seat, leg.queue, leg.answer_t) == key]
        handled = [leg for leg in legs if leg.inbound and not leg.consultation]
        f["handled"] = len(handled)
        f["avg_talk_s"] = _mean([leg.talk for leg in handled])
        f["max_talk_s"] = max((leg.talk for leg in handled), default=None)
        holds = [h for h in window_holds if key_of(h.seat, h.queue, h.answer_t) == key]
        f["holds"] = len(holds)
        f["avg_hold_s"] = _mean([h.length for h in holds])
        f["max_hold_s"] = max((h.length for h in holds), default=None)
        known = [leg for leg in handled if leg.acw is not None]
        f["avg_acw_s"] = _mean([leg.acw or 0.0 for leg in known])
        f["aht_s"] = _mean([leg.talk + leg.hold + (leg.acw or 0.0) for leg in known])
        f["outbound_handled"] = sum(1 for leg in legs if not leg.inbound)
        f["rona"] = sum(1 for e in mine if e["type"] == "ring_no_answer")
        f["transfers"] = sum(1 for e in inbound if e["type"] == "transfer")
        one_stop = 0
        for a in answers:
            steps = self.calls[a["call"]]
            if by in ("agent", "seat"):
                transferred = any(s["type"] == "transfer" and s["seat"] == a["seat"]
                                  and s["step"] > a["step"] for s in steps)  # fmt: skip
            else:
                transferred = any(s["type"] == "transfer" for s in steps)
            one_stop += not transferred
        f["one_stop_rate"] = _ratio(one_stop, len(answers))
        f["unattributed_handled"] = 0 if by == "agent" else sum(
            1 for leg in legs if not leg.consultation and self.agent_at(leg.seat, leg.answer_t)
            is None)  # fmt: skip
        f["unattributed_s"] = None
        if by == "queue":
            f.update(logged_in_s=None, busy_s=None, available_s=None, occupancy=None,
                     not_ready_s={})  # fmt: skip
            return f
        logged_in = busy = available = nobody = 0.0
        not_ready: dict[str, float] = {}
        for seat, intervals in self.intervals.items():
            if by == "seat" and seat != key:
                continue
            for whole in intervals:
                for a, b, agent in self.pieces(whole):
                    if by == "agent" and agent != key:
                        continue
                    iv = Interval(seat, a, b, whole.state, whole.reason, whole.call)
                    length = min(iv.end, end) - max(iv.start, start)
                    if length <= 0:
                        continue
                    if iv.state != "logged_out" and agent is None:
                        nobody += length
                    if iv.state != "logged_out":
                        logged_in += length
                    if iv.state in BUSY:
                        busy += length
                    if iv.state in AVAILABLE:
                        available += length
                    if iv.state == "not_ready":
                        reason = iv.reason or "none"
                        not_ready[reason] = not_ready.get(reason, 0.0) + length
        f.update(logged_in_s=logged_in, busy_s=busy, available_s=available,
                 occupancy=_ratio(busy, busy + available), not_ready_s=not_ready,
                 unattributed_s=None if by == "agent" else nobody)  # fmt: skip
        return f
