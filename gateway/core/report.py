"""The daily KPI report: one self-contained HTML page and a CSV export (docs/report.md).

Pure, as kpi.py is: no I/O and no clock. The page is built from figures `kpis()` already
computed (`DailyReport`), or from the day's events by `build_daily`. It needs nothing from
outside: the style is inline and the plots are SVG drawn here, so it can be mailed, archived
or opened offline and looks the same in ten years. Every name that came from outside (site,
queue, seat, reason, alert rule) is escaped before it reaches the page.

Times are the site's local clock. A day is local midnight to local midnight, so it has 23
or 25 hourly buckets on the days the clocks change: the plots place each bucket by the
seconds it covers, not by its wall-clock hour, and label it with the local hour it starts.
"""

from __future__ import annotations

import csv
import io
import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timezone
from decimal import Decimal
from html import escape
from itertools import pairwise
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from gateway.contract.payloads import CallEvent, ReasonName, SeatEvent
from gateway.core.kpi import (
    NO_REASON,
    By,
    Kpis,
    SignIns,
    StateInterval,
    Window,
    buckets,
    kpis,
    state_intervals,
)

DASH = "\u2014"  # what the page prints for a figure with no value (None)

Status = Literal["met", "missed", "no data"]
Row = tuple[Window, str, str, Kpis]  # (interval, by, key, figures): one line of the CSV
# kpis() over buckets(): each bucket with every key that had something in it
Series = Sequence[tuple[Window, Mapping[str, Kpis]]]
BUCKETS = {15: 900, 60: 3600}  # the interval sizes the report and the API offer, minutes: s

# --- targets ----------------------------------------------------------------------------------


def _seed(default: Any, source: str) -> Any:
    return field(default=default, metadata={"seed": source})


@dataclass(frozen=True, slots=True)
class Targets:
    """What the day's figures are held against, with the seeds' defaults
    (shared/design/rules-from-seeds.md; `seed_of(name)` gives the source of each).

    `ring_limit` and `sl_threshold_s` also define figures: they must be the values the Kpis
    were computed with (`kpis(ring_limit=..., sl_threshold_s=...)`), as `build_daily` does."""

    ring_limit: int = _seed(3, "§1: S2 §二.2 “鈴響三聲內必須接聽”; S4 “响铃三声内必须接听”")
    within_ring_limit: float = _seed(1.0, "§1: S2 §二.2, S4 (every inbound call: “必须”)")
    avg_rings: float = _seed(2.0, "§1: S3 服务标准 2.0 “平均铃响2声接听”; S1 业务 9")
    avg_acw_s: float = _seed(60.0, "§2: S3 1.5 (average after-call work)")
    max_hold_s: float = _seed(30.0, "§2: S3 1.6 (a single hold must not exceed 30 s)")
    avg_talk_s: float = _seed(180.0, "§2: S3 1.7 (average talk time, ACD)")
    sl_threshold_s: float = _seed(20.0, "§6: industry service level, T is a setting")
    service_level: float = _seed(0.8, "§6: industry service level, 80/20 the common one")

    def __post_init__(self) -> None:
        if self.ring_limit < 1 or self.sl_threshold_s < 0:
            raise ValueError("ring_limit >= 1 and sl_threshold_s >= 0")
        if not (0 <= self.within_ring_limit <= 1 and 0 <= self.service_level <= 1):
            raise ValueError("within_ring_limit and service_level are shares, 0..1")

    @staticmethod
    def seed_of(name: str) -> str:
        """Where a target's default comes from (a section of rules-from-seeds.md)."""
        for f in fields(Targets):
            if f.name == name:
                return str(f.metadata["seed"])
        raise KeyError(name)


# --- the report's input -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyReport:
    """Everything the daily page shows: figures as `kpis()` returns them.

    `quarters` and `hours` are the site's figures per 15-minute and hourly bucket of the day
    (`kpis(..., by="site")` over `buckets(...)`); `queue_hours`, `queue_quarters`,
    `agent_hours` and `agent_quarters` each queue's and agent's (every bucket of the day,
    with the keys `kpis(..., by=...)` lists for it). `alerts` (rule, count) and `rejected`
    (reason, count of input refused): None when not counted, empty when none."""

    site: str
    day: date
    tz: ZoneInfo
    site_kpis: Kpis  # the whole day
    queues: Mapping[str, Kpis]
    agents: Mapping[str, Kpis]  # by agent id, from the sign-ins (docs/kpi.md, Keys)
    quarters: Sequence[tuple[Window, Kpis]]
    hours: Sequence[tuple[Window, Kpis]]
    targets: Targets = Targets()
    alerts: Sequence[tuple[str, int]] | None = None
    rejected: Mapping[str, int] | None = None
    # per queue and per agent, per hour and per 15 minutes: kpis(by="queue"/"agent") over
    # the day's buckets; empty when not given (the page and the CSV then leave them out)
    queue_hours: Series = ()
    queue_quarters: Series = ()
    agent_hours: Series = ()
    agent_quarters: Series = ()
    seats: Mapping[str, Kpis] = field(default_factory=dict)  # the desks' view, whoever sat

    @property
    def window(self) -> Window:
        return day_window(self.day, self.tz)


def day_window(day: date, tz: ZoneInfo) -> Window:
    """The local day: midnight to midnight, 23, 24 or 25 hours."""
    # from noon, which exists on every day, unlike midnight in a few zones
    noon = datetime.combine(day, time(12), tzinfo=tz).timestamp()
    return buckets(noon, noon + 1, 86400, tz=tz)[0]


