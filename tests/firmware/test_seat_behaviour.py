"""Seat firmware behaviour under CPython on a fake clock, asserted on the frames the seat
sends and on its light. Every test runs the micro:bit bundle and the readable source."""

from __future__ import annotations

from seat_helpers import (
    ACW,
    AWAY,
    BTN,
    DEFAULTS,
    EV_ANSWER,
    EV_HOLDMAX,
    EV_HOOK,
    EV_PEND,
    EV_RELEASE,
    EV_RONA,
    EV_STATE,
    HK,
    HOLD,
    HOST,
    IN_HELP,
    IN_READY,
    IN_WRAP,
    K_MISS_LIMIT,
    K_RING_LIMIT,
    K_RING_MS,
    L_COUNT,
    L_DROP,
    L_ERR,
    NOANS,
    NR,
    OFF,
    OUT,
    PASS_MS,
    READY,
    RING,
    TALK,
    TMR,
    B,
    G,
    R,
    Seat,
    W,
    Y,
    encode,
    state_colour,
    state_events,
)

from gateway.firmware_host import FakeBoard

CALL = 4711


def offer(seat: Seat, call: int = CALL, *fields: int) -> int:
    """Offer a call; the fake ms at which the seat took it (its ack of the O frame)."""
    seq = seat.send("O", call, *fields)
    acks = [f for f in seat.of_kind("A") if f.ints == (seq,)]
    assert acks, "the seat did not ack the offer"
    assert seat.state == RING
    return acks[0].ms


def answered_call(seat: Seat) -> None:
    seat.login()
    offer(seat)
    seat.hook(True)
    assert seat.state == TALK


# --- boot and login -----------------------------------------------------------------------


def test_boot_sends_hello_then_snapshot_and_counts_boots(code: str) -> None:
    board = FakeBoard(name=b"microbit", uid=bytes.fromhex("0123456789abcdef"))
    first = Seat(bundled=code == "bundled", board=board).start()
    try:
        first.auto_ack = False
        first.advance(10)
        hello, snap = first.frames()[:2]
        assert (hello.seq, hello.kind) == (1, "B")
        # protocol, boot count, firmware, board id (hex), board name
        assert hello.fields == ("1", "1", "0.1.0", "0123456789ABCDEF", "microbit")
        assert (snap.seq, snap.kind) == (2, "S")
        # state reason call secs flags pending-state pending-reason misses dropped, and
        # gone-from 0: a boot's snapshot stands for no dropped frames
        assert snap.ints == (OUT, 0, 0, 0, 0, -1, 0, 0, 0, 0)
        assert first.light_at(0) == OFF
        first.sim.stop()
        # power cycle: a new board on the same store, so the boot counter survives
        again = Seat(bundled=code == "bundled", board=FakeBoard(store_dir=board.store_dir)).start()
        try:
            assert again.frames()[0].fields[1] == "2"
            assert again.heartbeat().fields[8] == "2"  # the heartbeat names the boot too
        finally:
            again.close()
    finally:
        first.close()


def test_a_board_with_no_boot_count_kept_starts_from_its_own(code: str) -> None:
    """A board whose filesystem a whole image erased must not say boot 1 again: a host that
    knew boot 1 would take the new boot's hello, and every frame after it, for resends."""
    board = FakeBoard(boot0=4_321_000)
    first = Seat(bundled=code == "bundled", board=board).start()
    try:
        assert first.frames()[0].fields[1] == "4321001"
        first.sim.stop()
        with open(board.STORE + "boot") as kept:
            assert kept.read() == "4321001"
        # a count kept wins over the board's start; a damaged one does not
        again = Seat(bundled=code == "bundled",
                     board=FakeBoard(store_dir=board.store_dir, boot0=7)).start()  # fmt: skip
        try:
            assert again.frames()[0].fields[1] == "4321002"
            again.sim.stop()
            with open(board.STORE + "boot", "w") as damaged:
                damaged.write("")  # power lost as the count was written
            third = Seat(bundled=code == "bundled",
                         board=FakeBoard(store_dir=board.store_dir, boot0=99)).start()  # fmt: skip
            try:
                assert third.frames()[0].fields[1] == "100"
            finally:
                third.close()
        finally:
            again.close()
    finally:
        first.close()


