"""The host's receive rules (gateway/seatlink/receiver.py) line by line, without any I/O: what
a heartbeat's boot counter does to the sequence state."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.seatlink.codec import Field, Kind, encode
from gateway.seatlink.receiver import Receiver, RxStatus

SNAP: list[Field] = [0, 0, 0, 0, 0, -1, 0, 0, 0]
EVENT: list[Field] = [6, 0, 0, 0, 1, 0]


def hello(boot: int) -> list[Field]:
    return [1, boot, "0.1.0", "1234ABCD", "cpython"]


def beat(uptime: int, boot: int | None) -> list[Field]:
    """A heartbeat's fields; boot None: the 9 fields of older firmware."""
    health: list[Field] = [uptime, 9000, 5, 0, 0, 0, 0, 0]
    return [*health, "0.1.0"] if boot is None else [*health, boot, "0.1.0", "1234ABCD"]


def take(rx: Receiver, kind: Kind, fields: Sequence[Field], seq: int = 0) -> RxStatus:
    return rx.take(encode(seq, kind, fields)).status


def test_a_heartbeat_before_any_frame_names_the_counts_boot() -> None:
    rx = Receiver()
    take(rx, Kind.HEARTBEAT, beat(30, 7))
    assert (rx.boot, rx.beat_boot, rx.reboots) == (7, 7, 0)
    # the hello is long gone (the queue collapsed): the snapshot starts the count, boot known
    assert take(rx, Kind.SNAPSHOT, [*SNAP[:8], 10], seq=12) is RxStatus.DELIVERED
    assert (rx.last, rx.boot) == (12, 7)


def test_a_heartbeat_does_not_vouch_for_a_count_already_under_way() -> None:
    rx = Receiver()
    take(rx, Kind.EVENT, EVENT, seq=40)  # the host joined late: boot unknown
    take(rx, Kind.HEARTBEAT, beat(30, 8))
    # the seat may have restarted since frame 40: only the heartbeat's own boot is known
    assert (rx.boot, rx.beat_boot, rx.reboots) == (None, 8, 0)
    # so the hello of boot 8 (the seat did restart) still starts a new count, not a repeat
    assert take(rx, Kind.HELLO, hello(8), seq=1) is RxStatus.DELIVERED
    assert (rx.last, rx.boot, rx.reboots) == (1, 8, 1)


def test_another_boot_than_the_hellos_is_a_restart() -> None:
    rx = Receiver()
    take(rx, Kind.HELLO, hello(7), seq=1)
    take(rx, Kind.SNAPSHOT, SNAP, seq=2)
    take(rx, Kind.HEARTBEAT, beat(10, 7))
    assert (rx.reboots, rx.need_resync, rx.last) == (0, False, 2)
    take(rx, Kind.HEARTBEAT, beat(15, 8))  # uptime still growing: only the boot tells
    assert (rx.reboots, rx.need_resync, rx.last, rx.boot) == (1, True, None, 8)
    assert take(rx, Kind.EVENT, EVENT, seq=3) is RxStatus.DELIVERED  # the new count
    assert (rx.last, rx.boot) == (3, 8)


def test_another_boot_than_the_last_heartbeats_is_a_restart() -> None:
    rx = Receiver()
    take(rx, Kind.EVENT, EVENT, seq=40)
    take(rx, Kind.HEARTBEAT, beat(100, 7))
    take(rx, Kind.EVENT, EVENT, seq=41)
    take(rx, Kind.HEARTBEAT, beat(105, 8))  # the count's boot unknown, the heartbeats differ
    assert (rx.reboots, rx.need_resync, rx.last, rx.boot, rx.beat_boot) == (1, True, None, 8, 8)


def test_a_boot_known_from_elsewhere_is_compared_too() -> None:
    # the edge gateway restores the boot and last seq it stored before a restart of its own
    rx = Receiver()
    rx.boot, rx.last = 7, 120
    take(rx, Kind.HEARTBEAT, beat(500, 7))
    assert (rx.reboots, rx.last) == (0, 120)
    take(rx, Kind.HEARTBEAT, beat(600, 9))  # the seat restarted while nobody listened
    assert (rx.reboots, rx.last, rx.boot) == (1, None, 9)


