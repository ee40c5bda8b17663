"""Benchmark figures of the seat firmware on an emulated micro:bit, printed as one JSON object.

    python -m tools.bench                      # QEMU micro:bit v1 (what `make bench` runs)
    python -m tools.bench --backend virtual    # the firmware under CPython, for development

The micro:bit figures are taken on QEMU's micro:bit v1 booting the seat image
(gateway.image: MicroPython 1.9.2 with the firmware frozen into flash), measured, never
asserted. Each is printed beside its goal and beside a baseline measured in the same run,
as a ratio (`*_ratio` = figure / baseline), since the figures swing with the host's load:

- free_heap_bytes: the free-heap field of the first heartbeat after boot (goal >= 4000,
  at least 3000); baseline: the same image's free heap at its REPL, the firmware not loaded
  (`gc.mem_free()` after Ctrl-C at boot), so the ratio is the share of the heap the
  firmware leaves;
- worst_loop_ms: the worst main-loop pass any heartbeat reported (goal <= 20); baseline: the
  same firmware and workload under CPython (the virtual backend);
- input_to_light_*_ms: from the READY release (the edge the seat acts on) to the light's
  change, both stamped outside the board (qtest, time.monotonic_ns), over N presses toggling
  Ready / Not Ready (goal p99 <= 30); baseline: the qtest round trip of a pin read-back
  (drive WRAP, read the GPIO IN register until it shows the level), one pair per press;
- ring_timeout_*: offers rung out (ring_limit x ring_ms) with the host link silent from the
  offer's ack on (nothing read, acked or pinged), against the deadline (the offer's write
  time + ring_limit x ring_ms): when the light left ringing (goal |error| <= 100), and how
  far past the limit the seat's own count was; baseline: the same under CPython;
- stack_*: the C stack's high-water mark, read from outside: the port paints the unused
  stack with a word at boot (gateway/image/microbit-port.patch) and qtest reads RAM; the
  deepest word no longer painted, after boot, after a full call cycle (ready, offer, answer
  by hook, hold, unhold, hang up, ACW, ready), after a queue overflow (the host acks none
  of the seat's frames; the overflow comes in the firmware's deepest call chain, a host
  release: see queue_overflow) and after the presses and rings of a second boot; against
  MicroPython's limit (stack size - margin), `stack_ratio`.

The same workload's figures under CPython are under `virtual`. When the image cannot be
built or does not boot, the board figures are null, `microbit_boots` is false with the
reason, and `virtual` still follows.

Then, under `edge`, the edge gateway's load figures (tools/bench_edge.py: 256 virtual seats
pressing HELP 10 times a second each for 60 s; latency, events lost, the gateway's CPU and
memory, its delivered throughput against raw aiomqtt publishing), or `{"error": ...}` when
they cannot be measured (no mosquitto). `--no-edge` leaves them out.

Then, under `pbx`, the simulated PBX's load figures (tools/bench_pbx.py: 200 calls a minute
offered to 256 virtual seats with agents at their desks for 600 s; routing decision latency,
calls lost, abandon (drop) rate, ASA, the PBX's CPU and memory), or `{"error": ...}`.
`--no-pbx` leaves them out.

Then, under `core`, the policy/KPI core's figures over a day of a 5,000-seat site
(tools/bench_core.py: ingest into SQLite with the live KPIs and alerts on one core, KPI
query p50/p99 per kind, the live KPIs' memory), or `{"error": ...}`. `--no-core` leaves them
out.

Then, under `api`, the supervisor API's live feed (tools/bench_api.py: 500 WebSocket clients
on /ws while 256 seats change state every 2 s for 30 s; event-to-client latency p50/p95/p99
against the goal p99 <= 100 ms, deliveries missed, resyncs, the API's CPU and memory), or
`{"error": ...}`. `--no-api` leaves them out.

Then, under `flash`, the time to flash 8 emulated micro:bits in parallel against one after
another (tools/bench_flash.py: `seatlink flash`'s flash_many on fresh QEMU boards, hashed,
written, verified and reset; parallel_s, sequential_s, speedup), or `{"error": ...}`.
`--no-flash` leaves them out.

Progress goes to stderr, with the micro:bit figures as a table (figure, goal, baseline,
ratio); stdout is the JSON object only. Exit status 1 if nothing could be measured at all,
with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.image import Image, build_image
from gateway.rig import EmulatedBoard
from gateway.rig.qtest import REG_IN
from gateway.seatlink import messages
from gateway.seatlink.codec import (
    QUEUE_SIZE,
    Direction,
    EventCode,
    Frame,
    FrameError,
    Kind,
    SettingKey,
    State,
    decode,
    next_seq,
)
from gateway.seatlink.messages import Command, Heartbeat
from hil_tests.dut import BLUE, GREEN, INPUTS, RED, Dut, QemuDut, open_dut
from hil_tests.seat import Seat
from tools import bench_api, bench_core, bench_edge, bench_flash, bench_pbx

FREE_HEAP_GOAL_BYTES = 4000
FREE_HEAP_MIN_BYTES = 3000
WORST_LOOP_GOAL_MS = 20
INPUT_TO_LIGHT_GOAL_P99_MS = 30
RING_TIMEOUT_GOAL_MS = 100
PRESS_HOLD_S = 0.1  # longer than the 30 ms debounce lockout
STEP_MS = 300  # shortest step window, so presses 0.4 s apart toggle instead of stepping
RING_LIMIT, RING_MS = 2, 1000
ACW_S = 1  # the call cycle's after-call work ends by its timer
CALL = 7001
READBACK_INPUT = "wrap"  # read back in Ready / Not Ready, where WRAP does nothing


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with `fraction` of them at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def ms(ns: float) -> float:
    return round(ns / 1e6, 2)


def ratio(figure: float | None, baseline: float | None) -> float | None:
    if figure is None or not baseline:
        return None
    return round(figure / baseline, 3)


# --- what only the emulated board shows: its pins and RAM over qtest ----------------------


class BoardProbe:
    """The emulated micro:bit's RAM and pins read over qtest while the firmware runs."""

    def __init__(self, board: EmulatedBoard, image: Image) -> None:
        layout = (image.stack_top, image.stack_size, image.stack_margin, image.stack_paint)
        if None in layout:
            raise RuntimeError(f"the image {image.key} does not say where its stack is")
        self.board = board
        self.top, self.size, self.margin, paint = (int(v or 0) for v in layout)
        self.paint = paint.to_bytes(4, "little")
        self.limit = self.size - self.margin  # MicroPython's own limit (mp_stack_set_limit)
        self.reached_bottom = False

    def stack_high_water(self) -> int:
        """Bytes of C stack used at the deepest since boot: from the top of RAM down to the
        lowest word no longer painted."""
        data = self.board.gpio.read_memory(self.top - self.size, self.size)
        for offset in range(0, self.size, 4):
            if data[offset : offset + 4] != self.paint:
                self.reached_bottom |= offset == 0
                return self.size - offset
        return 0

    def read_back(self, dut: Dut, level: int, *, timeout: float = 5.0) -> int:
        """Drive READBACK_INPUT to `level` and read the GPIO IN register until it shows it:
        ns from the drive's stamp to the reply that showed it."""
        bit = 1 << self.board.gpio.pins.inputs[READBACK_INPUT]
        driven = dut.set_input(READBACK_INPUT, level)
        deadline = time.monotonic() + timeout
        while True:
            value = int.from_bytes(self.board.gpio.read_memory(REG_IN, 4), "little")
            now = time.monotonic_ns()
            if bool(value & bit) == bool(level):
                return now - driven
            if time.monotonic() >= deadline:
                raise RuntimeError(f"GPIO IN never showed {READBACK_INPUT}={level} in {timeout} s")