def test_unacked_boot_frames_are_resent_with_backoff(code: str) -> None:
    s = Seat(bundled=code == "bundled").start()
    try:
        s.auto_ack = False
        s.advance(3000)
        hello_times = [f.ms for f in s.of_kind("B")]
        # first sent at 0, resent after 300 ms, then 600, 1200 ms... (go-back-N, doubling)
        assert hello_times[:3] == [0, 310, 920]
        assert s.sim.L[L_COUNT] == 2
    finally:
        s.close()


def test_ready_press_logs_in_on_release(seat: Seat) -> None:
    seat.press(IN_READY)
    assert seat.state == OUT  # a press alone does nothing: release decides (long = logout)
    t = seat.now
    seat.release(IN_READY)
    assert state_events(seat.events(since=t)) == [(READY, 0, BTN)]
    assert seat.light_at(seat.now) == G


def test_ready_presses_within_step_time_step_through_not_ready_reasons(seat: Seat) -> None:
    seat.login()
    t = seat.now
    for _ in range(7):
        seat.tap(IN_READY, hold_ms=50, after_ms=400)
    reasons = [(st, rs) for st, rs, _ in state_events(seat.events(since=t))]
    # Ready -> NR break(1), then each press within 2 s steps 2..6 and wraps to 1
    assert reasons == [(NR, 1), (NR, 2), (NR, 3), (NR, 4), (NR, 5), (NR, 6), (NR, 1)]
    assert seat.light_at(seat.now) == B
    # a press after the step time is over goes back to Ready
    seat.advance(2000)
    t = seat.now
    seat.tap(IN_READY)
    assert state_events(seat.events(since=t)) == [(READY, 0, BTN)]
    assert seat.light_at(seat.now) == G


def test_long_ready_press_logs_out_after_three_seconds(seat: Seat) -> None:
    seat.login()
    seat.board.press(IN_READY)
    t = seat.now
    seat.advance(2990 - PASS_MS)
    assert seat.state == READY
    seat.advance(2 * PASS_MS + 5)
    assert seat.state == OUT
    ev = [f for f in seat.events(since=t) if f.code == EV_STATE]
    assert [(f.ints[1], f.ints[4]) for f in ev] == [(OUT, BTN)]
    # detected on the first pass after the press, logged out 3 s later give or take a pass
    assert abs(ev[0].ms - (t + PASS_MS + 3000)) <= PASS_MS
    # releasing after a long press does not log back in
    seat.release(IN_READY, 500)
    assert seat.state == OUT
    assert seat.light_at(seat.now) == OFF


# --- a call -------------------------------------------------------------------------------


def test_offer_rings_off_hook_answers_on_hook_releases_then_acw_then_ready(seat: Seat) -> None:
    seat.login()
    t0 = seat.now
    rang = offer(seat)
    seat.advance(2000)
    # ringing: red, 500 ms on / 500 ms off from the offer
    lights = seat.lights_between(rang + 10, rang + 1990, 10)
    assert {c for _, c in lights} <= {R, OFF, W}
    assert seat.light_at(rang + 250) == R and seat.light_at(rang + 750) == OFF
    seat.hook(True)
    assert seat.state == TALK and seat.light_at(seat.now) == R
    seat.advance(5000)
    seat.hook(False)
    assert seat.state == ACW and seat.light_at(seat.now) == Y
    released = seat.now
    seat.advance(60_000 - 200)
    assert seat.state == ACW
    seat.advance(400)
    assert seat.state == READY and seat.light_at(seat.now) == G
    ev = seat.events(since=t0)
    codes = [(f.code, f.ints[1]) for f in ev]
    assert codes == [
        (EV_STATE, RING),
        (EV_HOOK, RING),
        (EV_ANSWER, RING),
        (EV_STATE, TALK),
        (EV_HOOK, TALK),
        (EV_RELEASE, TALK),
        (EV_STATE, ACW),
        (EV_STATE, READY),
    ]
    assert all(f.ints[3] == CALL for f in ev[:-1])  # the call id travels with each event
    assert ev[-1].ints[3] == 0  # back in Ready the call is gone
    assert state_events(ev) == [(RING, 0, HOST), (TALK, 0, HK), (ACW, 0, HK), (READY, 0, TMR)]
    answer = ev[2]
    assert 2000 <= answer.ints[4] <= 2100  # ring time in ms
    acw_end = ev[-1].ms
    assert abs(acw_end - (released - 50 + 60_000)) <= 2 * PASS_MS


