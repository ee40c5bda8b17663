"""Scripted traffic for the simulated PBX: a TOML file of calls, each with its arrival time
and what the caller and the agent do (docs/pbx.md, "Scenario files").

```toml
[[call]]
at_s = 0            # seconds after the PBX starts
queue = "support"
number = "+862161234567"
patience_s = 60     # the caller hangs up after waiting this long (omit: waits forever)
talk_s = 90         # the caller hangs up this long after the answer (omit: the agent ends it)
  [[call.action]]
  after_s = 10      # after the answer
  do = "transfer"   # hold, unhold, transfer, complete, hangup
  kind = "blind"
  seat = "s102"
  note = "wants to change the delivery address"
```

A file with any mistake is refused as a whole, with every mistake named by its call number:
a half-loaded script would run traffic nobody planned.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.pbx.calls import Action


class ScenarioError(ValueError):
    pass


class _ActionModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after_s: Annotated[float, Field(ge=0)]
    do: Literal["hold", "unhold", "transfer", "complete", "hangup"]
    kind: Literal["blind", "consultative"] | None = None
    seat: str | None = None
    queue: str | None = None
    note: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _transfer(self) -> _ActionModel:
        if self.do == "transfer":
            if self.kind is None:
                raise ValueError("a transfer needs kind (blind or consultative)")
            if (self.seat is None) == (self.queue is None):
                raise ValueError("a transfer needs exactly one of seat and queue")
        elif self.kind or self.seat or self.queue or self.note:
            raise ValueError(f"{self.do} takes no kind, seat, queue or note")
        return self


class _CallModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at_s: Annotated[float, Field(ge=0)]
    queue: str
    number: Annotated[str, Field(max_length=40)] | None = None
    patience_s: Annotated[float, Field(gt=0)] | None = None
    talk_s: Annotated[float, Field(ge=0)] | None = None
    action: list[_ActionModel] = []


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call: list[_CallModel] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    at_s: float
    queue: str
    number: str | None
    patience_s: float | None
    talk_s: float | None
    actions: tuple[Action, ...]


def load_scenario(path: Path, *, queues: Iterable[str]) -> list[ScriptedCall]:
    """The calls of `path`, in arrival order; ScenarioError naming every mistake."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"scenario {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario {path}: not TOML: {exc}") from None
    try:
        model = _File.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        said = "; ".join(_where(err["loc"]) + err["msg"] for err in errors)
        raise ScenarioError(f"scenario {path}: {said}") from None
    known = set(queues)
    problems: list[str] = []
    for i, c in enumerate(model.call, 1):
        if c.queue not in known:
            problems.append(f"call {i}: no queue {c.queue!r} (known: {', '.join(sorted(known))})")
        for j, a in enumerate(c.action, 1):
            if a.queue is not None and a.queue not in known:
                problems.append(f"call {i} action {j}: no queue {a.queue!r}")
    if problems:
        raise ScenarioError(f"scenario {path}: " + "; ".join(problems))
    calls = [
        ScriptedCall(c.at_s, c.queue, c.number, c.patience_s, c.talk_s,
                     tuple(Action(a.after_s, a.do, a.kind, a.seat, a.queue, a.note)
                           for a in c.action))
        for c in model.call
    ]  # fmt: skip
    return sorted(calls, key=lambda c: c.at_s)


def _where(loc: tuple[int | str, ...]) -> str:
    # ("call", 0, "action", 1, "do") -> "call 1 action 2 do: "
    parts = []
    for item in loc:
        parts.append(str(item + 1) if isinstance(item, int) else str(item))
    return " ".join(parts) + ": " if parts else ""