def build_daily(
    call_events: Iterable[CallEvent | Mapping[str, Any]],
    seat_events: Iterable[SeatEvent | Mapping[str, Any]],
    day: date,
    tz: ZoneInfo,
    *,
    site: str = "site",
    targets: Targets = Targets(),
    until: float | None = None,
    alerts: Sequence[tuple[str, int]] | None = None,
    rejected: Mapping[str, int] | None = None,
    sign_ins: SignIns | None = None,
) -> DailyReport:
    """The day's report computed with kpi.py from the events (docs/kpi.md, Inputs).

    An event that is not a valid payload is refused and counted in `rejected` (added to the
    counts given), not an error: one bad frame must not cost the site its report. Give the
    events after the day too when there are any: the ACW of a call released before midnight
    runs past it. The seats' last states run to `until`, by default the later of the day's
    end and the last seat event. `sign_ins`: who was signed in at each seat, when (the
    agents' figures; none given: nobody was, and every seat's events are unattributed)."""
    refused: Counter[str] = Counter(rejected or {})
    d = _Day(call_events, seat_events, day, tz, site=site, targets=targets, until=until,
             refused=refused, sign_ins=sign_ins)  # fmt: skip

    def site_of(size_s: int) -> list[tuple[Window, Kpis]]:
        return [(w, k[site]) for w, k in d.series("site", size_s)]

    return DailyReport(site=site, day=day, tz=tz, site_kpis=d.figures(d.whole, "site")[site],
                       queues=d.figures(d.whole, "queue"), agents=d.figures(d.whole, "agent"),
                       quarters=site_of(900), hours=site_of(3600), targets=targets,
                       alerts=alerts, rejected=dict(sorted(refused.items())),
                       queue_hours=d.series("queue", 3600),
                       queue_quarters=d.series("queue", 900),
                       agent_hours=d.series("agent", 3600),
                       agent_quarters=d.series("agent", 900),
                       seats=d.figures(d.whole, "seat"))  # fmt: skip


def day_intervals(
    call_events: Iterable[CallEvent | Mapping[str, Any]],
    seat_events: Iterable[SeatEvent | Mapping[str, Any]],
    day: date,
    tz: ZoneInfo,
    *,
    by: By,
    size_s: int,
    site: str = "site",
    targets: Targets = Targets(),
    until: float | None = None,
    sign_ins: SignIns | None = None,
) -> list[tuple[Window, dict[str, Kpis]]]:
    """One scope's figures per bucket of the day (`size_s` 900 or 3600): every bucket of
    the local day, each with the keys that had something in it, as `kpis(..., by=by)` gives
    them over `buckets(...)`, with the targets' ring limit and T. The same input rules as
    `build_daily`; invalid events are left out."""
    d = _Day(call_events, seat_events, day, tz, site=site, targets=targets, until=until,
             refused=Counter(), sign_ins=sign_ins)  # fmt: skip
    return d.series(by, size_s)


class _Day:
    """One day's events, ready for kpis() over any of its windows."""

    def __init__(self, call_events: Iterable[CallEvent | Mapping[str, Any]],
                 seat_events: Iterable[SeatEvent | Mapping[str, Any]], day: date,
                 tz: ZoneInfo, *, site: str, targets: Targets, until: float | None,
                 refused: Counter[str], sign_ins: SignIns | None) -> None:  # fmt: skip
        calls = _valid(call_events, CallEvent, "call event", refused)
        seats = _valid(seat_events, SeatEvent, "seat event", refused)
        self.tz, self.site, self.targets = tz, site, targets
        self.whole = day_window(day, tz)
        end = until if until is not None else max([self.whole.end, *(e.t for e in seats)])
        self.calls = _CallIndex(calls)
        self.seats = _SeatIndex(state_intervals(seats, until=end))
        self.sign_ins = SignIns() if sign_ins is None else sign_ins

    def figures(self, w: Window, by: By) -> dict[str, Kpis]:
        events = self.calls.touching(w)
        return kpis(events, self.seats.for_window(w, {e.call for e in events}), window=w,
                    by=by, site=self.site, ring_limit=self.targets.ring_limit,
                    sl_threshold_s=self.targets.sl_threshold_s,
                    sign_ins=self.sign_ins)  # fmt: skip

    def series(self, by: By, size_s: int) -> list[tuple[Window, dict[str, Kpis]]]:
        return [
            (w, self.figures(w, by))
            for w in buckets(self.whole.start, self.whole.end, size_s, tz=self.tz)
        ]


M = TypeVar("M", bound=BaseModel)


def _valid(raw: Iterable[M | Mapping[str, Any]], model: type[M], kind: str,
           refused: Counter[str]) -> list[M]:  # fmt: skip
    out = []
    for item in raw:
        if isinstance(item, model):
            out.append(item)
            continue
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            # the field and the kind of fault only: a count per value would grow unbounded
            refused[f"{kind}{' ' + where if where else ''}: {err['type']}"] += 1
    return out


class _CallIndex:
    """The events of the calls that touch a window, the input docs/kpi.md asks for: each
    figure is decided by an event in the window, and its call's other events come along.
    Giving kpis() only those calls keeps a day of 96 buckets from re-reading every call."""

    def __init__(self, events: list[CallEvent]) -> None:
        self.calls: dict[tuple[str, int], list[CallEvent]] = defaultdict(list)
        for e in events:
            self.calls[(e.pbx, e.call)].append(e)
        self.times = sorted((e.t, key) for key, evs in self.calls.items() for e in evs)
        self.ts = [t for t, _ in self.times]

    def touching(self, w: Window) -> list[CallEvent]:
        keys: dict[tuple[str, int], None] = {}
        for _, key in self.times[bisect_left(self.ts, w.start) : bisect_left(self.ts, w.end)]:
            keys[key] = None
        return [e for key in keys for e in self.calls[key]]


class _SeatIndex:
    """The seat intervals kpis() needs for a window, so that 96 buckets of a large site do
    not each read every interval of the day. The figures are exactly those of all the
    intervals (tests/core/test_report.py checks it): kpis() counts seat time only where an
    interval overlaps the window, reads ACW from the intervals of the calls given, and needs
    to know which seats have any interval at all (a seat with none has unknown ACW). So a
    window gets the intervals that overlap it, those of its calls, and each seat's first,
    in the order state_intervals gave them (the sums add in the same order)."""

    def __init__(self, intervals: list[StateInterval]) -> None:
        self.intervals = intervals
        self.seats: list[tuple[int, list[float], list[float]]] = []  # first, starts, ends
        self.by_call: dict[int, list[int]] = defaultdict(list)
        first = 0
        for i, iv in enumerate(intervals):
            if iv.call is not None:
                self.by_call[iv.call].append(i)
            if i + 1 == len(intervals) or intervals[i + 1].seat != iv.seat:
                part = intervals[first : i + 1]  # one seat's, in time order, not overlapping
                self.seats.append((first, [x.start for x in part], [x.end for x in part]))
                first = i + 1

    def for_window(self, w: Window, calls: Iterable[int]) -> list[StateInterval]:
        keep: set[int] = set()
        for first, starts, ends in self.seats:
            keep.add(first)
            keep.update(range(first + bisect_right(ends, w.start),
                              first + bisect_left(starts, w.end)))  # fmt: skip
        for call in set(calls):
            keep.update(self.by_call.get(call, ()))
        return [self.intervals[i] for i in sorted(keep)]


