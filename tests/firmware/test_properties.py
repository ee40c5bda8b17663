"""Random use of a seat never breaks it: hypothesis drives a bundled seat with random time
steps, input toggles, valid host commands and garbage bytes, and after every loop pass
checks that the light agrees with the seat's state (light.py's table, overlays only in
their windows) and after every step that the loop caught no exception (tx.L[ERR], counted
by loop.run's `except Exception`) and the seat's state and queue are consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from seat_helpers import (
    IN_HANGER,
    IN_READY,
    L_COUNT,
    L_ERR,
    RING,
    TALK,
    Seat,
    decode,
    encode,
    light_ok,
    state_colour,
)

from gateway.firmware_host import FakeBoard

ST, RS, CALL, T, OVER, HELPING, PST, MSG = 0, 1, 2, 3, 10, 8, 14, 18
L_NEXT, L_UP = 2, 17
V_HOLD_REMIND_S, V_HEARTBEAT_S = 6, 10
QUEUE_SIZE, FRAME_MAX = 10, 96

CALLS = st.sampled_from([1, 7, 4711, 99_999_999])
# key/value pairs around every setting's range (keys 0 and 15 do not exist)
SETTING = st.tuples(st.integers(0, 15), st.sampled_from([0, 1, 2, 5, 30, 300, 1000, 5000, 86_400]))


def host_command() -> st.SearchStrategy[tuple[str, tuple[int, ...]]]:
    """(kind, fields) of a well-formed host command; values may still be refused."""
    return st.one_of(
        st.tuples(st.just("O"), st.one_of(
            st.tuples(CALLS),
            st.tuples(CALLS, st.integers(0, 11), st.sampled_from([500, 1000, 2000, 10_001])),
        )),
        st.tuples(st.sampled_from("CKL"), st.tuples(CALLS)),
        st.tuples(st.just("P"), st.tuples(CALLS, st.integers(0, 1))),
        st.tuples(st.just("T"), st.tuples(st.integers(0, 3), st.integers(0, 11))),
        st.tuples(st.just("G"), st.lists(SETTING, min_size=1, max_size=3).map(
            lambda kv: tuple(x for pair in kv for x in pair))),
        st.tuples(st.just("U"), st.tuples(st.integers(0, 1))),
        st.tuples(st.just("N"), st.tuples(st.integers(0, 2))),  # 2: out of range
        st.tuples(st.just("Q"), st.just(())),
        st.tuples(st.just("Z"), st.tuples(st.integers(0, 24_230))),  # never the real magic
        st.tuples(st.just("J"), st.tuples(st.integers(0, 9))),  # unknown command
    )  # fmt: skip


def check_light(board: FakeBoard, seat: Seat) -> None:
    """Runs at the end of every loop pass (board.sleep), in the loop thread."""
    S, L, V = seat.sim.S, seat.sim.L, seat.sim.V
    rgb = board.current_light
    assert rgb is not None
    ph = (board.ms - seat.sim.start_ms) % 2000
    base = state_colour(S[ST], S[T], over=bool(S[OVER]), remind_ms=V[V_HOLD_REMIND_S] * 1000)
    up = L[L_UP] < 3000 * V[V_HEARTBEAT_S]
    ok = light_ok(rgb, base=base, ph=ph, pending=S[PST] >= 0, helping=bool(S[HELPING]), up=up,
                  message=S[MSG])  # fmt: skip
    assert ok, f"light {rgb} at {board.ms} ms (ph {ph}) in state {S[:4]}, base {base}, up {up}"


class RandomSeat(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.seat = Seat(bundled=True).start()
        self.seat.auto_ack = False
        self.seat.board.pass_hook = lambda board: check_light(board, self.seat)
        self.checked = 0

    @initialize(login=st.booleans(), headset_on=st.booleans())
    def boot(self, login: bool, headset_on: bool) -> None:
        if headset_on:  # worn: lifted off its hanger
            self.seat.board.release(IN_HANGER)
            self.seat.sim.advance(50)
        if login:
            self.agent_taps_ready(50, 50)

    def teardown(self) -> None:
        self.seat.close()

    @rule(ms=st.one_of(st.integers(0, 300), st.sampled_from([1000, 2500, 5000, 16_000, 31_000])))
    def advance(self, ms: int) -> None:
        self.seat.sim.advance(ms)

    @rule(bits=st.integers(1, 31), hold=st.sampled_from([0, 10, 40, 400, 3100]))
    def toggle_inputs(self, bits: int, hold: int) -> None:
        self.seat.board.levels ^= bits
        self.seat.sim.advance(hold)

    @rule(hold=st.sampled_from([50, 50, 500, 3100]), gap=st.sampled_from([50, 400, 2100]))
    def agent_taps_ready(self, hold: int, gap: int) -> None:
        self.seat.board.press(IN_READY)
        self.seat.sim.advance(hold)
        self.seat.board.release(IN_READY)
        self.seat.sim.advance(gap)

    @rule(ms=st.sampled_from([50, 1000, 12_000]))
    def agent_toggles_hook(self, ms: int) -> None:
        self.seat.board.levels ^= IN_HANGER
        self.seat.sim.advance(ms)

    @rule(cmd=host_command())
    def host_sends(self, cmd: tuple[str, tuple[int, ...]]) -> None:
        kind, fields = cmd
        self.seat.send(kind, *fields, ms=30)

    @rule(cmd=host_command(), back=st.integers(0, 3))
    def host_resends_or_skips(self, cmd: tuple[str, tuple[int, ...]], back: int) -> None:
        # a duplicate of a recent sequence number, or one ahead (a lost frame)
        seq = max(1, self.seat.host_seq - back) if back < 3 else self.seat.host_seq + 2
        kind, fields = cmd
        self.seat.send(kind, *fields, seq=seq, ms=30)

    @rule(call=CALLS, short=st.booleans())
    def host_offers_a_call(self, call: int, short: bool) -> None:
        self.seat.send("O", call, *((2, 1000) if short else ()), ms=30)

    @rule(kv=st.sampled_from([(4, 0), (4, 3), (5, 1), (5, 0), (3, 2), (7, 5), (8, 0), (8, 2),
                              (9, 5), (10, 1), (11, 0), (12, 300), (13, 1000),
                              (14, 0), (14, 3000)]))
    def host_sets_a_setting_in_range(self, kv: tuple[int, int]) -> None:
        self.seat.send("G", *kv, ms=30)

    @rule(cmd=st.sampled_from([("K",), ("P", 1), ("P", 0), ("L",), ("C",)]))
    def host_acts_on_current_call(self, cmd: tuple[int | str, ...]) -> None:
        # commands for the call the seat has, so calls get answered, held and released
        kind, *fields = cmd
        self.seat.send(str(kind), self.seat.sim.S[CALL] or 1, *fields, ms=30)

    @precondition(lambda self: self.seat.sim.S[ST] == TALK)
    @rule(ms=st.sampled_from([16_000, 31_000]))
    def host_holds_the_call_long(self, ms: int) -> None:
        self.seat.send("P", self.seat.sim.S[CALL], 1, ms=ms)

    @rule()
    def host_acks_everything(self) -> None:
        self.seat.ack_all()
        self.seat.sim.advance(20)

    @rule()
    def host_pings(self) -> None:
        self.seat.board.feed(encode(0, "I"))
        self.seat.sim.advance(10)

    @rule(junk=st.binary(max_size=80))
    def garbage(self, junk: bytes) -> None:
        # newline-terminated, so the host's next frame still stands on its own line
        self.seat.board.feed(junk + b"\n")
        self.seat.sim.advance(20)

    @precondition(lambda self: self.seat.sim.finished is False)
    @invariant()
    def no_exception_caught_by_the_loop(self) -> None:
        assert self.seat.sim.L[L_ERR] == 0

    @invariant()
    def state_is_consistent(self) -> None:
        S, L = self.seat.sim.S, self.seat.sim.L
        assert 0 <= S[ST] <= 6 and 0 <= S[RS] <= 10
        assert (S[ST] >= RING) == (S[CALL] > 0), S[:4]
        assert 0 <= L[L_NEXT] <= L[L_COUNT] <= QUEUE_SIZE

    @invariant()
    def every_frame_is_well_formed(self) -> None:
        frames = self.seat.board.frames
        for t, data in frames[self.checked :]:
            assert len(data) <= FRAME_MAX
            decode(data, ms=t)
        self.checked = len(frames)


RandomSeat.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRandomSeat = RandomSeat.TestCase
