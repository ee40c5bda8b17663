"""The simulator's outbound side: campaigns paced by Ready agents, manual dials, and the
compliance gate in front of every one of them.

Design requirements:
- No dial without a decision: automatic and manual dials alike go through
  `ComplianceGate.check`; the decision is stored (full number) and published (masked)
  before the call is placed, and a denial places nothing.
- Pacing per campaign from the Ready agents of its queue, the 30-day drop rate in the
  ledger, and the recent one (`Pacer`).
- Outcomes (answered, drop, no_answer) go into the ledger from the call events themselves,
  so the drop rate counts exactly what subscribers saw.
- The simulated callee answers with `answer_p` within `answer_rings`, else never (the PBX
  hangs up after the campaign's ring limit, 6 by default: seed 003).
- A campaign number is dialled once, across restarts: it is claimed in the store
  (`CampaignProgress`) before the gate is asked, and a restarted PBX goes on with the numbers
  not claimed (issue 19).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.contract.payloads import (
    CallEvent,
    CampaignHealth,
    ComplianceDecisionMessage,
    DialCommand,
)
from gateway.pbx.acd import Acd, AcdError
from gateway.pbx.campaign import Campaign, CampaignNumber, load_campaign
from gateway.pbx.compliance import (
    AuthorisationCodes,
    BlockedEntry,
    BlockedNumbers,
    ComplianceGate,
    Decision,
    DoNotCallList,
)
from gateway.pbx.dialer import DecisionStore, DialLedger, Outcome, decision_message, mask
from gateway.pbx.pacing import Pacer
from gateway.pbx.progress import CampaignProgress, ClaimState, count
from gateway.pbx.settings import Callees, Compliance, parse_code_hash

log = logging.getLogger("seatlink.pbx.dialer")


class Denied(AcdError):
    """The compliance gate refused the dial: nothing was placed."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"{decision.rule}: {decision.reason}")
        self.decision = decision


@dataclass
class _Run:
    campaign: Campaign
    pacer: Pacer
    pending: deque[CampaignNumber]  # not claimed yet, in the file's order
    dialled: int = 0  # claimed and not denied, this run and earlier ones
    denied: int = 0
    lines: set[int] = field(default_factory=set)  # calls still ringing
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=50))  # live: dropped?


def build_gate(c: Compliance, *, dnc: DoNotCallList,
               clock: Callable[[], datetime]) -> ComplianceGate:  # fmt: skip
    codes = AuthorisationCodes(hashes={
        klass: tuple(parse_code_hash(h) for h in hashes) for klass, hashes in c.codes.items()
    })  # fmt: skip
    return ComplianceGate(
        dnc=dnc,
        blocked=BlockedNumbers(entries=[BlockedEntry(n, cat) for n, cat in c.blocked.items()],
                               region=c.home_region),
        codes=codes, home_region=c.home_region, home_area_code=c.home_area_code,
        local_prefixes=c.local_prefixes, caller_ids=c.caller_ids, window=c.window, clock=clock,
    )  # fmt: skip