def image_heap_at_repl(image: Image) -> int:
    """The image's free heap with the firmware not loaded: a board of its own, stopped at
    its REPL as main.py starts (Ctrl-C at boot), then gc.collect() and gc.mem_free()."""
    board = EmulatedBoard(firmware_hex=image.path)
    try:
        board.start(repl=False)
        with board.repl() as repl:
            repl.enter_raw()
            out, _ = repl.exec("import gc\ngc.collect()\nprint(gc.mem_free())")
        return int(out.strip())
    finally:
        board.stop()


# --- the seat's workload ---------------------------------------------------------------


class SilentHost:
    """The host end of the line writing frames by hand and reading the seat's frames without
    acking any: the seat's queue only grows. Takes over from `seat`'s session."""

    def __init__(self, seat: Seat) -> None:
        self.dut = seat.dut
        self.seq = seat.next_host_seq()  # the seat takes this one next
        self.frames: list[Frame] = []
        self._partial = b""

    def send(self, command: Command) -> int:
        """Write a reliable command with the next seq; its seq."""
        seq, self.seq = self.seq, next_seq(self.seq)
        self.dut.port.write(command.encode(seq))
        return seq

    def ping(self) -> None:
        self.dut.port.write(messages.ping().encode(0))

    def wait(self, match: Callable[[Frame], bool], *, what: str, timeout: float = 5.0) -> Frame:
        """The first frame from now on that matches, read (never acked) until `timeout`."""
        seen = len(self.frames)
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames[seen:]:
                if match(frame):
                    return frame
            seen = len(self.frames)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no {what} from the seat within {timeout} s")
            self._read()

    def _read(self) -> None:
        *lines, self._partial = (self._partial + self.dut.port.read(4096)).split(b"\n")
        for line in lines:
            try:
                self.frames.append(decode(line, direction=Direction.SEAT_TO_HOST))
            except FrameError:
                pass  # the tail of a line the session had begun, or a NUL at boot