def report_rows(report: DailyReport) -> list[Row]:
    """The report's figures as CSV rows: the day (site, queues, agents), the site's hours
    and 15-minute buckets, then each queue's hours and 15-minute buckets and each agent's
    (in time order, keys sorted within a bucket; a key with nothing in a bucket has no row
    for it)."""
    day = report.window
    rows: list[Row] = [(day, "site", report.site, report.site_kpis)]
    rows += [(day, "queue", key, k) for key, k in report.queues.items()]
    rows += [(day, "agent", key, k) for key, k in report.agents.items()]
    rows += [(day, "seat", key, k) for key, k in report.seats.items()]
    rows += [(w, "site", report.site, k) for w, k in report.hours]
    rows += [(w, "site", report.site, k) for w, k in report.quarters]
    for by, series in (
        ("queue", report.queue_hours),
        ("queue", report.queue_quarters),
        ("agent", report.agent_hours),
        ("agent", report.agent_quarters),
    ):
        rows += [(w, by, key, k) for w, figures in series for key, k in figures.items()]
    return rows


def per_key(series: Series) -> dict[str, list[tuple[Window, Kpis]]]:
    """A series turned round: each key's buckets with figures, in time order, keys sorted."""
    out: dict[str, list[tuple[Window, Kpis]]] = defaultdict(list)
    for w, figures in series:
        for key, k in figures.items():
            out[key].append((w, k))
    return dict(sorted(out.items()))


# --- CSV --------------------------------------------------------------------------------------

Kind = Literal["int", "float", "map", "str"]


def _kind(hint: Any) -> Kind:
    if get_origin(hint) in (Mapping, dict):
        return "map"
    types = {a for a in (get_args(hint) or (hint,)) if a is not type(None)}
    if types == {int}:
        return "int"
    return "float" if types and types <= {int, float} else "str"


# derived from the dataclass, so a field added to Kpis is a column without a change here
KPI_FIELDS: tuple[tuple[str, Kind], ...] = tuple(
    (f.name, _kind(get_type_hints(Kpis)[f.name])) for f in fields(Kpis)
)
WINDOW_COLUMNS = ("start", "end", "by", "key")


def kpi_csv(rows: Iterable[Row], tz: ZoneInfo) -> str:
    """One CSV line per (interval, by, key): the interval's start and end as local ISO times
    with their UTC offset, `by` (site, queue, agent, seat), the key, then every Kpis field. A
    mapping field (not_ready_s) is one column per reason, `not_ready_s:<reason>`, over the
    reasons of all rows. None is an empty cell; ratios stay 0..1, plain decimals."""
    rows = list(rows)
    reasons = {
        name: sorted({r for _, _, _, k in rows for r in getattr(k, name)})
        for name, kind in KPI_FIELDS
        if kind == "map"
    }
    header = list(WINDOW_COLUMNS)
    for name, kind in KPI_FIELDS:
        header += [f"{name}:{r}" for r in reasons[name]] if kind == "map" else [name]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for w, by, key, k in rows:
        line = [_iso(w.start, tz), _iso(w.end, tz), by, key]
        for name, kind in KPI_FIELDS:
            value = getattr(k, name)
            if kind == "map":
                line += [_cell(value.get(r)) for r in reasons[name]]
            else:
                line.append(_cell(value))
        writer.writerow(line)
    return out.getvalue()


def read_kpi_csv(text: str) -> list[Row]:
    """The rows of `kpi_csv`'s text, back as (Window, by, key, Kpis)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [c for c in WINDOW_COLUMNS if c not in columns] + [
        name for name, kind in KPI_FIELDS if kind != "map" and name not in columns
    ]
    if missing:
        raise ValueError(f"not a KPI CSV: no column {', '.join(missing)}")
    rows: list[Row] = []
    for line in reader:
        values: dict[str, Any] = {}
        for name, kind in KPI_FIELDS:
            if kind == "map":
                prefix = f"{name}:"
                values[name] = {c[len(prefix) :]: float(line[c]) for c in columns
                                if c.startswith(prefix) and line[c] != ""}  # fmt: skip
            elif kind == "str":
                values[name] = line[name]
            elif line[name] == "":
                values[name] = None
            else:
                values[name] = int(line[name]) if kind == "int" else float(line[name])
        w = Window(datetime.fromisoformat(line["start"]).timestamp(),
                   datetime.fromisoformat(line["end"]).timestamp())  # fmt: skip
        rows.append((w, line["by"], line["key"], Kpis(**values)))
    return rows


def _iso(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(value)  # the shortest text that reads back as the same float
        # 1e-05 is not a plain decimal to a spreadsheet's locale import: write it out
        return format(Decimal(text), "f") if "e" in text and math.isfinite(value) else text
    return str(value)


# --- formatting -------------------------------------------------------------------------------


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _pct(x: float | None) -> str:
    return DASH if x is None else f"{x * 100:.1f} %"


def _secs(x: float | None) -> str:
    return DASH if x is None else f"{x:.1f} s"


def _rings(x: float | None) -> str:
    return DASH if x is None else f"{x:.2f}"


def _count(n: int | None) -> str:
    return DASH if n is None else str(n)


def _hms(x: float | None) -> str:
    if x is None:
        return DASH
    s = round(x)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _offset(t: float, tz: ZoneInfo) -> str:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    total = int(off.total_seconds()) // 60 if off is not None else 0
    sign = "+" if total >= 0 else "-"
    return f"UTC{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"


def _clock(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%H:%M")


def _clock_changes(marks: Sequence[Window], tz: ZoneInfo) -> list[str]:
    """What the clocks did this day, from its hourly buckets: "03:00 (UTC+02:00) became
    02:00 (UTC+01:00)"."""
    out = []
    for a, b in pairwise(marks):
        old = datetime.fromtimestamp(a.start, tz).utcoffset()
        if old is not None and old != datetime.fromtimestamp(b.start, tz).utcoffset():
            was = datetime.fromtimestamp(b.start, timezone(old))  # the old clock's reading
            out.append(f"{was:%H:%M} ({_offset(a.start, tz)}) became "
                       f"{_clock(b.start, tz)} ({_offset(b.start, tz)})")  # fmt: skip
    return out