def test_wrap_button_ends_acw_early(seat: Seat) -> None:
    answered_call(seat)
    seat.hook(False)
    assert seat.state == ACW
    seat.advance(5000)
    t = seat.now
    seat.tap(IN_WRAP)
    assert state_events(seat.events(since=t)) == [(READY, 0, BTN)]


def test_wrap_button_outside_acw_does_nothing(seat: Seat) -> None:
    seat.login()
    t = seat.now
    seat.tap(IN_WRAP)
    assert seat.events(since=t) == [] and seat.state == READY


def test_ring_timeout_with_silent_link_goes_not_ready_no_answer_and_reports_rona(
    seat: Seat,
) -> None:
    seat.login()
    seat.advance(1000)
    rang = offer(seat)
    # from here the host says nothing at all: no acks, no pings
    seat.go_silent()
    host_bytes = seat.board.rx_pending
    assert host_bytes == 0
    seat.advance(rang + 15_000 - 2 * PASS_MS - seat.now)
    assert seat.state == RING
    seat.advance(4 * PASS_MS)
    assert seat.state == NR and seat.reason == NOANS
    seat.advance(500)
    rona = [f for f in seat.events(since=rang) if f.code == EV_RONA]
    assert len(rona) == 1
    # 3 rings x 5 s: the event leaves the seat 15 s after the offer, give or take one pass
    assert abs(rona[0].ms - (rang + 15_000)) <= PASS_MS, rona[0].ms - rang
    code, st, rs, call, ring_ms, misses = rona[0].ints
    assert (st, call, misses) == (RING, CALL, 1)
    assert abs(ring_ms - 15_000) <= PASS_MS
    assert state_events(seat.events(since=rang))[-1] == (NR, NOANS, TMR)
    assert seat.light_at(seat.now) == B


def test_offer_with_its_own_ring_limit_and_ring_time(seat: Seat) -> None:
    seat.login()
    rang = offer(seat, CALL, 2, 1000)
    seat.go_silent()
    seat.advance(2500)
    rona = [f for f in seat.events(since=rang) if f.code == EV_RONA]
    assert len(rona) == 1 and abs(rona[0].ms - (rang + 2000)) <= PASS_MS


def test_miss_limit_two_first_miss_returns_to_ready_second_goes_not_ready(seat: Seat) -> None:
    seat.login()
    seat.send("G", K_MISS_LIMIT, 2)
    assert not seat.of_kind("X")
    rang = offer(seat)
    seat.advance(15_100)
    assert seat.state == READY
    assert [f.ints[5] for f in seat.events(since=rang) if f.code == EV_RONA] == [1]
    assert state_events(seat.events(since=rang))[-1] == (READY, 0, TMR)
    rang = offer(seat)
    seat.advance(15_100)
    assert (seat.state, seat.reason) == (NR, NOANS)
    assert [f.ints[5] for f in seat.events(since=rang) if f.code == EV_RONA] == [2]


def test_answer_resets_the_miss_count(seat: Seat) -> None:
    seat.login()
    seat.send("G", K_MISS_LIMIT, 2)
    offer(seat)
    seat.advance(15_100)
    assert seat.sim.S[7] == 1
    offer(seat)
    seat.hook(True)
    assert seat.state == TALK and seat.sim.S[7] == 0


def test_host_cancel_stops_ringing(seat: Seat) -> None:
    seat.login()
    rang = offer(seat)
    seat.send("C", CALL)
    assert seat.state == READY
    assert state_events(seat.events(since=rang))[-1] == (READY, 0, HOST)


# --- hold ---------------------------------------------------------------------------------