def wear_headset(dut: Dut) -> None:
    """The agent's headset off its hanger (worn) and nothing pressed, before a boot: a Ready
    agent wearing it is never away (docs/seat.md), so the presses and rings stay in Ready."""
    if dut.drives_inputs:
        for name in INPUTS:
            dut.set_input(name, 0)


def call_cycle(seat: Seat) -> None:
    """Ready with the headset worn, an offer answered with the call button, held, taken
    off hold, ended by hanging the headset up, after-call work to its end (ACW_S), the
    headset worn again, Ready: as the HIL tests drive it."""
    seat.login()
    seat.send(messages.offer(CALL))
    seat.wait_state(State.RINGING)
    seat.press_answer()
    seat.wait_state(State.TALKING)
    seat.send(messages.hold(CALL))
    seat.wait_state(State.HOLD)
    seat.send(messages.hold(CALL, on=False))
    seat.wait_state(State.TALKING)
    seat.hang_up()
    seat.wait_event(EventCode.RELEASED)
    seat.wait_state(State.ACW)
    seat.lift()
    seat.wait_state(State.READY, timeout=ACW_S + 5)
    seat.settle()


def acking(seq: int) -> Callable[[Frame], bool]:
    return lambda frame: frame.kind is Kind.ACK and frame.fields[:1] == (seq,)


def queue_overflow(seat: Seat) -> Heartbeat:
    """The seat's queue overflowing while the host acks none of its frames, in the firmware's
    deepest call chain (gateway.bundle.call_depth: rx.feed, rx.line, host.do, host.call,
    seat.release, seat.end, seat.go, link.enq, link.enq): with acw_s 0, from an empty queue,
    an outbound call (K: one event), QUEUE_SIZE - 2 help frames (one event each), then the
    host's release (L: the released event fills the queue, and the change to Ready that
    follows overflows it). Each frame is written once the seat has acked the one before.
    The heartbeat after it counts the frames dropped; its queue depth is 2 (the snapshot
    and the change to Ready) when the overflow came where it should."""
    seat.login()  # K starts an outbound call from Ready
    seat.settings({SettingKey.ACW_S: 0})  # settled: the seat's queue is empty
    host = SilentHost(seat)
    call = CALL + 1
    commands = [messages.connected(call),
                *(messages.help_flag(i % 2 == 0) for i in range(QUEUE_SIZE - 2)),
                messages.released(call)]  # fmt: skip
    for command in commands:
        seq = host.send(command)
        host.wait(acking(seq), what=f"ack of {command.kind.name} frame {seq}")
    host.ping()
    beat = Heartbeat.from_frame(host.wait(lambda f: f.kind is Kind.HEARTBEAT, what="heartbeat"))
    if beat.dropped_frames < QUEUE_SIZE:
        raise RuntimeError(f"no queue overflow: the seat dropped {beat.dropped_frames} frames")
    return beat


