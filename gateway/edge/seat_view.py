"""A seat's current state as the gateway knows it: snapshots are the truth, events history.

Events carry the state of the moment they were queued and a snapshot is rendered when it
is sent, so a snapshot may be ahead of the events behind it (docs/protocol.md, "Seat
sending"): the view may step back for a moment and then forward again, and it always ends
where the seat is.
"""

from __future__ import annotations

from gateway.contract.payloads import Pending, SeatState, reason_name, state_name
from gateway.seatlink.codec import EventCode, State
from gateway.seatlink.messages import Event, Snapshot


class SeatView:
    def __init__(self, *, seat: str, gateway: str) -> None:
        self.seat = seat
        self.gateway = gateway
        self.board = ""
        self.boot = 0
        self.known = False  # a snapshot has arrived since the gateway started
        self.state = State.LOGGED_OUT
        self.reason = 0
        self.call = 0
        self.since = 0.0
        self.help = False
        self.off_hook = False
        self.hold_over_limit = False
        self.pending: tuple[State, int] | None = None
        self.misses = 0

    def snapshot(self, s: Snapshot, t: float) -> None:
        if not self.known or s.state != self.state or s.call != self.call:
            self.since = t - s.secs
        self.known = True
        self.state, self.reason, self.call = s.state, int(s.reason or 0), s.call
        self.help, self.off_hook = s.help, s.off_hook
        self.hold_over_limit = s.hold_over_limit
        self.pending = None if s.pending_state is None else (
            s.pending_state, int(s.pending_reason or 0))  # fmt: skip
        self.misses = s.misses

    def event(self, e: Event, t: float) -> None:
        code = e.code
        if code is EventCode.STATE:
            self.state, self.reason, self.call, self.since = e.state, int(e.reason or 0), e.call, t
            if e.state is not State.HOLD:
                self.hold_over_limit = False
            if e.state <= State.NOT_READY:
                self.pending = None  # a call's end applies what was pending
        elif code is EventCode.HELP:
            self.help = bool(e.a)
        elif code is EventCode.HOOK:
            self.off_hook = bool(e.a)
        elif code is EventCode.PENDING:
            self.pending = None if e.pending_state is None else (
                e.pending_state, int(e.pending_reason or 0))  # fmt: skip
        elif code is EventCode.RING_NO_ANSWER:
            self.misses = e.b
        elif code is EventCode.ANSWERED:
            self.misses = 0
        elif code is EventCode.HOLD_OVER_LIMIT:
            self.hold_over_limit = True

    def payload(self, t: float) -> SeatState | None:
        """The retained state message; None until the seat's first snapshot."""
        if not self.known:
            return None
        pending = None
        if self.pending is not None:
            pending = Pending(state=state_name(self.pending[0]),
                              reason=reason_name(self.pending[1]))  # fmt: skip
        return SeatState(
            seat=self.seat, gateway=self.gateway, board=self.board, boot=self.boot,
            state=state_name(self.state), reason=reason_name(self.reason),
            call=self.call or None, since=round(self.since, 3), help=self.help,
            off_hook=self.off_hook, hold_over_limit=self.hold_over_limit, pending=pending,
            misses=self.misses, t=round(t, 3),
        )  # fmt: skip