EPS = 1e-9  # an average of exactly the target is met, whatever the float rounding says


def _at_most(value: float | None, limit: float) -> Status:
    return "no data" if value is None else "met" if value <= limit + EPS else "missed"


def _at_least(value: float | None, floor: float) -> Status:
    return "no data" if value is None else "met" if value >= floor - EPS else "missed"


MARK = {"met": "\u2713", "missed": "\u2717", "no data": DASH}


def _status(status: Status) -> str:
    css = status.replace(" ", "")
    return f'<td class="status {css}"><span aria-hidden="true">{MARK[status]}</span> {status}</td>'


# --- the checks against the targets -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Check:
    label: str
    value: str
    target: str
    status: Status
    seed: str


def _checks(k: Kpis, t: Targets) -> list[_Check]:
    hold_detail = (
        f" (average {_secs(k.avg_hold_s)}, {k.holds} hold{'s' if k.holds != 1 else ''})"
        if k.holds
        else ""
    )
    return [
        _Check(f"Answered within {t.ring_limit} rings", _pct(k.within_ring_limit),
               f"\u2265 {_pct(t.within_ring_limit)}",
               _at_least(k.within_ring_limit, t.within_ring_limit),
               Targets.seed_of("ring_limit")),
        _Check("Average rings to answer", _rings(k.avg_rings), f"\u2264 {t.avg_rings:g}",
               _at_most(k.avg_rings, t.avg_rings), Targets.seed_of("avg_rings")),
        _Check("Average after-call work (ACW)", _secs(k.avg_acw_s),
               f"\u2264 {t.avg_acw_s:g} s", _at_most(k.avg_acw_s, t.avg_acw_s),
               Targets.seed_of("avg_acw_s")),
        _Check("Longest single hold", _secs(k.max_hold_s) + hold_detail,
               f"every hold \u2264 {t.max_hold_s:g} s", _at_most(k.max_hold_s, t.max_hold_s),
               Targets.seed_of("max_hold_s")),
        _Check("Average talk time", _secs(k.avg_talk_s), f"\u2264 {t.avg_talk_s:g} s",
               _at_most(k.avg_talk_s, t.avg_talk_s), Targets.seed_of("avg_talk_s")),
        _Check(f"Service level (answered within {t.sl_threshold_s:g} s)", _pct(k.service_level),
               f"\u2265 {_pct(t.service_level)}", _at_least(k.service_level, t.service_level),
               Targets.seed_of("service_level")),
    ]  # fmt: skip


# --- plots ------------------------------------------------------------------------------------

PLOT_W, PLOT_H = 960, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 12, 30
INNER_W, INNER_H = PLOT_W - LEFT - RIGHT, PLOT_H - TOP - BOTTOM
# Paul Tol's colour-blind safe palette; the legend and tooltips name every series anyway
COLOURS = {
    "offered": "#4477aa",
    "answered": "#228833",
    "abandoned": "#ee6677",
    "asa": "#aa3377",
    "sl": "#4477aa",
    "occupancy": "#228833",
    "target": "#555555",
}


def _scale(peak: float, *, integer: bool) -> tuple[float, float]:
    """(top, step) of a y axis from 0 that holds `peak`, in about four round steps."""
    if peak <= 0:
        return (4.0, 1.0) if integer else (1.0, 0.25)
    raw = peak / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    return math.ceil(peak / step - EPS) * step, step


class _Frame:
    """The axes of one plot: x is the day's seconds, y is 0..top."""

    def __init__(self, day: Window, top: float) -> None:
        self.day, self.top = day, top

    def x(self, t: float) -> float:
        return LEFT + (t - self.day.start) / self.day.seconds * INNER_W

    def y(self, v: float) -> float:
        return TOP + INNER_H - min(v, self.top) / self.top * INNER_H


def _svg(name: str, title: str, frame: _Frame, step: float, tick: Callable[[float], str],
         marks: Sequence[Window], tz: ZoneInfo, body: list[str]) -> str:  # fmt: skip
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{name}" '
           f'viewBox="0 0 {PLOT_W} {PLOT_H}" width="{PLOT_W}" height="{PLOT_H}" role="img" '
           f'aria-label="{_e(title)}" font-family="sans-serif" font-size="11">',
           f"<title>{_e(title)}</title>"]  # fmt: skip
    for i in range(round(frame.top / step) + 1):
        v = i * step
        y = frame.y(v)
        out.append(f'<line x1="{LEFT}" x2="{PLOT_W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#dddddd" stroke-width="1" />')  # fmt: skip
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444444">'
                   f"{_e(tick(v))}</text>")  # fmt: skip
    for w in marks:
        x0, x1 = frame.x(w.start), frame.x(w.end)
        out.append(f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{TOP + INNER_H}" '
                   f'y2="{TOP + INNER_H + 4}" stroke="#888888" />')  # fmt: skip
        out.append(f'<text class="hour" x="{(x0 + x1) / 2:.1f}" y="{PLOT_H - 10}" '
                   f'text-anchor="middle" fill="#444444">'
                   f"{_clock(w.start, tz)[:2]}</text>")  # fmt: skip
    out += body
    out.append(f'<line x1="{LEFT}" x2="{PLOT_W - RIGHT}" y1="{TOP + INNER_H}" '
               f'y2="{TOP + INNER_H}" stroke="#888888" />')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def _no_data(frame: _Frame) -> str:
    return (f'<text x="{LEFT + INNER_W / 2:.1f}" y="{TOP + INNER_H / 2:.1f}" '
            f'text-anchor="middle" fill="#666666" font-size="14">no data</text>')  # fmt: skip