def input_to_light(
    seat: Seat, presses: int, probe: BoardProbe | None
) -> tuple[list[float], list[float]]:
    """Latency samples in ns: READY released -> light changed (green <-> blue); and, with a
    probe, two pin read-backs after each press (the harness's own round trip)."""
    seat.press("ready")  # log in
    seat.wait_state(State.READY)
    seat.wait_light(GREEN)
    samples: list[float] = []
    readback: list[float] = []
    for i in range(presses):
        want = BLUE if seat.light() == GREEN else GREEN
        released = seat.press("ready", hold_s=PRESS_HOLD_S)
        changed = seat.wait_light(want, since_ns=released, timeout=5)
        samples.append(changed - released)
        if probe is not None:
            readback += [probe.read_back(seat.dut, 1), probe.read_back(seat.dut, 0)]
        seat.pump(STEP_MS / 1000 + 0.1)
        if (i + 1) % 10 == 0:
            log(f"{i + 1}/{presses} presses")
    return samples, readback


def ring_timeouts(seat: Seat, rounds: int) -> dict[str, list[float]]:
    """Offers rung out while Ready (miss limit high enough to stay Ready), the host link
    silent from the offer's ack until the light is back to Ready's: errors in ns."""
    deadline_ns = RING_LIMIT * RING_MS * 1_000_000
    light: list[float] = []
    overshoot: list[float] = []
    if seat.snapshot().state is not State.READY:
        seat.login()
    for i in range(rounds):
        since = seat.mark()
        offered = time.monotonic_ns()
        seat.send(messages.offer(9000 + i, ring_limit=RING_LIMIT, ring_ms=RING_MS))
        rang = seat.wait_light(RED, since_ns=offered, timeout=5, pump=False)
        # the light leaves ringing for Ready's green at the limit
        stopped = seat.wait_light(GREEN, since_ns=rang, pump=False,
                                  timeout=RING_LIMIT * RING_MS / 1000 + 5)  # fmt: skip
        rona = seat.wait_event(EventCode.RING_NO_ANSWER, since=since, timeout=5)
        light.append(stopped - offered - deadline_ns)
        overshoot.append((rona.a - RING_LIMIT * RING_MS) * 1e6)
        seat.wait_state(State.READY)
        seat.settle()
        log(f"ring {i + 1}/{rounds}")
    return {"light": light, "seat": overshoot}


def heartbeats(seat: Seat) -> list[Heartbeat]:
    return [m for m in seat.messages() if isinstance(m, Heartbeat)]