def test_hold_over_thirty_seconds_reports_holdmax_and_shows_over_limit_pattern(seat: Seat) -> None:
    answered_call(seat)
    seat.send("P", CALL, 1)
    assert seat.state == HOLD
    held = seat.events()[-1]
    assert held.ints[:2] == (EV_STATE, HOLD)
    t0 = held.ms
    seat.advance(29_000)
    assert not [f for f in seat.events(since=t0) if f.code == EV_HOLDMAX]
    seat.advance(2_000)
    over = [f for f in seat.events(since=t0) if f.code == EV_HOLDMAX]
    assert len(over) == 1 and abs(over[0].ms - (t0 + 30_000)) <= PASS_MS
    assert abs(over[0].ints[4] - 30_000) <= PASS_MS
    seat.advance(1000)
    entered = seat.now - seat.sim.S[3]  # S[T]: ms in this state, as the light uses it
    assert abs(entered - t0) <= PASS_MS
    # hold: yellow blink; the 15 s reminder: white blink for 1 s; over 30 s: red/yellow
    for t_in, want in [(1_100, Y), (1_400, OFF), (15_050, W), (15_150, OFF), (16_400, OFF)]:
        assert seat.light_at(entered + t_in) == want, t_in
    colours = {c for _, c in seat.lights_between(entered + 30_010, entered + 31_990, 5)}
    assert colours == {R, Y}
    for t_in in range(30_010, 31_990, 5):
        assert seat.light_at(entered + t_in) == state_colour(HOLD, t_in, over=True), t_in
    # back to talk clears the over-limit flag
    seat.send("P", CALL, 0)
    assert seat.state == TALK and seat.light_at(seat.now) == R


# --- timers without a call ---------------------------------------------------------------


def test_ready_with_hook_on_for_ten_seconds_goes_not_ready_away(seat: Seat) -> None:
    seat.login()
    t = seat.now
    seat.advance(9_900)
    assert seat.state == READY
    seat.advance(200)
    assert (seat.state, seat.reason) == (NR, AWAY)
    ev = state_events(seat.events(since=t))
    assert [(st, rs) for st, rs, _ in ev] == [(NR, AWAY)]
    assert seat.light_at(seat.now) == B


def test_ready_off_hook_never_goes_away(seat: Seat) -> None:
    seat.hook(True)
    seat.login()
    seat.advance(30_000)
    assert seat.state == READY


def test_idle_thirty_minutes_in_not_ready_logs_out(seat: Seat) -> None:
    seat.login()
    seat.tap(IN_READY)
    assert seat.state == NR
    t = seat.now
    seat.advance(30 * 60_000 - 500)
    assert seat.state == NR
    seat.advance(1000)
    assert seat.state == OUT
    assert state_events(seat.events(since=t)) == [(OUT, 0, TMR)]
    assert seat.light_at(seat.now) == OFF


# --- pending change -----------------------------------------------------------------------


def test_ready_pressed_during_talk_is_pending_shown_by_blue_pip_and_applied_after_acw(
    seat: Seat,
) -> None:
    answered_call(seat)
    t = seat.now
    seat.tap(IN_READY)
    assert seat.state == TALK
    pend = [f for f in seat.events(since=t) if f.code == EV_PEND]
    assert [f.ints[4:] for f in pend] == [(NR, 1)]
    seat.advance(4000)
    # the blue pip: the first 200 ms of each 2 s cycle, red talk light otherwise
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 100) == B
    assert seat.light_at(cycle + 500) == R
    seat.hook(False)
    assert seat.state == ACW
    seat.advance(61_000)
    assert (seat.state, seat.reason) == (NR, 1)
    applied = seat.events(since=t)[-1]
    assert state_events([applied]) == [(NR, 1, TMR)]
    # applied: the pip is gone, plain Not Ready blue
    assert {c for _, c in seat.lights_between(applied.ms + 5, seat.now, 5)} == {B}
    assert seat.sim.S[14] == -1


def test_pending_change_cancelled_by_pressing_again(seat: Seat) -> None:
    answered_call(seat)
    seat.tap(IN_READY, after_ms=2100)
    t = seat.now
    seat.tap(IN_READY)  # after the step time: cancels instead of stepping
    pend = [f for f in seat.events(since=t) if f.code == EV_PEND]
    assert [f.ints[4] for f in pend] == [-1]
    assert seat.sim.S[14] == -1


