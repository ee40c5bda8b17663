"""How many lines the outbound dialer starts now: a ratio of lines per Ready agent, paced by
the abandoned-call ("drop") rate.

A drop is a callee who answered and found no agent free within 2 seconds. The limit the pacer
keeps under is the US Telemarketing Sales Rule's safe harbour: at most 3 % of live answers
dropped, per campaign, over 30 days (`DialLedger.drop_rate`). The seeds give no such limit
(seed 000 cites the TSR only for misleading statements): 3 % is a product default, hence
`target_drop_rate` is a parameter.
"""

from __future__ import annotations

import math
from fractions import Fraction

TARGET_DROP_RATE = 0.03


def _rate(value: float, what: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be a rate in 0..1, got {value!r}")
    return float(value)


class Pacer:
    """A deterministic step controller for the dial ratio (lines per Ready agent).

    Each `observe(drop_rate_30d, recent)` takes one step. With `caution = target * (1 -
    margin)` (1.5 % by default), the first case that holds decides:

    1. 30-day rate >= target: the safe harbour is used up. If the ratio is above
       `min_ratio`, it goes straight to `min_ratio`; if it already is there, the pacer turns
       `reserve_agent` on: progressive dialing where the caller dials a line only for an agent
       it has reserved for that call, so an answer always finds an agent.
    2. recent rate >= target: a burst of drops; the ratio goes straight to `min_ratio`
       (the 30-day rate is slow to move, the recent one warns first).
    3. either rate >= caution: closing in on the target; the ratio steps down by `step`,
       never below `min_ratio`.
    4. both rates < caution: if in reserve mode, leave it (the ratio stays at `min_ratio`
       for this step); otherwise the ratio steps up by `step`, never above `max_ratio`.

    Reserve mode is left only in case 4, so between caution and target the pacer stays where
    it is in that respect (hysteresis: no flapping around the target). The ratio starts at
    `min_ratio`, not reserved. Even at ratio 1.0 a drop can happen (an agent who was Ready
    goes Not Ready while the line rings), which is why reserve mode exists.

    `lines_to_dial` observes and then answers `max(0, floor(ready_agents * ratio) -
    lines_in_progress)`: call it once per pacing tick, since every call is one step.
    `lines_in_progress` counts every line not yet settled: ringing, and answered but still
    waiting (up to the 2 seconds) for an agent. In reserve mode at most one line per Ready
    agent. Given `live_answers_30d` (answered + drops in the 30-day window,
    `DialLedger.drop_counts`), it also caps the lines so that the ones beyond the Ready
    agents never exceed `affordable_drops`: even if every one of them dropped, the 30-day rate
    would stay below the target. That cap is what keeps a new campaign (few answers, so one
    drop is already over 3 %) progressive until its answers can absorb a drop; pass it.
    """

    def __init__(
        self,
        target_drop_rate: float = TARGET_DROP_RATE,
        *,
        min_ratio: float = 1.0,
        max_ratio: float = 3.0,
        step: float = 0.1,
        margin: float = 0.5,
    ) -> None:
        if not (math.isfinite(target_drop_rate) and 0.0 < target_drop_rate < 1.0):
            raise ValueError(f"target_drop_rate must be in (0, 1), got {target_drop_rate!r}")
        if not (math.isfinite(min_ratio) and math.isfinite(max_ratio)):
            raise ValueError("min_ratio and max_ratio must be finite")
        if not 1.0 <= min_ratio <= max_ratio:
            raise ValueError(
                f"need 1.0 <= min_ratio <= max_ratio, got min {min_ratio}, max {max_ratio}"
            )
        if not (math.isfinite(step) and step > 0.0):
            raise ValueError(f"step must be positive, got {step!r}")
        if not (math.isfinite(margin) and 0.0 <= margin < 1.0):
            raise ValueError(f"margin must be in [0, 1), got {margin!r}")
        self.target = float(target_drop_rate)
        self.caution = self.target * (1.0 - margin)
        self.min_ratio = float(min_ratio)
        self.max_ratio = float(max_ratio)
        self.step = float(step)
        self._ratio = self.min_ratio
        self._reserve = False

    @property
    def ratio(self) -> float:
        """Lines per Ready agent, as paced now."""
        return self._ratio

    @property
    def reserve_agent(self) -> bool:
        """True: dial a line only for an agent reserved for it (progressive, no drops)."""
        return self._reserve

    def observe(self, drop_rate_30d: float, recent: float) -> None:
        """One pacing step from the 30-day and the recent drop rate (see the class doc)."""
        rate_30d = _rate(drop_rate_30d, "drop_rate_30d")
        rate_recent = _rate(recent, "recent drop rate")
        if rate_30d >= self.target:
            if self._ratio > self.min_ratio:
                self._ratio = self.min_ratio
            else:
                self._reserve = True
        elif rate_recent >= self.target:
            self._ratio = self.min_ratio
        elif max(rate_30d, rate_recent) >= self.caution:
            self._set(self._ratio - self.step)
        elif self._reserve:
            self._reserve = False
        else:
            self._set(self._ratio + self.step)

    def lines_to_dial(
        self,
        ready_agents: int,
        lines_in_progress: int,
        drop_rate_30d: float,
        recent_drop_rate: float,
        *,
        live_answers_30d: int | None = None,
    ) -> int:
        """Observe the rates, then how many more lines to start now (never negative)."""
        if ready_agents < 0 or lines_in_progress < 0:
            raise ValueError(
                f"counts cannot be negative: ready_agents {ready_agents}, "
                f"lines_in_progress {lines_in_progress}"
            )
        if live_answers_30d is not None and live_answers_30d < 0:
            raise ValueError(f"live_answers_30d cannot be negative, got {live_answers_30d}")
        self.observe(drop_rate_30d, recent_drop_rate)
        if ready_agents == 0:
            return 0
        # The small epsilon keeps 4 * 1.5 at 6 whatever the float rounding of the steps.
        lines = math.floor(ready_agents * self._ratio + 1e-9)
        if self._reserve:
            lines = min(lines, ready_agents)  # one line per reserved agent
        if live_answers_30d is not None:
            lines = min(
                lines, ready_agents + self.affordable_drops(drop_rate_30d, live_answers_30d)
            )
        return max(0, lines - lines_in_progress)

    def affordable_drops(self, drop_rate_30d: float, live_answers_30d: int) -> int:
        """How many more drops the 30-day window can take and stay below the target.

        The largest k with (drops + k) / (live + k) < target, 0 when none: with d drops in
        n live answers that is the largest integer below (target * n - d) / (1 - target)."""
        rate = _rate(drop_rate_30d, "drop_rate_30d")
        drops = round(rate * live_answers_30d)
        # Exact arithmetic: with floats, 0.03 * 97 / 0.97 is just above 3 and would allow 3.
        target = Fraction(repr(self.target))
        room = (target * live_answers_30d - drops) / (1 - target)
        return max(0, math.ceil(room) - 1)

    def _set(self, ratio: float) -> None:
        # Rounded so that repeated steps of 0.1 land on 1.1, 1.2, ... exactly as printed.
        self._ratio = round(min(self.max_ratio, max(self.min_ratio, ratio)), 9)