def _span(w: Window, tz: ZoneInfo) -> str:
    return f"{_clock(w.start, tz)}\u2013{_clock(w.end, tz)}"


def _volume_plot(r: DailyReport, marks: Sequence[Window]) -> str:
    day, tz = r.window, r.tz
    hours = [(w, k) for w, k in r.hours if w.start >= day.start and w.end <= day.end]
    peak = max((max(k.offered, k.answered, k.abandoned) for _, k in hours), default=0)
    top, step = _scale(peak, integer=True)
    frame = _Frame(day, top)
    body = []
    for w, k in hours:
        x0, x1 = frame.x(w.start), frame.x(w.end)
        pad = (x1 - x0) * 0.12
        width = (x1 - x0 - 2 * pad) / 3
        for i, (series, n) in enumerate(
            (("offered", k.offered), ("answered", k.answered), ("abandoned", k.abandoned))
        ):
            y = frame.y(n)
            body.append(f'<rect class="bar {series}" x="{x0 + pad + i * width:.1f}" '
                        f'y="{y:.1f}" width="{width:.1f}" height="{TOP + INNER_H - y:.1f}" '
                        f'fill="{COLOURS[series]}"><title>{_span(w, tz)} {series} {n}</title>'
                        f"</rect>")  # fmt: skip
    if not hours:
        body.append(_no_data(frame))
    return _svg("volume", "Calls offered, answered and abandoned per hour", frame, step,
                lambda v: f"{v:g}", marks, tz, body)  # fmt: skip


def _line(frame: _Frame, points: Sequence[tuple[Window, float | None]], series: str,
          fmt: Callable[[float | None], str], tz: ZoneInfo) -> list[str]:  # fmt: skip
    """A line through the buckets' values, broken where a bucket has none (None is no
    sample, not 0), with a dot per value that names it on hover."""
    lines: list[str] = []
    dots: list[str] = []
    run: list[tuple[float, float]] = []
    colour = COLOURS[series]

    def draw() -> None:
        if len(run) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            lines.append(f'<polyline class="line {series}" points="{path}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.6" />')  # fmt: skip
        run.clear()

    for w, v in points:
        if v is None:
            draw()
            continue
        x, y = frame.x((w.start + w.end) / 2), frame.y(v)
        run.append((x, y))
        dots.append(f'<circle class="point {series}" cx="{x:.1f}" cy="{y:.1f}" r="2.2" '
                    f'fill="{colour}"><title>{_span(w, tz)} {_e(fmt(v))}</title>'
                    "</circle>")  # fmt: skip
    draw()
    return lines + dots


def _line_plot(r: DailyReport, marks: Sequence[Window], name: str, title: str,
               value: Callable[[Kpis], float | None], fmt: Callable[[float | None], str],
               *, ratio: bool, target: float | None = None) -> str:  # fmt: skip
    day, tz = r.window, r.tz
    data = r.quarters or r.hours  # the finer view when it was given
    points = [(w, value(k)) for w, k in data if w.start >= day.start and w.end <= day.end]
    if ratio:
        top, step = 1.0, 0.25
    else:
        top, step = _scale(max((v for _, v in points if v is not None), default=0.0),
                           integer=False)  # fmt: skip
    frame = _Frame(day, top)
    body = _line(frame, points, name, fmt, tz)
    if target is not None:
        y = frame.y(target)
        body.insert(0, f'<line class="target" x1="{LEFT}" x2="{PLOT_W - RIGHT}" y1="{y:.1f}" '
                       f'y2="{y:.1f}" stroke="{COLOURS["target"]}" stroke-dasharray="6 4" />'
                       f'<text x="{PLOT_W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" '
                       f'fill="{COLOURS["target"]}" stroke="#ffffff" stroke-width="3" '
                       f'paint-order="stroke">target {_e(fmt(target))}</text>')  # fmt: skip
    if all(v is None for _, v in points):
        body.append(_no_data(frame))
    tick: Callable[[float], str] = (lambda v: f"{v * 100:.0f} %") if ratio else (
        lambda v: f"{v:g} s")  # fmt: skip
    return _svg(name, title, frame, step, tick, marks, tz, body)