def test_a_restart_in_the_hello_is_not_counted_again_by_the_heartbeat() -> None:
    rx = Receiver()
    take(rx, Kind.HELLO, hello(7), seq=1)
    take(rx, Kind.HEARTBEAT, beat(3600, 7))
    take(rx, Kind.HELLO, hello(8), seq=1)
    take(rx, Kind.SNAPSHOT, SNAP, seq=2)
    assert rx.reboots == 1
    # the new boot's uptime is lower and its counter new to the old boot's heartbeat: neither
    # is news after the hello (older firmware's heartbeat neither)
    for fields in (beat(5, 8), beat(6, None)):
        take(rx, Kind.HEARTBEAT, fields)
        assert (rx.reboots, rx.need_resync, rx.last, rx.boot) == (1, False, 2, 8)


def test_a_resent_hello_with_the_heartbeats_boot_is_a_repeat() -> None:
    rx = Receiver()
    take(rx, Kind.HEARTBEAT, beat(0, 7))
    take(rx, Kind.HELLO, hello(7), seq=1)
    take(rx, Kind.SNAPSHOT, SNAP, seq=2)
    assert take(rx, Kind.HELLO, hello(7), seq=1) is RxStatus.DUPLICATE
    assert (rx.reboots, rx.last, rx.boot) == (0, 2, 7)


def test_older_firmwares_heartbeat_keeps_the_uptime_rule_only() -> None:
    rx = Receiver()
    take(rx, Kind.HELLO, hello(7), seq=1)
    take(rx, Kind.HEARTBEAT, beat(100, None))
    assert (rx.boot, rx.beat_boot, rx.reboots) == (7, None, 0)
    take(rx, Kind.HEARTBEAT, beat(2, None))  # uptime went back
    assert (rx.reboots, rx.need_resync, rx.last, rx.boot) == (1, True, None, None)


# --- known_start: the edge gateway's rule for where a count begins -----------------------


def test_known_start_holds_frames_until_the_count_is_placed() -> None:
    rx = Receiver(known_start=True)
    assert take(rx, Kind.EVENT, EVENT, seq=3) is RxStatus.HELD
    assert rx.last is None and rx.delivered == 0  # not taken, nothing to ack
    rx.start(0, 7, dropped=0)  # nothing stored from boot 7: its hello comes first
    # the hello was damaged on the line: the newer frames are a gap, not the count's start
    assert take(rx, Kind.SNAPSHOT, SNAP, seq=2) is RxStatus.OUT_OF_ORDER
    assert rx.need_resync
    assert take(rx, Kind.HELLO, hello(7), seq=1) is RxStatus.DELIVERED
    assert take(rx, Kind.SNAPSHOT, SNAP, seq=2) is RxStatus.DELIVERED


def test_a_placed_count_takes_a_collapse_only_when_the_seat_dropped_more() -> None:
    rx = Receiver(known_start=True)
    rx.start(40, 7, dropped=0)
    assert take(rx, Kind.SNAPSHOT, SNAP, seq=45) is RxStatus.OUT_OF_ORDER  # still queued
    assert take(rx, Kind.SNAPSHOT, [*SNAP[:8], 10], seq=52) is RxStatus.DELIVERED  # gone
    assert (rx.last, rx.skipped) == (52, 11)


def test_a_restart_seen_in_a_heartbeat_holds_the_new_count() -> None:
    rx = Receiver(known_start=True)
    rx.start(0, 7, dropped=0)
    assert take(rx, Kind.HELLO, hello(7), seq=1) is RxStatus.DELIVERED
    take(rx, Kind.HEARTBEAT, beat(3, 8))  # boot 8: it restarted, its hello not heard
    assert rx.holding and take(rx, Kind.EVENT, EVENT, seq=5) is RxStatus.HELD


# --- a snapshot says which frames its collapse dropped (firmware with 10-field snapshots) ----


def snap(gone_from: int = 0, dropped: int = 0) -> list[Field]:
    """A snapshot's fields as the seat sends them: gone_from 0 for one asked for by a Q or
    queued at boot, else the first seq its full queue dropped just before it."""
    return [*SNAP[:8], dropped, gone_from]


def beat12(boot: int, *, newest: int, dropped: int = 0, depth: int = 0) -> list[Field]:
    return [40, 9000, 5, 0, dropped, depth, 0, 0, boot, "0.1.0", "1234ABCD", newest]


