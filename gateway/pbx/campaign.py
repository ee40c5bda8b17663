"""Outbound campaigns: a list of numbers to dial for one queue, under one caller ID.

A campaign file is TOML (settings plus `[[number]]` entries) or CSV (a `number,name` header;
the settings then come from `load_campaign`'s arguments). Loading is all or nothing: every
problem found is listed in one `CampaignError`, naming the file and the line or entry, and no
campaign is returned.
"""

from __future__ import annotations

import csv
import io
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.contract.topics import ID_PATTERN
from gateway.pbx.compliance import InvalidNumberError, normalise

RING_LIMIT_DEFAULT = 6  # seed 003 服务标准 2.0: outbound unanswered after 6 rings, hang up
RING_LIMIT_RANGE = (1, 10)
MAX_RATIO_DEFAULT = 3.0
MAX_RATIO_RANGE = (1.0, 5.0)
AUTHORISATION_MAX = 32  # as DialCommand.authorisation
NAME_MAX = 200  # a callee's name: enough for any real name, bounded for the store
MAX_PROBLEMS_SHOWN = 20

_SETTINGS = ("name", "caller_id", "queue", "ring_limit", "max_ratio", "authorisation")
_ENTRY_KEYS = ("number", "name")


# An entry as read, before checking: (where, number, name).
_Entry = tuple[str, Any, Any]