def measure(dut: Dut, *, presses: int, rounds: int, probe: BoardProbe | None) -> dict[str, Any]:
    """The workload on one board: boot 1 (heap, call cycle, queue overflow), boot 2
    (presses, rings); with a probe, the stack's high-water mark after each part."""
    water: dict[str, int] = {}

    def stack(part: str) -> None:
        if probe is not None:
            water[part] = probe.stack_high_water()
            log(f"stack high-water mark {part.replace('_', ' ')}: {water[part]} bytes")

    seat = Seat(dut)
    wear_headset(dut)
    hello = seat.reboot()
    first = seat.heartbeat()  # gc.collect()ed, then measured: the heap the firmware leaves
    log(f"booted: {hello.board} firmware {hello.firmware}, free heap {first.free_heap} bytes")
    stack("after_boot")
    seat.settings({SettingKey.ACW_S: ACW_S})
    call_cycle(seat)
    stack("after_call_cycle")
    beats = heartbeats(seat)
    log("queue overflow: a call the host releases on a full queue, the host acking none")
    overflow = queue_overflow(seat)
    beats.append(overflow)
    stack("after_queue_overflow")

    seat.reboot()
    seat.settings({SettingKey.STEP_MS: STEP_MS,
                   SettingKey.MISS_LIMIT: SettingKey.MISS_LIMIT.maximum})  # fmt: skip
    latencies, readback = input_to_light(seat, presses, probe)
    rings = ring_timeouts(seat, rounds)
    errors = seat.settle().errors  # also the worst loop since the last heartbeat
    beats += heartbeats(seat)
    stack("after_presses_and_rings")
    figures: dict[str, Any] = {
        "backend": dut.backend,
        "board": hello.board,
        "firmware": hello.firmware,
        # CPython has no fixed heap: the virtual board reports 0
        "free_heap_bytes": first.free_heap if dut.backend != "virtual" else None,
        "worst_loop_ms": max(b.worst_loop_ms for b in beats),
        # the worst pass of a typical heartbeat's period: the max above is one pass in the run
        "worst_loop_median_ms": statistics.median(b.worst_loop_ms for b in beats),
        "heartbeats": len(beats),
        "loop_errors": errors + overflow.errors,
        "queue_overflow_dropped_frames": overflow.dropped_frames,
        "queue_overflow_in_deepest_chain": overflow.queue_depth == 2,
        "input_to_light_presses": len(latencies),
        "input_to_light_p99_ms": ms(percentile(latencies, 0.99)),
        "input_to_light_median_ms": ms(statistics.median(latencies)),
        "input_to_light_min_ms": ms(min(latencies)),
        "input_to_light_max_ms": ms(max(latencies)),
        "ring_timeout_deadline_ms": RING_LIMIT * RING_MS,
        "ring_timeout_samples": rounds,
        "ring_timeout_error_ms": ms(max(rings["light"], key=abs)),
        "ring_timeout_light_errors_ms": [ms(e) for e in rings["light"]],
        "ring_timeout_seat_overshoot_ms": [ms(e) for e in rings["seat"]],
    }
    if readback:
        figures.update({
            "input_to_light_baseline_p99_ms": ms(percentile(readback, 0.99)),
            "input_to_light_baseline_median_ms": ms(statistics.median(readback)),
            "input_to_light_baseline_samples": len(readback),
        })  # fmt: skip
    if probe is not None:
        high = max(water.values())
        figures.update({
            "stack_size_bytes": probe.size,
            "stack_margin_bytes": probe.margin,
            "stack_limit_bytes": probe.limit,
            "stack_high_water_bytes": high,
            **{f"stack_high_water_{part}_bytes": value for part, value in water.items()},
            "stack_headroom_bytes": probe.limit - high,
            "stack_ratio": ratio(high, probe.limit),
            "stack_reached_bottom": probe.reached_bottom,
        })  # fmt: skip
    return figures


def run_backend(
    backend: str, *, presses: int, rounds: int, image: Image | None = None
) -> dict[str, Any]:
    dut = open_dut(backend)
    log(f"starting the {backend} board")
    try:
        dut.start()
        probe = None
        if isinstance(dut, QemuDut):
            probe = BoardProbe(dut.board, image or build_image())
        return measure(dut, presses=presses, rounds=rounds, probe=probe)
    finally:
        dut.stop()


GOALS: dict[str, Any] = {
    "free_heap_goal_min_bytes": FREE_HEAP_GOAL_BYTES,
    "free_heap_floor_min_bytes": FREE_HEAP_MIN_BYTES,
    "worst_loop_goal_max_ms": WORST_LOOP_GOAL_MS,
    "input_to_light_goal_p99_max_ms": INPUT_TO_LIGHT_GOAL_P99_MS,
    "ring_timeout_goal_max_abs_ms": RING_TIMEOUT_GOAL_MS,
}
NULL_FIGURES = ("free_heap_bytes", "worst_loop_ms", "input_to_light_p99_ms",
                "ring_timeout_error_ms", "stack_high_water_bytes")  # fmt: skip