# --- the page ---------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1000px;padding:0 16px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;
border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f2f2}th.key,td.key{text-align:left}td.text{text-align:left;white-space:normal}
.status{text-align:left;font-weight:600}.met{color:#1a7f37}.missed{color:#b42318}
.nodata{color:#666}td.miss{color:#b42318;font-weight:600}td.zero{color:#aaa}
.summary{font-size:1.05em}.note{color:#555;font-size:.9em}
figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}
svg.plot{max-width:100%;height:auto;display:block}
.legend span.sw{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .9em;
vertical-align:-.1em}
.scroll{overflow-x:auto}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
details details{margin-left:1em}details details summary{font-weight:normal}
@media print{h2{break-after:avoid}figure,table{break-inside:avoid}}
"""


def daily_html(report: DailyReport) -> str:
    """The day's report as one HTML page: no script, no external resource."""
    r, k, t, tz = report, report.site_kpis, report.targets, report.tz
    day = r.window
    marks = buckets(day.start, day.end, 3600, tz=tz)
    changes = _clock_changes(marks, tz)
    changed = bool(changes)
    hours_long = day.seconds / 3600
    zone = (f"{_offset(day.start, tz)} until the clocks changed, then {_offset(day.end - 1, tz)}"
            if changed else _offset(day.start, tz))  # fmt: skip
    title = f"{r.site} \u2014 daily KPI report, {r.day.isoformat()}"
    checks = _checks(k, t)
    tally = Counter(c.status for c in checks)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(r.site)}: daily KPI report</h1>",
        f"<p>{_e(r.day.strftime('%A %Y-%m-%d'))}, 00:00 to 24:00 local time "
        f"({_e(r.tz.key)}, {_e(zone)}): {hours_long:g} hours.</p>",
        "</header>",
        '<section id="targets">',
        "<h2>Against the targets</h2>",
        f'<p class="summary">{tally["met"]} met, {tally["missed"]} missed, '
        f"{tally['no data']} with no data.</p>",
        '<div class="scroll"><table>',
        '<thead><tr><th class="key">Figure</th><th>Day</th><th>Target</th>'
        '<th class="key">Result</th><th class="key">Source</th></tr></thead>',
        "<tbody>",
    ]
    for c in checks:
        out.append(f'<tr><td class="key">{_e(c.label)}</td><td>{_e(c.value)}</td>'
                   f"<td>{_e(c.target)}</td>{_status(c.status)}"
                   f'<td class="text">{_e(c.seed)}</td></tr>')  # fmt: skip
    out += [
        "</tbody></table></div>",
        '<p class="note">Met: the figure is within its target; missed: it is not; no data: '
        "nothing to measure (no answered call, no hold...). Talk time excludes holds "
        "(docs/kpi.md, choice 6); the hold target is about every single hold, so the longest "
        "one decides.</p>",
        "</section>",
        '<section id="figures">',
        "<h2>The day's figures</h2>",
        _figures_table(k, t),
        "</section>",
        '<section id="plots">',
        "<h2>Through the day</h2>",
    ]
    if changed:
        out.append(f'<p class="note">The clocks changed this day: {_e("; ".join(changes))}. '
                   f"It has {hours_long:g} hours; the plots and tables show each hour as the "
                   f"local clock read it.</p>")  # fmt: skip
    legend = "".join(f'<span class="sw" style="background:{COLOURS[s]}"></span>{s}'
                     for s in ("offered", "answered", "abandoned"))  # fmt: skip
    fine = "15 minutes" if r.quarters else "hour"
    out += [
        "<figure>",
        "<figcaption>Calls per hour: offered, answered, abandoned</figcaption>",
        _volume_plot(r, marks),
        f'<p class="legend">{legend}</p>',
        "</figure>",
        "<figure>",
        f"<figcaption>Average speed of answer (ASA) per {fine}</figcaption>",
        _line_plot(r, marks, "asa", f"Average speed of answer per {fine}",
                   lambda q: q.asa_s, _secs, ratio=False),
        "</figure>",
        "<figure>",
        f"<figcaption>Service level (answered within {t.sl_threshold_s:g} s) per {fine}"
        "</figcaption>",
        _line_plot(r, marks, "sl", f"Service level per {fine}", lambda q: q.service_level,
                   _pct, ratio=True, target=t.service_level),
        "</figure>",
        "<figure>",
        f"<figcaption>Occupancy per {fine}</figcaption>",
        _line_plot(r, marks, "occupancy", f"Occupancy per {fine}", lambda q: q.occupancy,
                   _pct, ratio=True),
        "</figure>",
        '<p class="note">A gap in a line is a bucket with nothing to measure. Hover a bar or '
        "a point for its figure; the table below has every hour's numbers.</p>",
        "</section>",
        '<section id="hours">',
        "<h2>Per hour</h2>",
        _hours_table(r, changed),
        "</section>",
        '<section id="queues">',
        "<h2>Per queue</h2>",
        _keyed_table(r.queues, QUEUE_COLUMNS, t, "Queue", "No queue had calls this day."),
        "</section>",
        '<section id="agents">',
        "<h2>Per agent</h2>",
        _keyed_table(r.agents, AGENT_COLUMNS, t, "Agent", "No agent was signed in this day."),
        '<p class="note">\u2717 marks a figure that missed its target. Each seat event is the '
        "agent's signed in at the seat at the time, a call the agent's who answered it; "
        "offered is the queue calls rung at the agent.</p>",
        "</section>",
        '<section id="seats">',
        "<h2>Per seat</h2>",
        _keyed_table(r.seats, AGENT_COLUMNS, t, "Seat", "No seat was logged in this day."),
        f'<p class="note">Whoever sat at each desk. With nobody signed in: '
        f"{r.site_kpis.unattributed_handled} calls handled, "
        f"{_hms(r.site_kpis.unattributed_s or 0.0)} logged in (unattributed).</p>",
        "</section>",
        '<section id="queue-intervals">',
        "<h2>Per queue through the day</h2>",
        _queue_intervals(r, changed),
        "</section>",
        '<section id="agent-intervals">',
        "<h2>Per agent through the day</h2>",
        _agent_intervals(r, changed),
        "</section>",
        '<section id="not-ready">',
        "<h2>Not Ready time by reason</h2>",
        _not_ready_table(r),
        "</section>",
        '<section id="alerts">',
        "<h2>Alerts</h2>",
        _counts_table(r.alerts, "Rule", "No alert was raised.",
                      "Alerts were not counted for this report."),
        "</section>",
        '<section id="rejected">',
        "<h2>Rejected input</h2>",
        _counts_table(sorted(r.rejected.items()) if r.rejected is not None else None,
                      "Reason", "No input was refused.",
                      "Refused input was not counted for this report."),
        '<p class="note">Input that was not a valid event is refused and counted here, not '
        "used: the figures above are computed without it.</p>",
        "</section>",
        '<footer><p class="note">Formulas: docs/kpi.md. Targets: '
        "shared/design/rules-from-seeds.md, sections 1, 2 and 6.</p></footer>",
        "</body>",
        "</html>",
    ]  # fmt: skip
    return "\n".join(out) + "\n"