def test_ring_timeout_withdraws_a_pending_change_and_says_so(seat: Seat) -> None:
    seat.login()
    rang = offer(seat, CALL, 1, 1000)
    seat.tap(IN_READY)  # Not Ready (break) asked for while ringing: pending
    seat.advance(1500)  # rung out: Not Ready, no answer, and the break is gone
    assert (seat.state, seat.reason) == (NR, NOANS) and seat.sim.S[14] == -1
    pend = [f.ints[4] for f in seat.events(since=rang) if f.code == EV_PEND]
    assert pend == [NR, -1]  # the host hears that the pending change was withdrawn
    t = seat.now
    seat.send("Q")  # resync: a snapshot
    snap = seat.of_kind("S", since=t)[-1].ints
    assert snap[5:7] == (-1, 0)  # pending state none, and no stale pending reason


def test_help_button_toggles_help_and_shows_magenta(seat: Seat) -> None:
    seat.login()
    t = seat.now
    seat.tap(IN_HELP)
    seat.advance(2000)
    assert [(f.code, f.ints[4]) for f in seat.events(since=t)] == [(6, 1)]
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 1100) == 5 and seat.light_at(cycle + 1400) == G
    seat.send("U", 0)  # a supervisor answered
    assert seat.sim.S[8] == 0


def test_a_supervisor_message_flashes_over_the_light_until_it_runs_out(seat: Seat) -> None:
    seat.login()
    seat.send("M", 6, 5)  # cyan for 5 s
    seat.advance(2000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 500) == 6 and seat.light_at(cycle + 1000) == G
    assert seat.light_at(cycle + 300) == G  # the state's colour around it
    assert not seat.of_kind("X")  # taken
    seat.advance(6000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 500) == G  # 5 s are over
    seat.send("M", 1, 600)
    seat.send("M", 1, 0)  # ended early
    seat.advance(2000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 500) == G


def test_a_bad_message_is_refused_and_changes_nothing(seat: Seat) -> None:
    seat.login()
    bad = [seat.send("M", 8, 5), seat.send("M", 0, 5), seat.send("M", 2, 601),
           seat.send("M", 2), seat.send("M")]  # fmt: skip
    assert [f.ints for f in seat.of_kind("X")] == [
        (bad[0], 4, 1), (bad[1], 4, 1), (bad[2], 4, 2), (bad[3], 5, 2), (bad[4], 5, 1)]
    assert seat.sim.S[18] == 0  # no message showing


# --- host settings and commands ----------------------------------------------------------


def test_settings_out_of_range_rejected_naming_the_key_and_nothing_changes(seat: Seat) -> None:
    seat.login()
    seq = seat.send("G", K_RING_MS, 500)
    assert [f.ints for f in seat.of_kind("X")] == [(seq, 4, K_RING_MS)]
    # all or nothing: a good key before a bad one is not applied either
    seq2 = seat.send("G", K_RING_LIMIT, 5, K_MISS_LIMIT, 11)
    assert [f.ints for f in seat.of_kind("X")][-1] == (seq2, 4, K_MISS_LIMIT)
    seq3 = seat.send("G", 15, 1)  # no such key
    assert [f.ints for f in seat.of_kind("X")][-1] == (seq3, 4, 15)
    seq4 = seat.send("G", K_RING_LIMIT)  # a key without its value
    assert [f.ints for f in seat.of_kind("X")][-1] == (seq4, 5, 0)
    assert seat.sim.V == DEFAULTS
    assert len({f.seq for f in seat.of_kind("X")}) == 4
    # a good one applies
    seat.send("G", K_RING_LIMIT, 5, K_RING_MS, 1000)
    assert seat.sim.V[1:3] == [5, 1000]
    assert len(seat.of_kind("X")) == 4


def test_offer_when_not_ready_is_rejected_wrong_state(seat: Seat) -> None:
    seq = seat.send("O", CALL)
    assert [f.ints for f in seat.of_kind("X")] == [(seq, 2, 0)]
    assert seat.state == OUT


def test_unknown_host_command_is_rejected(seat: Seat) -> None:
    seq = seat.send("J", 1)
    assert [f.ints for f in seat.of_kind("X")] == [(seq, 1, 0)]


def test_host_sets_not_ready_reason_directly(seat: Seat) -> None:
    seat.login()
    t = seat.now
    seat.send("T", NR, 10)
    assert state_events(seat.events(since=t)) == [(NR, 10, HOST)]
    seq = seat.send("T", NR, 11)
    assert seat.of_kind("X")[-1].ints == (seq, 4, 2)