def test_a_resyncs_snapshot_past_a_damaged_frame_is_not_a_collapse() -> None:
    """A restarted gateway knows where the count stands, not the seat's dropped count; its
    first Q's snapshot arrives while the frame before it was damaged on the line. Taking it
    as a collapse skipped frames the seat still held, and acked them: lost, silently."""
    rx = Receiver(known_start=True)
    rx.start(40, 7, dropped=None)  # what the outbox knows after a gateway restart
    assert take(rx, Kind.SNAPSHOT, snap(), seq=43) is RxStatus.OUT_OF_ORDER  # 41, 42 damaged
    assert (rx.last, rx.skipped, rx.need_resync) == (40, 0, True)
    for seq in (41, 42):  # the seat resends them: nothing was lost
        assert take(rx, Kind.EVENT, EVENT, seq=seq) is RxStatus.DELIVERED
    assert take(rx, Kind.SNAPSHOT, snap(), seq=43) is RxStatus.DELIVERED
    assert (rx.last, rx.skipped) == (43, 0)


def test_a_collapse_snapshot_is_taken_whatever_dropped_count_the_host_knew() -> None:
    """Seats pressing before the gateway started: the heartbeat's dropped count already
    includes the collapse whose snapshot heads the queue. The snapshot names the frames it
    stands for (from the hello, seq 1), so it is taken at once, not refused until the seat
    overflows again."""
    rx = Receiver(known_start=True)
    take(rx, Kind.HEARTBEAT, beat12(7, newest=35, dropped=30, depth=4))
    rx.start(0, 7, dropped=30)  # nothing stored from this boot
    out = rx.take(encode(32, Kind.SNAPSHOT, snap(gone_from=1, dropped=30)))
    assert out.status is RxStatus.DELIVERED and out.ack == 32
    assert (rx.last, rx.skipped) == (32, 31)
    assert take(rx, Kind.EVENT, EVENT, seq=33) is RxStatus.DELIVERED


def test_a_collapse_that_began_after_the_next_frame_skips_nothing() -> None:
    """Frames before gone_from are still queued, or were taken: a gap, as any other."""
    rx = Receiver(known_start=True)
    rx.start(40, 7, dropped=0)
    assert take(rx, Kind.SNAPSHOT, snap(gone_from=43, dropped=10), seq=53) is RxStatus.OUT_OF_ORDER
    assert (rx.last, rx.skipped) == (40, 0)
    assert take(rx, Kind.SNAPSHOT, snap(gone_from=41, dropped=10), seq=51) is RxStatus.DELIVERED
    assert (rx.last, rx.skipped) == (51, 10)


def test_a_collapse_across_the_wrap_is_taken() -> None:
    rx = Receiver(known_start=True)
    rx.start(65530, 7, dropped=0)
    assert take(rx, Kind.SNAPSHOT, snap(gone_from=65531, dropped=10), seq=6) is RxStatus.DELIVERED
    assert (rx.last, rx.skipped) == (6, 10)


def test_frames_a_seat_held_when_it_reset_are_counted() -> None:
    rx = Receiver(known_start=True)
    rx.start(0, 7, dropped=0)
    for seq, kind, fields in ((1, Kind.HELLO, hello(7)), (2, Kind.SNAPSHOT, snap())):
        assert take(rx, kind, fields, seq=seq) is RxStatus.DELIVERED
    for seq in range(3, 10):
        take(rx, Kind.EVENT, EVENT, seq=seq)
    assert take(rx, Kind.EVENT, EVENT, seq=12) is RxStatus.OUT_OF_ORDER  # 10, 11 damaged
    take(rx, Kind.HEARTBEAT, beat12(7, newest=14, depth=5))  # it holds 10..14
    assert rx.lost_at_reset == 0
    assert take(rx, Kind.HELLO, hello(8), seq=1) is RxStatus.DELIVERED  # reset: 10..14 gone
    assert (rx.reboots, rx.lost_at_reset, rx.last) == (1, 5, 1)


def test_a_reset_with_nothing_outstanding_loses_nothing() -> None:
    rx = Receiver()
    take(rx, Kind.HELLO, hello(7), seq=1)
    take(rx, Kind.SNAPSHOT, snap(), seq=2)
    take(rx, Kind.HEARTBEAT, beat12(7, newest=2))
    take(rx, Kind.HEARTBEAT, beat12(8, newest=2))  # restarted: its hello not heard yet
    assert (rx.reboots, rx.lost_at_reset) == (1, 0)


def test_a_new_boots_hello_right_after_the_wrap_is_a_new_boot() -> None:
    """Seq 1 follows 65535: a hello 1 with another boot counter is still a new count."""
    rx = Receiver(known_start=True)
    rx.start(65535, 7, dropped=0)
    out = rx.take(encode(1, Kind.HELLO, hello(8)))
    assert out.status is RxStatus.DELIVERED and out.note == "new boot"
    assert (rx.boot, rx.n, rx.reboots) == (8, 1, 1)