class Outbound:
    def __init__(self, *, pbx: str, acd: Acd, compliance: Compliance, callees: Callees,
                 campaigns: list[Path], store: Path, rng: random.Random,
                 publish: Callable[[ComplianceDecisionMessage], None],
                 target_drop_rate: float = 0.03,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self.pbx = pbx
        self.acd = acd
        self.callees = callees
        self.rng = rng
        self.region = compliance.home_region
        self.publish = publish
        self.wall = wall
        # Opened first: a store that cannot be read stops the start with the progress's
        # message, before any campaign could be dialled from the top again.
        self.progress = CampaignProgress(store)
        self.dnc = DoNotCallList(compliance.dnc, region=compliance.home_region)
        self.gate = build_gate(compliance, dnc=self.dnc, clock=wall)
        self.decisions = DecisionStore(store)
        self.ledger = DialLedger(store)
        self.runs: dict[str, _Run] = {}
        for path in campaigns:
            c = load_campaign(path, region=compliance.home_region)
            if c.queue not in acd.queues:
                raise ValueError(f"campaign {c.name} ({path}): no queue {c.queue!r}")
            if c.name in self.runs:
                raise ValueError(f"campaign {c.name} twice ({path})")
            if c.ring_limit > acd.outbound_rings:
                # Refused now, not at the first dial: that dial would fail after its number
                # was claimed, and each restart would lose one more number the same way.
                raise ValueError(
                    f"campaign {c.name} ({path}): ring_limit {c.ring_limit} is above "
                    f"outbound_rings {acd.outbound_rings} (seed 003)"
                )
            self.runs[c.name] = self._resume(c, Pacer(target_drop_rate, max_ratio=c.max_ratio))

    def _resume(self, c: Campaign, pacer: Pacer) -> _Run:
        """The campaign with the numbers its earlier runs claimed left out, and said so."""
        claims = self.progress.claims(c.name)
        by_state = count(claims.values())
        pending = deque(n for n in c.numbers if n.e164 not in claims)
        run = _Run(c, pacer, pending, dialled=by_state[ClaimState.DIALLING]
                   + by_state[ClaimState.DIALLED], denied=by_state[ClaimState.DENIED])  # fmt: skip
        if claims:
            taken = len(c.numbers) - len(pending)
            log.info("campaign %s: %d of %d numbers already taken in %s, not dialled again "
                     "(%d dialled, %d denied, %d claimed with no dial recorded); %d left",
                     c.name, taken, len(c.numbers), self.progress.path,
                     by_state[ClaimState.DIALLED], by_state[ClaimState.DENIED],
                     by_state[ClaimState.DIALLING], len(pending))  # fmt: skip
            if by_state[ClaimState.DIALLING]:
                # Write-ahead: the PBX stopped between the claim and the dial's record. The
                # call may or may not have been placed; it is not placed again either way.
                log.warning("campaign %s: %d numbers were claimed but no dial was recorded "
                            "(the PBX stopped in between); they are not dialled again",
                            c.name, by_state[ClaimState.DIALLING])  # fmt: skip
            if len(claims) > taken:
                log.info("campaign %s: %d claimed numbers are no longer in %s", c.name,
                         len(claims) - taken, c.source)  # fmt: skip
        else:
            log.info("campaign %s: no progress in %s, starting with its first number (%d)",
                     c.name, self.progress.path, len(c.numbers))  # fmt: skip
        return run

    def close(self) -> None:
        self.dnc.close()
        self.decisions.close()
        self.ledger.close()
        self.progress.close()

    # --- dialling -----------------------------------------------------------------------

    def _decide(self, number: str, *, caller_id: str | None, authorisation: str | None,
                campaign: str | None, seat: str | None) -> tuple[Decision, int]:  # fmt: skip
        decision = self.gate.check(number, caller_id=caller_id, authorisation=authorisation,
                                   when=self.wall())  # fmt: skip
        row = self.decisions.add(decision, campaign=campaign, seat=seat, call=None,
                                 caller_id=caller_id)  # fmt: skip
        return decision, row

    def _announce(self, decision: Decision, row: int, *, campaign: str | None, seat: str | None,
                  call: int | None, caller_id: str | None) -> None:  # fmt: skip
        self.publish(decision_message(decision, pbx=self.pbx, row_id=row, campaign=campaign,
                                      seat=seat, call=call, caller_id=caller_id,
                                      region=self.region))  # fmt: skip

    def _callee(self) -> tuple[int | None, float]:
        rings = None
        if self.rng.random() < self.callees.answer_p:
            lo, hi = self.callees.answer_rings
            rings = self.rng.randint(lo, hi)
        return rings, self.callees.talk.draw(self.rng)

    def manual(self, cmd: DialCommand, *, at: float) -> int:
        """An agent's dial: the call id, or Denied / AcdError with nothing placed."""
        queues = [q for q in self.acd.queues if cmd.seat in self.acd.queue_members(q)]
        if not self.acd.seat_known(cmd.seat) or not queues:
            raise AcdError(f"no seat {cmd.seat!r} in any queue")
        decision, row = self._decide(cmd.number, caller_id=cmd.caller_id,
                                     authorisation=cmd.authorisation, campaign=None,
                                     seat=cmd.seat)  # fmt: skip
        if not decision.allowed:
            self._announce(decision, row, campaign=None, seat=cmd.seat, call=None,
                           caller_id=cmd.caller_id)  # fmt: skip
            raise Denied(decision)
        rings, talk = self._callee()
        try:
            call = self.acd.dial(queue=queues[0], number=decision.number, seat=cmd.seat,
                                 answer_after_rings=rings, talk_s=talk, at=at)  # fmt: skip
        except AcdError:
            self._announce(decision, row, campaign=None, seat=cmd.seat, call=None,
                           caller_id=cmd.caller_id)  # fmt: skip
            raise
        self.decisions.attach_call(row, call)
        self._announce(decision, row, campaign=None, seat=cmd.seat, call=call,
                       caller_id=cmd.caller_id)  # fmt: skip
        return call

    def tick(self, *, at: float) -> None:
        """One pacing step for every campaign with numbers left."""
        wall = self.wall()
        for run in self.runs.values():
            c = run.campaign
            if not run.pending:
                continue
            drops, live = self.ledger.drop_counts(c.name, at=wall)
            rate = drops / live if live else 0.0
            recent = sum(run.recent) / len(run.recent) if run.recent else 0.0
            ready = self.acd.ready_seats(c.queue)
            lines = run.pacer.lines_to_dial(len(ready), len(run.lines), rate, recent,
                                            live_answers_30d=live)  # fmt: skip
            for _ in range(lines):
                if not run.pending:
                    break
                self._dial_next(run, at=at, reserve=run.pacer.reserve_agent)

    def _dial_next(self, run: _Run, *, at: float, reserve: bool) -> None:
        c = run.campaign
        entry = run.pending.popleft()
        # Write-ahead, before the gate and the dial: from here on this number is never
        # dialled again by this campaign, even if the PBX stops on the next line.
        if not self.progress.claim(c.name, entry.e164, at=self.wall()):
            # Only another writer of the same store (a second PBX running this campaign)
            # gets here: its claim stands, whatever became of it.
            log.warning("campaign %s: %s (%s) was claimed meanwhile by another writer of %s; "
                        "not dialled", c.name, entry.where, mask(entry.e164),
                        self.progress.path)  # fmt: skip
            return
        decision, row = self._decide(entry.e164, caller_id=c.caller_id,
                                     authorisation=c.authorisation, campaign=c.name,
                                     seat=None)  # fmt: skip
        if not decision.allowed:
            run.denied += 1
            self.progress.denied(c.name, entry.e164)
            self.ledger.record(c.name, -row, Outcome.DENIED, decision.at)
            self._announce(decision, row, campaign=c.name, seat=None, call=None,
                           caller_id=c.caller_id)  # fmt: skip
            return
        seat = None
        if reserve:  # progressive: the agent is kept for this line, an answer never drops
            ready = self.acd.ready_seats(c.queue)
            seat = ready[0] if ready else None
        rings, talk = self._callee()
        call = self.acd.dial(queue=c.queue, number=decision.number, campaign=c.name,
                             seat=seat, ring_limit=c.ring_limit, answer_after_rings=rings,
                             talk_s=talk, at=at)  # fmt: skip
        run.dialled += 1
        run.lines.add(call)
        self.progress.dialled(c.name, entry.e164, call)
        self.decisions.attach_call(row, call)
        self._announce(decision, row, campaign=c.name, seat=seat, call=call,
                       caller_id=c.caller_id)  # fmt: skip

    # --- outcomes -----------------------------------------------------------------------

    def on_call_event(self, event: CallEvent) -> None:
        if event.campaign is None or event.campaign not in self.runs:
            return
        run = self.runs[event.campaign]
        outcome = {"answer": Outcome.ANSWERED, "drop": Outcome.DROP,
                   "no_answer": Outcome.NO_ANSWER}.get(event.type)  # fmt: skip
        if outcome is None:
            return
        run.lines.discard(event.call)
        if outcome is not Outcome.NO_ANSWER:
            run.recent.append(outcome is Outcome.DROP)
        self.ledger.record(event.campaign, event.call, outcome, self.wall())

    def add_dnc(self, number: str) -> str:
        """A Do-Not-Call request: in the gate's own list, so the next check sees it."""
        return self.dnc.add(number, at=self.wall())

    def health(self) -> dict[str, CampaignHealth]:
        wall = self.wall()
        out = {}
        for name, run in self.runs.items():
            counts = self.ledger.counts(name, at=wall)
            out[name] = CampaignHealth(
                dialled=run.dialled, denied=run.denied, answered=counts["answered"],
                no_answer=counts["no_answer"], dropped=counts["drop"],
                drop_rate_30d=round(self.ledger.drop_rate(name, at=wall), 5),
                ratio=run.pacer.ratio, remaining=len(run.pending))
        return out