# --- the link -----------------------------------------------------------------------------


def test_garbage_and_corrupt_frames_are_counted_in_heartbeat_and_ignored(seat: Seat) -> None:
    seat.login()
    before = seat.heartbeat().num(3)
    assert before == 0
    good = encode(seat.host_seq + 1, "O", CALL)
    corrupt = good.replace(b"O", b"K")  # same CRC, other body
    bad_crc = good[:-5] + b"0000\n"
    junk = [
        b"hello\n",
        bad_crc,
        corrupt,
        b"\x00\xff\x03garbage*1234\n",
        b"9" * 100 + b"\n",  # longer than the seat's line buffer
        b"1 O 12*ZZZZ\r\n",
        b"*\n",
    ]
    t = seat.now
    for line in junk:
        seat.board.feed(line)
    seat.advance(500)
    assert seat.state == READY
    assert [f for f in seat.frames(since=t) if f.kind in "XE"] == []
    beat = seat.heartbeat()
    assert beat.num(3) == len(junk)  # sec mem worst bad ...
    # the link still works afterwards
    offer(seat)


def test_empty_lines_are_not_counted_as_bad(seat: Seat) -> None:
    seat.board.feed(b"\n\n\r\n")
    seat.advance(100)
    # blank lines, also the CR LF a terminal sends, are skipped (docs/protocol.md)
    assert seat.heartbeat().num(3) == 0
    seat.board.feed(b"\r\r\n")  # two CRs are not a blank line: a bad frame
    seat.advance(100)
    assert seat.heartbeat().num(3) == 1