def _figures_table(k: Kpis, t: Targets) -> str:
    not_ready = sum(k.not_ready_s.values()) if k.logged_in_s is not None else None
    rows = [
        ("Offered (calls that entered a queue)", _count(k.offered)),
        ("Answered from a queue", _count(k.answered)),
        ("Abandoned", _count(k.abandoned)),
        ("Abandon rate (abandoned \u00f7 answered + abandoned)", _pct(k.abandon_rate)),
        ("Average speed of answer (ASA)", _secs(k.asa_s)),
        (f"Service level counting abandons within {t.sl_threshold_s:g} s",
         _pct(k.service_level_abandoned)),
        ("Handled (inbound legs)", _count(k.handled)),
        ("Longest talk", _secs(k.max_talk_s)),
        ("Average hold", _secs(k.avg_hold_s)),
        ("Average handling time (talk + hold + ACW)", _secs(k.aht_s)),
        ("Transfers", _count(k.transfers)),
        ("One-stop resolution (answered, never transferred)", _pct(k.one_stop_rate)),
        ("Ring no answer (RONA)", _count(k.rona)),
        ("Outbound calls handled", _count(k.outbound_handled)),
        ("Logged-in seat time (h:mm:ss)", _hms(k.logged_in_s)),
        ("Busy: talking, hold, ACW", _hms(k.busy_s)),
        ("Available: Ready, ringing", _hms(k.available_s)),
        ("Occupancy (busy \u00f7 busy + available)", _pct(k.occupancy)),
        ("Not Ready", _hms(not_ready)),
    ]  # fmt: skip
    body = "".join(f'<tr><td class="key">{_e(a)}</td><td>{_e(b)}</td></tr>' for a, b in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _hours_table(r: DailyReport, changed: bool) -> str:
    if not r.hours:
        return "<p>No hourly figures were given.</p>"
    head = ("Hour", "Offered", "Answered", "Abandoned", "Abandon rate", "ASA",
            "Service level", "Within ring limit", "Handled", "AHT", "Occupancy")  # fmt: skip
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th class="key">{_e(head[0])}</th>', *(f"<th>{_e(h)}</th>" for h in head[1:])]
    out.append("</tr></thead><tbody>")
    for w, k in r.hours:
        label = _span(w, r.tz) + (f" ({_offset(w.start, r.tz)})" if changed else "")
        cells = (_count(k.offered), _count(k.answered), _count(k.abandoned),
                 _pct(k.abandon_rate), _secs(k.asa_s), _pct(k.service_level),
                 _pct(k.within_ring_limit), _count(k.handled), _secs(k.aht_s),
                 _pct(k.occupancy))  # fmt: skip
        out.append(f'<tr><td class="key">{_e(label)}</td>'
                   + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")  # fmt: skip
    out.append("</tbody></table></div>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Column:
    head: str
    text: Callable[[Kpis], str]
    judge: Callable[[Kpis, Targets], Status] | None = None


def _col(head: str, name: str, fmt: Callable[[Any], str],
         judge: Callable[[Kpis, Targets], Status] | None = None) -> _Column:  # fmt: skip
    return _Column(head, lambda k: fmt(getattr(k, name)), judge)


_RINGS = _col("Within ring limit", "within_ring_limit", _pct,
              lambda k, t: _at_least(k.within_ring_limit, t.within_ring_limit))  # fmt: skip
_AVG_RINGS = _col("Avg rings", "avg_rings", _rings,
                  lambda k, t: _at_most(k.avg_rings, t.avg_rings))  # fmt: skip
_SL = _col("Service level", "service_level", _pct,
           lambda k, t: _at_least(k.service_level, t.service_level))  # fmt: skip
_TALK = _col("Avg talk", "avg_talk_s", _secs, lambda k, t: _at_most(k.avg_talk_s, t.avg_talk_s))
_MAX_HOLD = _col("Longest hold", "max_hold_s", _secs,
                 lambda k, t: _at_most(k.max_hold_s, t.max_hold_s))  # fmt: skip
_ACW = _col("Avg ACW", "avg_acw_s", _secs, lambda k, t: _at_most(k.avg_acw_s, t.avg_acw_s))

QUEUE_COLUMNS = (
    _col("Offered", "offered", _count), _col("Answered", "answered", _count),
    _col("Abandoned", "abandoned", _count), _col("Abandon rate", "abandon_rate", _pct),
    _col("ASA", "asa_s", _secs), _SL, _RINGS, _AVG_RINGS,
    _col("Handled", "handled", _count), _TALK, _col("Avg hold", "avg_hold_s", _secs),
    _MAX_HOLD, _ACW, _col("AHT", "aht_s", _secs), _col("Transfers", "transfers", _count),
    _col("One-stop", "one_stop_rate", _pct), _col("Outbound", "outbound_handled", _count),
)  # fmt: skip
AGENT_COLUMNS = (
    _col("Offered", "offered", _count), _col("Answered", "answered", _count),
    _col("Abandoned ringing", "abandoned", _count), _col("ASA", "asa_s", _secs), _RINGS,
    _AVG_RINGS, _col("Handled", "handled", _count), _TALK,
    _col("Avg hold", "avg_hold_s", _secs), _MAX_HOLD, _ACW, _col("AHT", "aht_s", _secs),
    _col("RONA", "rona", _count), _col("Transfers", "transfers", _count),
    _col("One-stop", "one_stop_rate", _pct), _col("Outbound", "outbound_handled", _count),
    _col("Logged in", "logged_in_s", _hms), _col("Occupancy", "occupancy", _pct),
)  # fmt: skip


def _keyed_table(rows: Mapping[str, Kpis], columns: Sequence[_Column], t: Targets,
                 key: str, empty: str) -> str:  # fmt: skip
    if not rows:
        return f"<p>{_e(empty)}</p>"
    out = ['<div class="scroll"><table><thead><tr>', f'<th class="key">{_e(key)}</th>']
    out += [f"<th>{_e(c.head)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for name, k in rows.items():
        out.append(f'<tr><td class="key">{_e(name)}</td>')
        for c in columns:
            text = c.text(k)
            if c.judge is not None and c.judge(k, t) == "missed":
                out.append(f'<td class="miss" title="missed its target">{_e(text)} '
                           f"\u2717</td>")  # fmt: skip
            else:
                out.append(f"<td>{_e(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


QUEUE_INTERVAL_COLUMNS = (
    _col("Offered", "offered", _count), _col("Answered", "answered", _count),
    _col("Abandoned", "abandoned", _count), _col("Abandon rate", "abandon_rate", _pct),
    _col("ASA", "asa_s", _secs), _SL, _RINGS, _col("Handled", "handled", _count), _TALK,
    _ACW, _col("AHT", "aht_s", _secs),
)  # fmt: skip
AGENT_INTERVAL_COLUMNS = (
    _col("Offered", "offered", _count), _col("Answered", "answered", _count),
    _col("Handled", "handled", _count), _TALK, _col("Avg hold", "avg_hold_s", _secs),
    _MAX_HOLD, _ACW, _col("AHT", "aht_s", _secs), _col("RONA", "rona", _count),
    _col("Transfers", "transfers", _count), _col("Logged in", "logged_in_s", _hms),
    _col("Busy", "busy_s", _hms), _col("Occupancy", "occupancy", _pct),
)  # fmt: skip


def _interval_table(rows: Sequence[tuple[Window, Kpis]], columns: Sequence[_Column],
                    r: DailyReport, changed: bool, head: str) -> str:  # fmt: skip
    out = ['<div class="scroll"><table><thead><tr>', f'<th class="key">{_e(head)}</th>']
    out += [f"<th>{_e(c.head)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for w, k in rows:
        label = _span(w, r.tz) + (f" ({_offset(w.start, r.tz)})" if changed else "")
        out.append(f'<tr><td class="key">{_e(label)}</td>')
        for c in columns:
            text = c.text(k)
            if c.judge is not None and c.judge(k, r.targets) == "missed":
                out.append(f'<td class="miss" title="missed its target">{_e(text)} '
                           f"\u2717</td>")  # fmt: skip
            else:
                out.append(f"<td>{_e(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _queue_intervals(r: DailyReport, changed: bool) -> str:
    """Each queue's hours, open, with its quarter-hours folded inside."""
    hours, quarters = per_key(r.queue_hours), per_key(r.queue_quarters)
    if not hours and not quarters:
        return "<p>No queue had calls this day.</p>"
    out = [
        '<p class="note">Each queue\'s hours with calls, and inside each its '
        "quarter-hours (open \u201cPer 15 minutes\u201d). An interval in which the queue "
        "had nothing is left out. \u2717 marks a figure that missed its target.</p>"
    ]
    for name in sorted(hours.keys() | quarters.keys()):
        day = r.queues.get(name)
        summary = name if day is None else (
            f"{name}: {day.offered} offered, {day.answered} answered, {day.abandoned} "
            f"abandoned, service level {_pct(day.service_level)}")  # fmt: skip
        out.append(f'<details class="queue" data-key="{_e(name)}" open>'
                   f"<summary>{_e(summary)}</summary>")  # fmt: skip
        if name in hours:
            out.append(_interval_table(hours[name], QUEUE_INTERVAL_COLUMNS, r, changed, "Hour"))
        if name in quarters:
            out.append('<details class="quarters"><summary>Per 15 minutes</summary>'
                       + _interval_table(quarters[name], QUEUE_INTERVAL_COLUMNS, r, changed,
                                         "15 minutes") + "</details>")  # fmt: skip
        out.append("</details>")
    return "".join(out)


def _agent_intervals(r: DailyReport, changed: bool) -> str:
    """Each agent's hours, folded: a site has many agents, and their quarter-hours would
    make the page huge, so those are in the CSV and the API only."""
    hours = per_key(r.agent_hours)
    if not hours:
        return "<p>No agent was signed in at a seat logged in this day.</p>"
    out = [
        '<p class="note">Open an agent for its hours (those in which it was logged in '
        "or had calls). Per 15 minutes: the CSV, or the API's /kpis/intervals. Talk, hold "
        "and ACW are averages per handled call; \u2717 marks a figure that missed its "
        "target.</p>"
    ]
    for name, rows in hours.items():
        day = r.agents.get(name)
        summary = name if day is None else (
            f"{name}: {day.handled} handled, AHT {_secs(day.aht_s)}, logged in "
            f"{_hms(day.logged_in_s)}")  # fmt: skip
        out.append(f'<details class="agent" data-key="{_e(name)}">'
                   f"<summary>{_e(summary)}</summary>"
                   + _interval_table(rows, AGENT_INTERVAL_COLUMNS, r, changed, "Hour")
                   + "</details>")  # fmt: skip
    return "".join(out)


REASON_ORDER = [*get_args(ReasonName), NO_REASON]


def _not_ready_table(r: DailyReport) -> str:
    seats = [(name, k) for name, k in r.agents.items() if k.not_ready_s]
    reasons = {x for _, k in seats for x in k.not_ready_s} | set(r.site_kpis.not_ready_s)
    if not reasons:
        return "<p>No Not Ready time this day.</p>"
    known = [x for x in REASON_ORDER if x in reasons]
    order = known + sorted(reasons - set(known))
    out = ['<div class="scroll"><table><thead><tr><th class="key">Agent</th>']
    out += [f"<th>{_e(x)}</th>" for x in order]
    out.append("<th>Total</th><th>Share of logged-in time</th></tr></thead><tbody>")
    for name, k in [*seats, (f"{r.site} (all seats)", r.site_kpis)]:
        total = sum(k.not_ready_s.values())
        share = total / k.logged_in_s if k.logged_in_s else None
        out.append(f'<tr><td class="key">{_e(name)}</td>')
        for x in order:
            seconds = k.not_ready_s.get(x)
            css = ' class="zero"' if not seconds else ""
            out.append(f"<td{css}>{_hms(seconds or 0.0)}</td>")
        out.append(f"<td>{_hms(total)}</td><td>{_pct(share)}</td></tr>")
    out.append("</tbody></table></div>")
    out.append('<p class="note">Seat time in h:mm:ss; "none" is Not Ready without a '
               "reason.</p>")  # fmt: skip
    return "".join(out)


def _counts_table(counts: Sequence[tuple[str, int]] | None, key: str, none: str,
                  uncounted: str) -> str:  # fmt: skip
    if counts is None:
        return f"<p>{DASH} {_e(uncounted)}</p>"
    if not counts:
        return f"<p>{_e(none)}</p>"
    out = [f'<table><thead><tr><th class="key">{_e(key)}</th><th>Count</th></tr></thead>'
           "<tbody>"]  # fmt: skip
    out += [f'<tr><td class="key">{_e(name)}</td><td>{n}</td></tr>' for name, n in counts]
    total = sum(n for _, n in counts)
    out.append(f'<tr><th class="key">Total</th><th>{total}</th></tr></tbody></table>')
    return "".join(out)