def microbit_figures(presses: int, rounds: int) -> dict[str, Any]:
    """The QEMU micro:bit running the seat image, then the same workload under CPython, the
    baselines and the ratios."""
    figures: dict[str, Any] = {"backend": "qemu", **GOALS}
    try:
        log("the seat image (gateway.image: built, or taken from the cache)")
        image = build_image(log=log)
        figures.update({"image_key": image.key, "image_flash_bytes": image.flash_bytes})
        figures.update(run_backend("qemu", presses=presses, rounds=rounds, image=image))
        log("the image's free heap at its REPL, the firmware not loaded (baseline)")
        figures["free_heap_baseline_bytes"] = image_heap_at_repl(image)
        figures["microbit_boots"] = True
    except Exception as exc:
        log(f"no micro:bit figures: {exc}")
        figures.update({"microbit_boots": False,
                        "microbit_boot_error": str(exc).splitlines()[0][:300]})  # fmt: skip
        figures.update({name: figures.get(name) for name in NULL_FIGURES})
    log("the same workload under CPython (the virtual backend: baselines)")
    try:
        virtual = run_backend("virtual", presses=presses, rounds=rounds)
    except Exception as exc:
        if not figures["microbit_boots"]:
            raise
        log(f"no CPython baselines: {exc}")
        virtual = {"error": str(exc).splitlines()[0][:300]}
    figures["virtual"] = virtual
    ring_error, ring_baseline = figures["ring_timeout_error_ms"], virtual.get(
        "ring_timeout_error_ms")
    figures.update({
        "free_heap_ratio": ratio(figures["free_heap_bytes"],
                                 figures.get("free_heap_baseline_bytes")),
        "worst_loop_baseline_ms": virtual.get("worst_loop_ms"),
        "worst_loop_ratio": ratio(figures["worst_loop_ms"], virtual.get("worst_loop_ms")),
        "input_to_light_ratio": ratio(figures["input_to_light_p99_ms"],
                                      figures.get("input_to_light_baseline_p99_ms")),
        "ring_timeout_baseline_error_ms": ring_baseline,
        "ring_timeout_ratio": ratio(None if ring_error is None else abs(ring_error),
                                    None if ring_baseline is None else abs(ring_baseline)),
    })  # fmt: skip
    for line in microbit_table(figures):
        log(line)
    return figures


def microbit_table(f: dict[str, Any]) -> list[str]:
    """The micro:bit figures beside their goals, baselines and ratios, for stderr."""

    def num(value: Any, unit: str) -> str:
        return "null" if value is None else f"{value:,} {unit}"

    rows = [
        ("free heap after boot (heartbeat)", num(f["free_heap_bytes"], "B"),
         f">= {FREE_HEAP_GOAL_BYTES:,} B (at least {FREE_HEAP_MIN_BYTES:,})",
         f"{num(f.get('free_heap_baseline_bytes'), 'B')} image at its REPL",
         f["free_heap_ratio"]),
        ("worst main-loop pass (heartbeats' median)",
         f"{num(f['worst_loop_ms'], 'ms')} ({f.get('worst_loop_median_ms')})",
         f"<= {WORST_LOOP_GOAL_MS} ms",
         f"{num(f['worst_loop_baseline_ms'], 'ms')} CPython", f["worst_loop_ratio"]),
        (f"input to light p99 ({f.get('input_to_light_presses')} presses)",
         num(f["input_to_light_p99_ms"], "ms"), f"<= {INPUT_TO_LIGHT_GOAL_P99_MS} ms",
         f"{num(f.get('input_to_light_baseline_p99_ms'), 'ms')} qtest pin read-back p99",
         f["input_to_light_ratio"]),
        ("ring timeout error, link silent", num(f["ring_timeout_error_ms"], "ms"),
         f"|e| <= {RING_TIMEOUT_GOAL_MS} ms",
         f"{num(f['ring_timeout_baseline_error_ms'], 'ms')} CPython", f["ring_timeout_ratio"]),
        ("C stack high-water mark", num(f["stack_high_water_bytes"], "B"),
         f"<= {num(f.get('stack_limit_bytes'), 'B')} limit", "(the limit)", f.get("stack_ratio")),
    ]  # fmt: skip
    head = ("figure", "measured", "goal", "baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    return [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))
            for r in [head, *rows]]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark figures of the seat firmware, printed as one JSON object.",
    )
    parser.add_argument(
        "--backend",
        choices=("qemu", "virtual"),
        default="qemu",
        help="emulated micro:bit (default) or the firmware under CPython",
    )
    parser.add_argument("--presses", type=int, default=50, help="READY presses (default 50)")
    parser.add_argument("--rings", type=int, default=3, help="offers rung out (default 3)")
    parser.add_argument("--no-edge", action="store_true",
                        help="leave out the edge gateway's load figures (tools/bench_edge.py)")
    parser.add_argument("--no-pbx", action="store_true",
                        help="leave out the PBX's load figures (tools/bench_pbx.py)")
    parser.add_argument("--no-core", action="store_true",
                        help="leave out the policy/KPI core's figures (tools/bench_core.py)")
    parser.add_argument("--no-api", action="store_true",
                        help="leave out the API's live-feed figures (tools/bench_api.py)")
    parser.add_argument("--no-flash", action="store_true",
                        help="leave out the flashing figures (tools/bench_flash.py)")
    args = parser.parse_args(argv)
    if args.presses < 1 or args.rings < 1:
        parser.error("--presses and --rings must be at least 1")

    figures: dict[str, Any] = {}
    try:
        if args.backend == "qemu":
            figures.update(microbit_figures(args.presses, args.rings))
        else:
            figures.update(GOALS)
            figures.update(run_backend("virtual", presses=args.presses, rounds=args.rings))
    except Exception as exc:
        log(f"no figures: {exc}")
        return 1
    if not args.no_edge:
        figures["edge"] = edge_figures()
    if not args.no_pbx:
        figures["pbx"] = pbx_figures()
    if not args.no_core:
        figures["core"] = core_figures()
    if not args.no_api:
        figures["api"] = api_figures()
    if not args.no_flash:
        figures["flash"] = flash_figures()
    print(json.dumps(figures))
    return 0