def test_heartbeat_every_five_seconds_reports_link_counters(seat: Seat) -> None:
    t = seat.now
    seat.advance(15_000)
    beats = seat.of_kind("H", since=t)
    assert [f.seq for f in beats] == [0, 0, 0]
    gaps = [b.ms - a.ms for a, b in zip(beats, beats[1:], strict=False)]
    assert gaps == [5_000, 5_000]
    sec, mem, worst, bad, drop, count, retx, err, boot = (beats[-1].num(i) for i in range(9))
    # boot counter, firmware and board id (hex) as in the hello: a host that missed it learns
    # them here; then the newest seq queued (the hello 1 and the snapshot 2 at boot)
    assert beats[-1].fields[9:] == ("0.1.0", "5EED00C0FFEE0001", "2") and boot == 1
    assert mem == 6144 and worst == PASS_MS and (bad, drop, err) == (0, 0, 0)
    assert abs(sec - beats[-1].ms // 1000) <= 1


def test_queue_overflow_with_no_acks_collapses_to_snapshot_with_dropped_count(seat: Seat) -> None:
    seat.login()
    seat.go_silent()
    t = seat.now
    for _ in range(11):  # 11 HELP events: one more than the 10 frames the seat keeps
        seat.tap(IN_HELP)
    seat.advance(100)
    L = seat.sim.L
    assert L[L_DROP] == 10
    snaps = seat.of_kind("S", since=t)
    # the snapshot carries the dropped count, and the first seq dropped: the oldest unacked
    assert snaps and snaps[0].ints[-2] == 10 and snaps[0].ints[-1] == snaps[0].seq - 10
    seqs = [f.seq for f in seat.frames(since=t) if f.seq]
    assert seqs == sorted(seqs) or len(set(seqs)) < len(seqs)  # resends only go back
    # what is still queued: the snapshot then the newest event; acked they are gone
    assert L[L_COUNT] == 2
    assert [f.kind for f in seat.frames(since=t) if f.seq == max(seqs)] and seqs
    seat.ack(max(seqs))
    seat.advance(100)
    assert L[L_COUNT] == 0
    assert seat.heartbeat().num(4) == 10  # dropped frames in the heartbeat too


def test_acks_pop_the_queue_and_stop_resends(seat: Seat) -> None:
    seat.login()
    seat.go_silent()
    t = seat.now
    for _ in range(6):
        seat.tap(IN_HELP)
    seat.advance(1000)
    sent = [f for f in seat.frames(since=t) if f.kind == "E"]
    assert len(sent) > 6  # unacked: resent
    seqs = sorted({f.seq for f in sent})
    assert len(seqs) == 6 and seat.sim.L[L_COUNT] == 6
    seat.ack(seqs[2])  # cumulative
    seat.advance(20)
    assert seat.sim.L[L_COUNT] == 3
    seat.ack(seqs[-1])
    seat.advance(20)
    assert seat.sim.L[L_COUNT] == 0
    t = seat.now
    seat.advance(5000)
    assert [f for f in seat.frames(since=t) if f.kind != "H"] == []


def test_old_ack_does_not_pop_newer_frames(seat: Seat) -> None:
    seat.login()
    seat.go_silent()
    seat.tap(IN_HELP)
    seat.tap(IN_HELP)
    assert seat.sim.L[L_COUNT] == 2
    seat.ack(1)  # already acked long ago
    seat.advance(20)
    assert seat.sim.L[L_COUNT] == 2


def test_duplicate_host_frame_is_acked_again_but_not_applied_twice(seat: Seat) -> None:
    seat.login()
    t = seat.now
    seq = seat.send("O", CALL)
    seat.send("O", CALL, seq=seq)  # the host resends: our ack was lost
    seat.send("O", CALL, seq=seq)
    assert [f.ints for f in seat.of_kind("A", since=t)] == [(seq,)] * 3
    assert state_events(seat.events(since=t)) == [(RING, 0, HOST)]
    assert seat.of_kind("X") == []
    # and the next new frame is taken
    seat.send("C", CALL)
    assert seat.state == READY


def test_out_of_order_host_frame_is_ignored_until_sync(seat: Seat) -> None:
    seat.login()
    seq = seat.send("U", 1)
    t = seat.now
    seat.send("U", 0, seq=seq + 5)  # a gap: not taken, the last good one acked
    assert [f.ints for f in seat.of_kind("A", since=t)] == [(seq,)]
    assert seat.sim.S[8] == 1
    seat.send("Q", seq=seq + 5)  # Q resyncs and asks for a snapshot
    seat.host_seq = seq + 5
    assert seat.of_kind("S", since=t)
    seat.send("U", 0)
    assert seat.sim.S[8] == 0


def test_link_down_shows_white_overlay_and_host_frames_bring_it_back(seat: Seat) -> None:
    seat.hook(True)  # headset on: no Away
    seat.login()
    seat.go_silent()
    seat.advance(12_000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 1650) == G  # 3 heartbeat times (15 s) without the host
    seat.advance(6_000)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 1650) == W and seat.light_at(cycle + 1750) == G
    seat.ack_all()
    seat.advance(2100)
    cycle = (seat.now // 2000) * 2000 - 2000
    assert seat.light_at(cycle + 1650) == G


def test_exit_frame_with_magic_leaves_the_loop_for_the_repl(seat: Seat) -> None:
    seq = seat.send("Z", 1)  # wrong magic: refused as unknown (protocol.md: 1/0)
    assert not seat.sim.finished
    assert [f.ints for f in seat.of_kind("X")] == [(seq, 1, 0)]
    seat.send("Z", 24231)
    assert seat.sim.finished
    assert seat.board.current_light == OFF
    assert seat.board.kbd_calls == [3]


# --- robustness: firmware bugs these tests pinned down, fixed ---


def test_ack_beyond_the_newest_frame_sent_is_ignored(code: str) -> None:
    s = Seat(bundled=code == "bundled").start()
    try:
        s.auto_ack = False
        s.ack(500)  # the host still acks the previous boot's frames
        s.sim.advance(5000)
        assert [f.kind for f in s.frames() if f.seq][:2] == ["B", "S"]
        assert s.sim.L[L_COUNT] == 2
    finally:
        s.close()


def test_transient_error_in_an_input_edge_does_not_replay_the_edge(seat: Seat) -> None:
    seat.login()
    emit = seat.sim.fw.seat.emit
    failed: list[int] = []

    def flaky(code: int, a: int, b: int) -> None:
        if code == 6 and not failed:  # the HELP event, once: e.g. a MemoryError on a board
            failed.append(code)
            raise MemoryError("heap")
        emit(code, a, b)

    seat.sim.fw.seat.emit = flaky
    seat.check_errors = False
    seat.tap(IN_HELP)
    assert seat.sim.L[L_ERR] == 1
    assert seat.sim.S[8] == 1, "help was toggled twice"
