"""Benchmark figures of the seat firmware on an emulated micro:bit, printed as one JSON object.

    python -m tools.bench                      # QEMU micro:bit v1 (what `make bench` runs)
    python -m tools.bench --backend virtual    # the firmware under CPython, for development

The figures, all measured, none asserted (goals are printed next to them):

- free_heap_bytes: the free-memory field of the first heartbeat after boot (goal >= 3000);
- worst_loop_ms: the worst main-loop pass any heartbeat reported during the run (goal <= 20);
- input_to_light_*_ms: from the READY release (the edge the seat acts on) to the light's
  change, both stamped outside the board (qtest, time.monotonic_ns), over N presses
  toggling Ready / Not Ready;
- ring_timeout_*: an offer rung out (ring_limit x ring_ms) against its deadline, the offer's
  write time + ring_limit x ring_ms: when the light left ringing, when the ring-no-answer
  frame arrived, and how far past the limit the seat's own count was.

On QEMU it also prints the load profile: main.py executes the firmware's parts (fw0, fw1, ...)
one after another into one namespace (gateway/bundle.py); a copy of that loader that reports
the free heap after each part shows where the micro:bit v1's heap goes, and how far the load
gets when it does not fit (`load_*`); and the C stack: the limit, what a part uses at boot,
what each Python call adds, and what the firmware's deepest call chain needs (`stack_*`).
When the firmware does not boot on QEMU, the board figures are null, `microbit_boots` is
false with the reason, and the figures of the same firmware under CPython follow under
`virtual` (clearly not the board's).

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

Progress goes to stderr; stdout is the JSON object only. Exit status 1 if nothing could be
measured at all, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import serial

from gateway.seatlink import messages
from gateway.seatlink.codec import EventCode, SettingKey, State
from gateway.seatlink.messages import Event, Heartbeat, parse_message
from hil_tests.dut import BLUE, GREEN, RED, Dut, open_dut
from hil_tests.seat import Seat
from tools import bench_api, bench_core, bench_edge, bench_flash, bench_pbx

FREE_HEAP_GOAL_BYTES = 3000
WORST_LOOP_GOAL_MS = 20
PRESS_HOLD_S = 0.1  # longer than the 30 ms debounce lockout
STEP_MS = 300  # shortest step window, so presses 0.4 s apart toggle instead of stepping
RING_LIMIT, RING_MS = 2, 1000


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with `fraction` of them at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def ms(ns: float) -> float:
    return round(ns / 1e6, 2)


def input_to_light(seat: Seat, presses: int) -> list[float]:
    """Latency samples in ns: READY released -> light changed (green <-> blue)."""
    seat.press("ready")  # log in
    seat.wait_state(State.READY)
    seat.wait_light(GREEN)
    samples: list[float] = []
    for i in range(presses):
        want = BLUE if seat.light() == GREEN else GREEN
        released = seat.press("ready", hold_s=PRESS_HOLD_S)
        changed = seat.wait_light(want, since_ns=released, timeout=5)
        samples.append(changed - released)
        seat.pump(STEP_MS / 1000 + 0.1)
        if (i + 1) % 10 == 0:
            log(f"{i + 1}/{presses} presses")
    return samples


def ring_timeouts(seat: Seat, rounds: int) -> dict[str, list[float]]:
    """Offers rung out while Ready (miss limit high enough to stay Ready): errors in ns."""
    deadline_ns = RING_LIMIT * RING_MS * 1_000_000
    light: list[float] = []
    frame: list[float] = []
    overshoot: list[float] = []
    if seat.snapshot().state is not State.READY:
        seat.login()
    for i in range(rounds):
        since = seat.mark()
        offered = time.monotonic_ns()
        seat.send(messages.offer(9000 + i, ring_limit=RING_LIMIT, ring_ms=RING_MS))
        rang = seat.wait_light(RED, since_ns=offered, timeout=5)
        # the light leaves ringing for Ready's green at the limit
        stopped = seat.wait_light(GREEN, since_ns=rang, timeout=RING_LIMIT * RING_MS / 1000 + 5)
        rona = seat.wait_event(EventCode.RING_NO_ANSWER, since=since, timeout=5)
        arrived = next(
            r.t for r in seat.session.received
            if r.frame is not None and r.frame.kind is rona.KIND
            and isinstance(m := parse_message(r.frame), Event) and m.seq == rona.seq
        )  # fmt: skip
        light.append(stopped - offered - deadline_ns)
        frame.append(arrived * 1e9 - offered - deadline_ns)
        overshoot.append((rona.a - RING_LIMIT * RING_MS) * 1e6)
        seat.wait_state(State.READY)
        seat.pump(0.3)
        log(f"ring {i + 1}/{rounds}")
    return {"light": light, "frame": frame, "seat": overshoot}


def worst_loop(seat: Seat) -> tuple[int, int]:
    """(worst loop ms over every heartbeat of the session, heartbeats seen)."""
    beats = [m for m in seat.messages() if isinstance(m, Heartbeat)]
    return max(b.worst_loop_ms for b in beats), len(beats)


def measure(dut: Dut, *, presses: int, rounds: int) -> dict[str, Any]:
    seat = Seat(dut)
    hello = seat.reboot()
    first = seat.heartbeat()  # gc.collect()ed, then measured: the heap the firmware leaves
    log(f"booted: {hello.board} firmware {hello.firmware}, free heap {first.free_heap} bytes")
    seat.settings({SettingKey.STEP_MS: STEP_MS, SettingKey.AWAY_S: 0,
                   SettingKey.MISS_LIMIT: SettingKey.MISS_LIMIT.maximum})  # fmt: skip
    latencies = input_to_light(seat, presses)
    rings = ring_timeouts(seat, rounds)
    seat.heartbeat()  # the worst loop since the last heartbeat, too
    worst, beats = worst_loop(seat)
    errors = seat.settle().errors
    return {
        "backend": dut.backend,
        "board": hello.board,
        "firmware": hello.firmware,
        # CPython has no fixed heap: the virtual board reports 0
        "free_heap_bytes": first.free_heap if dut.backend != "virtual" else None,
        "free_heap_goal_min_bytes": FREE_HEAP_GOAL_BYTES,
        "worst_loop_ms": worst,
        "worst_loop_goal_max_ms": WORST_LOOP_GOAL_MS,
        "heartbeats": beats,
        "loop_errors": errors,
        "input_to_light_presses": len(latencies),
        "input_to_light_p99_ms": ms(percentile(latencies, 0.99)),
        "input_to_light_median_ms": ms(statistics.median(latencies)),
        "input_to_light_min_ms": ms(min(latencies)),
        "input_to_light_max_ms": ms(max(latencies)),
        "ring_timeout_deadline_ms": RING_LIMIT * RING_MS,
        "ring_timeout_samples": rounds,
        "ring_timeout_error_ms": ms(max(rings["light"], key=abs)),
        "ring_timeout_light_errors_ms": [ms(e) for e in rings["light"]],
        "ring_timeout_frame_errors_ms": [ms(e) for e in rings["frame"]],
        "ring_timeout_seat_overshoot_ms": [ms(e) for e in rings["seat"]],
    }


# main.py's loader (gateway.bundle.LOADER), reporting "part free-before free-after" per part
# and stopping before the last part, which would start the main loop.
PROFILE_LOADER = """import gc
g={}
i=0
while 1:
 try:open('fw'+str(i+1)).close();s=open('fw'+str(i)).read()
 except OSError:break
 gc.collect();a=gc.mem_free();exec(s,g);s=None;gc.collect();print('@',i,a,gc.mem_free());i+=1