def edge_figures() -> dict[str, Any]:
    """The edge gateway under load, full size; its failure costs only this section."""
    log("edge gateway: 256 virtual seats, 10 events/s each for 60 s (tools/bench_edge.py)")
    try:
        figures = bench_edge.measure(seats=256, rate=10.0, seconds=60.0)
    except (RuntimeError, ValueError, OSError) as exc:
        log(f"no edge gateway figures: {exc}")
        return {"error": str(exc)}
    log(bench_edge.summary(figures))
    return figures


def pbx_figures() -> dict[str, Any]:
    """The simulated PBX under load, full size; its failure costs only this section."""
    log("PBX: 200 calls/min offered to 256 virtual seats for 600 s (tools/bench_pbx.py)")
    try:
        figures = bench_pbx.measure(seats=256, rate=200.0, seconds=600.0)
    except (RuntimeError, ValueError, OSError) as exc:
        log(f"no PBX figures: {exc}")
        return {"error": str(exc)}
    log(bench_pbx.summary(figures))
    return figures


def core_figures() -> dict[str, Any]:
    """The core over a day of a 5,000-seat site; its failure costs only this section."""
    log("core: a day of a 5,000-seat site: ingest, KPI queries, memory (tools/bench_core.py)")
    try:
        figures = bench_core.measure(seats=5000)
    except (RuntimeError, ValueError, OSError) as exc:
        log(f"no core figures: {exc}")
        return {"error": str(exc)}
    log(bench_core.summary(figures))
    return figures


def api_figures() -> dict[str, Any]:
    """The API's live feed under load, full size; its failure costs only this section."""
    log("API: 500 WebSocket clients, 256 seats changing state every 2 s for 30 s "
        "(tools/bench_api.py)")
    try:
        figures = bench_api.measure(clients=500, seats=256, seconds=30.0)
    except (RuntimeError, ValueError, OSError) as exc:
        log(f"no API figures: {exc}")
        return {"error": str(exc)}
    log(bench_api.summary(figures))
    return figures


def flash_figures() -> dict[str, Any]:
    """Flashing emulated boards, parallel against sequential; its failure costs only this
    section."""
    log("flash: 8 emulated micro:bits in parallel, then one after another "
        "(tools/bench_flash.py)")
    try:
        figures = bench_flash.measure(boards=8)
    except (RuntimeError, ValueError, OSError) as exc:
        log(f"no flash figures: {exc}")
        return {"error": str(exc)}
    log(bench_flash.summary(figures))
    return figures


if __name__ == "__main__":
    sys.exit(main())