class CampaignError(ValueError):
    """A campaign file that cannot be used; `problems` lists each one ("entry 3: ...")."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        head = f"{path.name}: " + (
            "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        )
        body = "; ".join(shown) + (f"; ... and {more} more" if more else "")
        super().__init__(f"{head}: {body}")


@dataclass(frozen=True, slots=True)
class CampaignNumber:
    number: str  # as given in the file
    e164: str  # normalised: what is dialled and what duplicates are judged on
    name: str  # the callee's name, "" when not given
    where: str  # "entry 3" (TOML) or "line 4" (CSV): for messages about this number


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    caller_id: str  # E.164
    queue: str
    numbers: tuple[CampaignNumber, ...]
    ring_limit: int = RING_LIMIT_DEFAULT
    max_ratio: float = MAX_RATIO_DEFAULT
    # A code for the gate's authorisation rule (non-local numbers); never shown in a repr.
    authorisation: str | None = field(default=None, repr=False)
    source: str = ""  # the file's name, for messages


def load_campaign(
    path: str | Path,
    *,
    name: str | None = None,
    caller_id: str | None = None,
    queue: str | None = None,
    ring_limit: int | None = None,
    max_ratio: float | None = None,
    authorisation: str | None = None,
    region: str = "CN",
) -> Campaign:
    """Read a `.toml` or `.csv` campaign. Numbers written nationally are read in `region`.

    The keyword arguments supply settings the file does not give: all of them for a CSV file
    (`name` defaults to the file's stem). For a TOML file they may fill a missing key; a key
    given both in the file and as an argument with different values is a problem, not an
    override. Raises `CampaignError` for every problem, `OSError` if the file cannot be read.
    """
    path = Path(path)
    given: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", name),
            ("caller_id", caller_id),
            ("queue", queue),
            ("ring_limit", ring_limit),
            ("max_ratio", max_ratio),
            ("authorisation", authorisation),
        )
        if value is not None
    }
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise CampaignError(path, [f"unknown file type {path.suffix!r}: use .toml or .csv"])
    raw = path.read_bytes()
    problems: list[str] = []
    entries: list[_Entry] | None
    if suffix == ".toml":
        settings, entries = _read_toml(raw, given, problems)
    else:
        settings = {"name": path.stem, **given}
        entries = _read_csv(raw, problems)
    campaign = _build(settings, entries, path, region, problems)
    if problems or campaign is None:
        raise CampaignError(path, problems)
    return campaign


def _read_toml(
    raw: bytes, given: Mapping[str, Any], problems: list[str]
) -> tuple[dict[str, Any], list[_Entry] | None]:
    """Settings and entries; entries None when the file could not be read as a list."""
    try:
        doc = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        problems.append(f"not UTF-8 text ({exc})")
        return {}, None
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"not valid TOML: {exc}")  # tomllib's message gives line and column
        return {}, None
    settings: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "number":
            continue
        if key not in _SETTINGS:
            problems.append(f"unknown key {key!r} (known: {', '.join(_SETTINGS)}, [[number]])")
        elif key in given and given[key] != value:
            problems.append(
                "authorisation in the file differs from the one passed"  # a secret: not shown
                if key == "authorisation"
                else f"{key} is {value!r} in the file but {given[key]!r} was passed"
            )
        else:
            settings[key] = value
    for key, value in given.items():
        settings.setdefault(key, value)
    table = doc.get("number", [])
    if not isinstance(table, list) or not all(isinstance(e, dict) for e in table):
        problems.append("'number' must be an array of tables: write each as [[number]]")
        return settings, None
    entries: list[_Entry] = []
    for i, entry in enumerate(table, start=1):
        where = f"entry {i}"
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            problems.append(
                f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} (known: {', '.join(_ENTRY_KEYS)})"
            )
        entries.append((where, entry.get("number"), entry.get("name", "")))
    return settings, entries


def _read_csv(raw: bytes, problems: list[str]) -> list[_Entry] | None:
    """The rows after the header; None when the file could not be read as a list."""
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of a cell
    except UnicodeDecodeError as exc:
        problems.append(f"not UTF-8 text ({exc}); save the sheet as CSV UTF-8")
        return None
    reader = csv.reader(io.StringIO(text, newline=""))
    entries: list[_Entry] = []
    header: list[str] | None = None
    try:
        for row in reader:
            where = f"line {reader.line_num}"
            if not any(cell.strip() for cell in row):
                continue  # blank lines are not entries
            if header is None:
                header = [cell.strip().lower() for cell in row]
                if header not in (["number"], ["number", "name"]):
                    problems.append(f"{where}: header must be 'number,name', got {','.join(row)!r}")
                    return None
                continue
            if len(row) != len(header):
                problems.append(
                    f"{where}: {len(row)} field{'s' if len(row) != 1 else ''}, the header has "
                    f"{len(header)} (quote a name that contains a comma)"
                )
                continue
            entries.append((where, row[0], row[1] if len(row) > 1 else ""))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV ({exc})")
        return None
    if header is None:
        problems.append("the file is empty: expected a 'number,name' header and numbers")
        return None
    return entries


def _build(
    settings: Mapping[str, Any],
    entries: list[_Entry] | None,
    path: Path,
    region: str,
    problems: list[str],
) -> Campaign | None:
    name = settings.get("name")
    if name is None:
        problems.append("name is missing")
    elif not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        problems.append(f"name {name!r} must be 1-64 of A-Z a-z 0-9 _ . -")

    caller_e164 = ""
    caller_id = settings.get("caller_id")
    if caller_id is None or (isinstance(caller_id, str) and not caller_id.strip()):
        problems.append(
            "caller_id is missing or empty: every outbound call must identify the caller "
            "(seed 000 TCPA 1)"
        )
    elif not isinstance(caller_id, str):
        problems.append(f"caller_id must be a string, got {caller_id!r}")
    else:
        try:
            caller_e164 = normalise(caller_id, region=region)
        except InvalidNumberError:
            problems.append(f"caller_id {caller_id!r} is not a valid phone number")

    queue = settings.get("queue")
    if queue is None:
        problems.append("queue is missing: the agents' queue that takes the answered calls")
    elif not isinstance(queue, str) or not ID_PATTERN.fullmatch(queue):
        problems.append(f"queue {queue!r} must be 1-64 of A-Z a-z 0-9 _ . -")

    ring_limit = settings.get("ring_limit", RING_LIMIT_DEFAULT)
    low, high = RING_LIMIT_RANGE
    if isinstance(ring_limit, bool) or not isinstance(ring_limit, int):
        problems.append(f"ring_limit must be a whole number of rings, got {ring_limit!r}")
    elif not low <= ring_limit <= high:
        problems.append(f"ring_limit {ring_limit} is outside {low}..{high}")

    max_ratio = settings.get("max_ratio", MAX_RATIO_DEFAULT)
    rlow, rhigh = MAX_RATIO_RANGE
    if isinstance(max_ratio, bool) or not isinstance(max_ratio, int | float):
        problems.append(f"max_ratio must be a number, got {max_ratio!r}")
    elif not (math.isfinite(max_ratio) and rlow <= max_ratio <= rhigh):
        problems.append(f"max_ratio {max_ratio} is outside {rlow}..{rhigh}")

    code = settings.get("authorisation")
    if code is not None and not (
        isinstance(code, str) and 0 < len(code) <= AUTHORISATION_MAX and code.strip() == code
    ):
        # Never echo the code itself: it is a secret.
        problems.append(
            f"authorisation must be a quoted string of 1-{AUTHORISATION_MAX} characters "
            "without surrounding spaces"
        )

    numbers = _numbers(entries or [], region, problems)
    if entries == []:
        problems.append("no numbers: a campaign needs at least one [[number]] entry or CSV row")
    if problems:
        return None
    assert isinstance(name, str) and isinstance(queue, str)
    return Campaign(
        name=name,
        caller_id=caller_e164,
        queue=queue,
        numbers=tuple(numbers),
        ring_limit=int(ring_limit),
        max_ratio=float(max_ratio),
        authorisation=code,
        source=path.name,
    )


def _numbers(entries: list[_Entry], region: str, problems: list[str]) -> list[CampaignNumber]:
    out: list[CampaignNumber] = []
    first_seen: dict[str, str] = {}
    for where, number, callee in entries:
        if not isinstance(number, str) or not number.strip():
            problems.append(
                f"{where}: number is missing"
                if number is None or isinstance(number, str)
                else f"{where}: number must be a quoted string, got {number!r}"
            )
            continue
        if not isinstance(callee, str):
            problems.append(f"{where} ({number}): name must be a string, got {callee!r}")
            continue
        if len(callee) > NAME_MAX:
            problems.append(f"{where} ({number}): name is longer than {NAME_MAX} characters")
            continue
        try:
            e164 = normalise(number.strip(), region=region)
        except InvalidNumberError:
            problems.append(f"{where}: {number!r} is not a valid phone number (region {region})")
            continue
        if e164 in first_seen:
            problems.append(f"{where}: {number!r} is {e164}, a duplicate of {first_seen[e164]}")
            continue
        first_seen[e164] = where
        out.append(CampaignNumber(number=number, e164=e164, name=callee.strip(), where=where))
    return out