gc.collect();print('@ loaded',gc.mem_free())
"""


def boot_output(files: dict[str, bytes], *, until: Sequence[str], seconds: float) -> str:
    """What an emulated micro:bit with `files` prints from its reset until one of `until`
    (at boot, as the real loader runs: under the REPL's exec the stack is deeper)."""
    from gateway.rig import EmulatedBoard

    with EmulatedBoard() as board:
        board.install(files, reset=False)
        port = serial.serial_for_url(board.serial_url, timeout=0.2)
        try:
            board.reset()
            out = b""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not any(u.encode() in out for u in until):
                out += port.read(256)
            out += port.read(256)
        finally:
            port.close()
    return out.decode("ascii", "replace").replace("\r", "").replace("\x00", "")


def load_profile() -> dict[str, Any]:
    """Free heap part by part as the micro:bit v1 loads the firmware (QEMU)."""
    from gateway.bundle import link_bundle

    files = {f.name: f.data for f in link_bundle().files}
    parts = sorted((n for n in files if not n.endswith(".py")), key=lambda n: int(n[2:]))
    files["main.py"] = PROFILE_LOADER.encode("ascii")
    text = boot_output(files, until=("@ loaded", "Error"), seconds=10)
    rows = [line.split() for line in text.splitlines() if line.startswith("@ ")]
    err = "\n".join(line for line in text.splitlines() if "Error" in line)
    steps = [(int(r[1]), int(r[2]), int(r[3])) for r in rows if r[1].isdigit()]
    start = steps[0][1] if steps else None
    loaded = next((int(r[2]) for r in rows if r[1] == "loaded"), None)
    error = err.strip().splitlines()[-1] if err.strip() else None
    return {
        "load_parts": len(parts) - 1,  # the last part only calls the main loop
        "load_parts_loaded": len(steps),
        "load_free_before_bytes": start,
        "load_free_after_part_bytes": [after for _, _, after in steps],
        "load_part_bytes": [len(files[n]) for n in parts[:-1]],
        "load_error": error,
        "free_heap_after_load_bytes": loaded,
    }


STACK_PROBE = """import micropython
def d(n):
 if n:return d(n-1)
 return micropython.stack_use()
print('@ stack',micropython.stack_use(),d(0),d(3))
micropython.mem_info()
"""


def stack_profile() -> dict[str, Any]:
    """C stack on the micro:bit v1 as the firmware would use it: what is used where a part
    runs at boot, what one Python call adds, the limit, and what the firmware's deepest
    call chain (gateway.bundle.call_depth) would need."""
    from gateway.bundle import LOADER, PART_PREFIX, call_depth, link_bundle, minify
    from gateway.linker import NAMESPACE

    bundle = link_bundle()
    chain = call_depth(bundle.module_sources()[NAMESPACE],
                       entry=bundle.symbols["loop"]["run"].short)
    readable = bundle.readable_names()
    files = {"main.py": minify(LOADER % PART_PREFIX).encode("ascii"),
             f"{PART_PREFIX}0": STACK_PROBE.encode("ascii")}
    text = boot_output(files, until=("out of",), seconds=5)
    row = next(line.split() for line in text.splitlines() if line.startswith("@ stack"))
    limit = int(text.split("out of")[1].split()[0])
    at_part, at_call, three_deeper = int(row[2]), int(row[3]), int(row[4])
    per_call = (three_deeper - at_call) // 3
    return {
        "stack_limit_bytes": limit,
        "stack_used_in_a_part_at_boot_bytes": at_part,
        "stack_per_python_call_bytes": per_call,
        "firmware_call_chain": [readable.get(c, c) for c in chain],
        "firmware_stack_needed_bytes": at_part + per_call * len(chain),
    }


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
    if args.backend == "qemu":
        log("load profile of the firmware on the emulated micro:bit")
        figures.update(load_profile())
        log("C stack on the emulated micro:bit")
        figures.update(stack_profile())
    try:
        figures.update(run_backend(args.backend, presses=args.presses, rounds=args.rings))
        if args.backend == "qemu":
            figures["microbit_boots"] = True
    except Exception as exc:
        if args.backend != "qemu":
            log(f"no figures: {exc}")
            return 1
        log(f"the firmware does not boot on the emulated micro:bit: {exc}")
        figures.update({"backend": "qemu", "microbit_boots": False,
                        "microbit_boot_error": str(exc).splitlines()[0][:300],
                        "free_heap_bytes": None, "worst_loop_ms": None,
                        "input_to_light_p99_ms": None, "ring_timeout_error_ms": None})  # fmt: skip
        log("measuring the same firmware under CPython instead (not the board's figures)")
        figures["virtual"] = run_backend("virtual", presses=args.presses, rounds=args.rings)
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


def run_backend(backend: str, *, presses: int, rounds: int) -> dict[str, Any]:
    dut = open_dut(backend)
    log(f"starting the {backend} board")
    try:
        dut.start()
        return measure(dut, presses=presses, rounds=rounds)
    finally:
        dut.stop()


if __name__ == "__main__":
    sys.exit(main())
