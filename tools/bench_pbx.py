"""Load figures of the simulated PBX, printed as one JSON object (a section of `make bench`).

    python -m tools.bench_pbx                                   # 256 seats, 200 calls/min, 600 s
    python -m tools.bench_pbx --seats 32 --rate 60 --seconds 30  # a quick check
    python -m tools.bench_pbx --keep DIR                        # keep logs and configs

A process for each part, so that none shares a GIL with another: the bench's own mosquitto (a free
loopback port, never the machine's 1883; tools.bench_edge.start_broker), a seat farm with the
agents at its desks (gateway.virtual_farm: the real firmware under CPython, one TCP link per
seat; the agent robot in the same process acts on the seats' inputs, driven by what it hears
on the broker), the edge gateway (`seatlink edge --config FILE`, inventory defaults
`acw_s = 10`), the PBX (`python -m tools.bench_pbx _pbx`: `seatlink pbx`'s
PbxService from the same settings file, with the bench's arrivals and a JSON line protocol
on stdin/stdout to read its statistics) and this process, whose aiomqtt subscriber (QoS 1)
counts every call event, deduplicated by its id. SIGUSR1 to the farm or the PBX worker
writes its asyncio tasks' and threads' stacks to its log. Inbound calls only: no outbound
campaign runs.

The run: an agent is signed in at every seat (the retained seat/{seat}/agent, published by
the farm's process as the API would: the bench runs no API), each agent puts the headset on
and logs in (READY) once its seat's sign-in is heard, and the window starts once the PBX sees
all of them Ready (the warm-up, not counted). For `seconds`, callers arrive
(Poisson, `rate` a minute, queue "support" served by every seat, talk time lognormal mean
45 s sd 20 s, at least 5 s, patience exponential mean 60 s, the default ring cadence 5000 ms
x 3; fixed seed). Then arrivals stop and the calls in progress finish (the drain, at most
`drain` seconds: by default as long as the window, at least 30 s and at most 180 s; a call
still in progress after it is counted as such, not as lost).

The agent robot (gateway.demo.agents.Robot), per seat: it wears the headset; offered a call
(the PBX's `offer` on seat/{seat}/cmd), it presses the headset's call button (ANSWER) after
1-8 s with probability 0.97 (once the seat's state says ringing), else lets it ring out
(RONA: the seat pauses itself Not Ready, reason no_answer, and the robot presses READY again
after 5-15 s). The caller ends every call (the PBX's talk time; the bench's robots end none
and take no breaks, so the load is the arrivals' alone). A press the seat missed is made
again (`agents` counts every action and retry).

The figures, all measured, none asserted (goals are printed next to them): see
FIGURE_NOTES. Progress goes to stderr; stdout is the JSON object only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.contract.topics import Topics
from gateway.demo.agents import IN_HANGER, Robot, people
from tools.bench_edge import (
    REPO,
    CpuClock,
    Processes,
    gateway_log_summary,
    memory_mb,
    percentile,
    r2,
    seatlink_command,
    sleep_until,
    start_broker,
    until,
)

SITE, ROOT, GATEWAY, PBX = "benchpbx", "seatlink", "bench-gw", "bench-pbx"
QUEUE = "support"
FIRST_UID = 0x5EA71001
SEED = 4242
LATENCY_GOAL_P99_MS = 5.0
LOST_GOAL = 0
SEAT_DEFAULTS = {"acw_s": 10}  # the agents wear their headsets: no seat is away
PBX_STATS = ("received", "ignored", "published", "dropped", "stale_commands", "reconnects",
             "last_error")  # fmt: skip
TERMINAL = ("abandon", "no_answer", "drop")  # and a release without a leg's detail
LEG_DETAILS = ("transferred", "consultation ended")

FIGURE_NOTES = {
    "offered": "calls that arrived in the window (the bench's Poisson arrivals into the PBX)",
    "routing_latency_ms": "PbxService.stats.offer_latency_ms of the offers made in the "
    "window: the triggering input's arrival in the PBX (a seat message taken off the broker, "
    "or a caller's arrival) to the offer queued for publishing; offers made by a timer (an "
    "offer timed out) have no triggering input and no sample",
    "calls_lost": "calls that arrived and got no terminal call event at the bench's "
    "subscriber (release without a leg detail, abandon, no_answer, drop) and were not in "
    "progress in the PBX at the end of the drain",
    "drop_rate": "inbound: abandoned / offered (no outbound campaign in this bench, so no "
    "`drop` events)",
    "asa_s": "mean wait_s of the answer events (enter_queue -> answer, ringing included)",
    "max_queue_wait_s": "the longest wait_s of an offer (time in the queue before a seat "
    "was chosen, earlier ringing included after a RONA) or of an abandon in the queue",
    "cpu": "user + system CPU seconds / wall seconds of the window, from /proc (the "
    "machine's cores are shared by every process of the bench)",
}


def log(text: str) -> None:
    print(f"bench-pbx: {text}", file=sys.stderr, flush=True)


def reply(**fields: Any) -> None:
    """A worker's answer to one command: one JSON line on stdout."""
    print(json.dumps(fields), flush=True)


def dump_tasks() -> None:
    """SIGUSR1 in a worker: every asyncio task's stack and every thread's on stderr (its
    log), to see where a worker that does not answer waits."""
    import faulthandler

    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()


def stdin_commands(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """Lines of stdin in a queue, from a daemon thread (a blocked read never holds up the
    loop's shutdown); "" at EOF, so a worker whose bench went away stops."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def put(line: str) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        except RuntimeError:  # the loop is closed
            pass

    def read() -> None:
        try:
            for line in sys.stdin:
                put(line.strip() or "noop")
        except (OSError, ValueError):
            pass
        put("")

    threading.Thread(target=read, name="commands", daemon=True).start()
    return queue


def summary_ms(samples: Sequence[float]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "samples": len(samples),
        "p50": r3(percentile(samples, 0.5)),
        "p90": r3(percentile(samples, 0.9)),
        "p99": r3(percentile(samples, 0.99)),
        "p999": r3(percentile(samples, 0.999)),
        "max": r3(max(samples)),
    }


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


# --- the PBX's process -----------------------------------------------------------------------


class GcTimer:
    """How long the PBX's garbage collections take (gc.callbacks): a latency outlier can be
    one. `long`: (time.time(), generation, ms) of every collection of LONG_MS or more."""

    LONG_MS = 5.0

    def __init__(self) -> None:
        self.long: list[tuple[float, int, float]] = []
        self.count = collections.Counter[int]()
        self.max_ms = collections.defaultdict[int, float](float)
        self.total_ms = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        ms = (time.perf_counter() - self._start) * 1000
        gen = info.get("generation", -1)
        self.count[gen] += 1
        self.max_ms[gen] = max(self.max_ms[gen], ms)
        self.total_ms += ms
        if ms >= self.LONG_MS:
            self.long.append((time.time(), gen, round(ms, 3)))

    def figures(self) -> dict[str, Any]:
        return {
            "collections": {str(g): n for g, n in sorted(self.count.items())},
            "max_ms": {str(g): round(m, 3) for g, m in sorted(self.max_ms.items())},
            "total_ms": round(self.total_ms, 1),
            "long": self.long[:50],
        }


def pbx_worker(argv: Sequence[str]) -> int:
    """`python -m tools.bench_pbx _pbx --config FILE --rate N --seed S`: `seatlink pbx`'s
    service from the settings file (its own arrivals off), driven by lines on stdin, each
    answered with one JSON line on stdout: `go` starts the bench's Poisson arrivals, `stop`
    ends them, `status`, `stats`, `quit` (also at EOF and on SIGTERM)."""
    p = argparse.ArgumentParser(prog="bench_pbx _pbx")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from gateway.commands.edge import _run  # uvloop, as `seatlink pbx` runs
    from gateway.pbx.runner import build
    from gateway.pbx.settings import load_settings

    settings = load_settings(args.config)
    service = build(settings)
    _run(_pbx_main(service, rate=args.rate, seed=args.seed))
    reply(stopped=True)
    return 0


def outgoing(service: Any) -> int | None:
    """Messages waiting to be published (the broker side's queue)."""
    backlog = getattr(getattr(service, "broker", None), "backlog", None)
    if backlog is not None:
        return int(backlog)
    queue = getattr(service, "outgoing", None)
    return None if queue is None else len(queue)


async def _pbx_main(service: Any, *, rate: float, seed: int) -> None:
    from gateway.pbx.service import PbxService

    assert isinstance(service, PbxService)
    loop = asyncio.get_running_loop()
    commands = stdin_commands(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, commands.put_nowait, "quit")
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    timer = GcTimer()
    gc.callbacks.append(timer)
    arrived: list[int] = []
    rng = random.Random(seed)
    a = service.settings.arrivals

    async def arrivals() -> None:
        # as PbxService._poisson, on an absolute schedule (a late wake-up does not lower the
        # rate)
        rate_s = rate / 60
        due = time.monotonic()
        while True:
            due += rng.expovariate(rate_s)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            arrived.append(
                service.arrive(
                    QUEUE,
                    number=f"+8621{rng.randrange(10**8):08d}",
                    patience_s=None if a.patience is None else a.patience.draw(rng),
                    talk_s=a.talk.draw(rng),
                )
            )

    def status() -> dict[str, Any]:
        acd, st = service.acd, service.stats
        return {
            "t": time.time(),
            "arrived": len(arrived),
            "calls_active": len(acd.calls),
            "waiting": len(acd.waiting(QUEUE)),
            "ready_seats": len(acd.ready_seats(QUEUE)),
            "seats_known": acd.seats_known,
            "outgoing": outgoing(service),
            "latency_samples": len(st.offer_latency_ms),
            "counts": dict(acd.counts),
        }

    task: asyncio.Task[None] | None = None
    async with service:
        await service.wait_online(30)
        gc.freeze()  # as `seatlink pbx` does after start-up (gateway/commands/pbx.py)
        reply(pid=os.getpid(), online=True, **status())
        while True:
            cmd = await commands.get()
            if cmd in ("", "quit"):
                break
            if cmd == "go":
                if task is None:
                    task = asyncio.create_task(arrivals(), name="bench-arrivals")
                reply(**status())
            elif cmd == "stop":
                if task is not None:
                    task.cancel()
                reply(**status())
            elif cmd == "status":
                reply(**status())
            elif cmd == "stats":
                st = service.stats
                reply(
                    **status(),
                    latency_ms=[round(x, 4) for x in st.offer_latency_ms],
                    latency_kept_max=service.LATENCY_KEEP,
                    arrived_calls=arrived,
                    in_progress={str(c.id): c.phase.value for c in service.acd.calls.values()},
                    health=json.loads(service.health().dump()),
                    **{k: getattr(st, k, None) for k in PBX_STATS},
                    gc=timer.figures(),
                )
            else:
                reply(error=f"unknown command {cmd!r}")
        if task is not None:
            task.cancel()
    gc.callbacks.remove(timer)


# --- the seat farm's process, with the agents at their desks ---------------------------------


def farm_worker(argv: Sequence[str]) -> int:
    """`python -m tools.bench_pbx _farm ...`: a SeatFarm and its agent robot, driven by lines
    on stdin, each answered with one JSON line on stdout: `login` (an agent signed in at
    every seat: the robots then log in), `stats`, `quit` (also at EOF and on SIGTERM)."""
    from gateway.virtual_farm import SeatFarm

    p = argparse.ArgumentParser(prog="bench_pbx _farm")
    p.add_argument("--seats", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--map", type=Path, required=True)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    args = p.parse_args(argv)
    farm = SeatFarm(args.seats, first_uid=FIRST_UID, store_dir=args.store)
    try:
        farm.write_map(args.map)
        farm.start()
        asyncio.run(_farm_main(farm, port=args.port, seed=args.seed))
    finally:
        farm.stop()  # raises if a seat's firmware or the scheduler failed: on stderr
    reply(stopped=True)
    return 0


async def _farm_main(farm: Any, *, port: int, seed: int) -> None:
    loop = asyncio.get_running_loop()
    commands = stdin_commands(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, commands.put_nowait, "quit")
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    robot = Robot(farm, topics=Topics(site=SITE, root=ROOT), port=port, rng=random.Random(seed),
                  breaks=False, ends_p=0.0)  # fmt: skip
    tasks = [
        asyncio.create_task(robot.run(), name="agents"),
        asyncio.create_task(robot.sweep(), name="sweep"),
    ]
    try:
        await asyncio.wait_for(robot.ready.wait(), 30)
        reply(pid=os.getpid(), uids=[s.uid for s in farm.seats])
        while True:
            cmd = await commands.get()
            if cmd in ("", "quit"):
                break
            if cmd == "login":
                await robot.sign_in_all({seat: (p.agent, p.name) for seat, p in zip(
                    robot.agents, people(len(robot.agents)), strict=True)})  # fmt: skip
                reply(t=time.time())
            elif cmd == "stats":
                seats = farm.seats
                reply(
                    t=time.time(),
                    robot=dict(sorted(robot.counts.items())),
                    robot_connections=robot.connections,
                    headsets_on_hanger=sum(bool(s.board.bits & IN_HANGER) for s in seats),
                    seats_connected=sum(s.connected for s in seats),
                    connections_max=max(s.connections for s in seats),
                    discarded_bytes=sum(s.discarded for s in seats),
                    seat_errors=[f"{s.uid}: {s.error!r}" for s in seats if s.error][:5],
                )
            else:
                reply(error=f"unknown command {cmd!r}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- this process: the children, the subscriber, the run -------------------------------------


def _killed_with_parent() -> None:
    """In the child before exec: SIGKILL when the bench process ends without stopping it
    (killed itself). Not SIGTERM, as bench_edge's children get: told to stop while their
    broker goes too, the gateway (and perhaps the PBX) can stay in their reconnect loop for
    good, with nobody left to stop them."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Children(Processes):
    """bench_edge's Processes (each child in its own session, stopped in order by
    stop_all()), but killed outright if the bench dies without stopping them."""

    def spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        log_file: Path,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> subprocess.Popen[bytes]:
        out = open(log_file, "ab")
        self.files.append(out)
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=stdin,
                                stdout=out if stdout is None else stdout, stderr=out,
                                start_new_session=True, preexec_fn=_killed_with_parent)  # fmt: skip
        self.procs.append((name, proc))
        return proc


class Worker:
    """A child answering each line on its stdin with one JSON line on its stdout; the lines
    are read by a daemon thread, so a child that hangs cannot hold the bench up."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()
        threading.Thread(target=self._read, name=f"{name}-out", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self.loop.call_soon_threadsafe(self.lines.put_nowait, line)
        except (OSError, ValueError, RuntimeError):
            pass
        try:
            self.loop.call_soon_threadsafe(self.lines.put_nowait, b"")
        except RuntimeError:
            pass

    async def ask(self, line: str | None, timeout: float = 60.0) -> dict[str, Any]:
        """Send `line` (None: only read the next answer) and wait for the answer."""
        if line is not None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except OSError as exc:
                raise RuntimeError(f"the {self.name} is gone ({exc}): see its log") from None
        try:
            answer = await asyncio.wait_for(self.lines.get(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"the {self.name} did not answer {line!r} within {timeout:.0f} s"
            ) from None
        if not answer:
            raise RuntimeError(
                f"the {self.name} exited ({self.proc.poll()}) instead of answering {line!r}: "
                "see its log"
            )
        result: dict[str, Any] = json.loads(answer)
        if "error" in result:
            raise RuntimeError(f"the {self.name}: {result['error']}")
        return result


class Subscriber:
    """Every call event (deduplicated by id), the seats' states, the results of the PBX's
    seat commands and the gateway's health, from one aiomqtt client (QoS 1) with a session
    of its own (kept by the broker across a reconnect, counted if one happens)."""

    def __init__(self, port: int) -> None:
        from gateway.contract.topics import Topics

        self.port = port
        self.topics = Topics(site=SITE, root=ROOT)
        self.events: dict[str, dict[str, Any]] = {}
        self.delivery_ms: list[float] = []  # the event's t (the step, PBX clock) -> arrival
        self.duplicates = 0
        self.bad = 0
        self.states: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, str] = {}  # the PBX's seat commands: id -> command
        self.results = collections.Counter[tuple[str, str]]()  # (command, status)
        self.result_details = collections.Counter[str]()
        self.edge_health: dict[str, Any] = {}
        self.ready = asyncio.Event()
        self.connections = 0

    def count(self, kind: str) -> int:
        return sum(e["type"] == kind for e in self.events.values())

    async def run(self) -> None:
        import aiomqtt

        ident = f"bench-pbx-sub-{uuid.uuid4().hex[:8]}"
        health = self.topics.topic("gateway_health", gateway=GATEWAY)
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=ident, clean_session=False
                ) as client:
                    self.connections += 1
                    for name in ("call_event", "seat_state", "seat_cmd", "seat_cmd_result"):
                        await client.subscribe(self.topics.subscription(name), qos=1)
                    await client.subscribe(health, qos=0)
                    self.ready.set()
                    async for m in client.messages:
                        t = time.time()
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        try:
                            self._take(m.topic.value, payload, t)
                        except (ValueError, KeyError, TypeError):
                            self.bad += 1
            except aiomqtt.MqttError as exc:
                self.ready.clear()
                log(f"subscriber: connection lost ({exc}); again")
                await asyncio.sleep(0.1)

    def _take(self, topic: str, payload: bytes, t: float) -> None:
        body = json.loads(payload)
        if topic.endswith("/event"):
            if body["id"] in self.events:
                self.duplicates += 1
                return
            self.events[body["id"]] = body
            self.delivery_ms.append((t - float(body["t"])) * 1000)
        elif topic.endswith("/state"):
            self.states[topic[len(self.topics.prefix) :].split("/")[1]] = body
        elif topic.endswith("/cmd"):
            if str(body.get("id", "")).startswith(PBX + "-"):
                self.commands[body["id"]] = str(body.get("command"))
        elif topic.endswith("/cmd/result"):
            if str(body.get("id", "")).startswith(PBX + "-"):
                command = self.commands.get(body["id"], "?")
                status = str(body.get("status"))
                self.results[(command, status)] += 1
                if status != "done":
                    detail = body.get("error") or body.get("detail") or ""
                    self.result_details[f"{command} {status}: {detail}"[:120]] += 1
        else:
            self.edge_health = body

    def seats_in(self, state: str) -> int:
        return sum(s.get("state") == state for s in self.states.values())


@dataclass
class Plan:
    seats: int
    rate: float
    seconds: float
    drain_s: float
    seed: int


def write_configs(work: Path, port: int, uids: Sequence[str], seed: int) -> tuple[Path, Path]:
    """The gateway's settings and inventory, and the PBX's settings, in the work directory."""
    lines = ["[defaults]", *(f"{k} = {v}" for k, v in SEAT_DEFAULTS.items())]
    for i, uid in enumerate(uids):
        lines += ["[[seat]]", f'seat = "s{i + 1:03d}"', f'board = "{uid}"']
    (work / "inventory.toml").write_text("\n".join(lines) + "\n")
    edge = work / "edge.toml"
    edge.write_text(
        f'gateway = "{GATEWAY}"\nsite = "{SITE}"\nroot = "{ROOT}"\n'
        'links_file = "seats.json"\ninventory = "inventory.toml"\noutbox = "outbox.db"\n'
        "health_interval_s = 1.0\n"
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    pbx = work / "pbx.toml"
    pbx.write_text(
        f'pbx = "{PBX}"\nsite = "{SITE}"\nroot = "{ROOT}"\n'
        'store = "pbx.db"\nring_limit = 3\nring_ms = 5000\n'
        f"seed = {seed}\n"
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[queues.{QUEUE}]\nseats = "*"\n'
        '[compliance]\ndnc = "dnc.db"\n'
        "# the bench makes the arrivals itself (rate, start and stop): none of the PBX's own\n"
        "[arrivals]\nrate_per_min = 0\n"
        '[arrivals.patience]\ndist = "exponential"\nmean_s = 60.0\n'
        '[arrivals.talk]\ndist = "lognormal"\nmean_s = 45.0\nsd_s = 20.0\nmin_s = 5.0\n'
    )
    return edge, pbx


def call_event_counts(counts: dict[str, int]) -> dict[str, int]:
    """The PBX's counts of call events by type (its Counter has other keys too)."""
    from gateway.contract.payloads import CallEventType

    kinds = typing.get_args(CallEventType)
    return {k: v for k, v in counts.items() if k in kinds}


def is_terminal(e: dict[str, Any]) -> bool:
    return e["type"] in TERMINAL or (e["type"] == "release" and e["detail"] not in LEG_DETAILS)


def analyse(
    sub: Subscriber, stats: dict[str, Any], n0: int, n1: int, t0: float, t1: float
) -> dict[str, Any]:
    """The figures from the subscriber's call events and the PBX's statistics."""
    by_call: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for e in sub.events.values():
        by_call[int(e["call"])].append(e)
    arrived = [int(c) for c in stats["arrived_calls"]]
    in_progress = {int(c): phase for c, phase in stats["in_progress"].items()}
    ended = {c: sum(is_terminal(e) for e in es) for c, es in by_call.items()}
    lost = [c for c in arrived if not ended.get(c) and c not in in_progress]
    missing_steps = 0
    for es in by_call.values():
        steps = {e["step"] for e in es}
        missing_steps += max(steps) - len(steps)
    events = list(sub.events.values())

    def of(kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["type"] == kind]

    answers, abandons, offers = of("answer"), of("abandon"), of("offer")
    answered = len({e["call"] for e in answers})
    abandoned = len({e["call"] for e in abandons})
    offered = len(arrived)
    waits = [float(e["wait_s"]) for e in answers if e["wait_s"] is not None]
    queue_waits = [float(e["wait_s"]) for e in offers if e["wait_s"] is not None]
    queue_waits += [float(e["wait_s"]) for e in abandons if e["seat"] is None and e["wait_s"]]
    latency = [float(x) for x in stats["latency_ms"]]
    window = latency[n0:n1]
    pbx_counts = call_event_counts(stats["counts"])
    seen_counts = collections.Counter(e["type"] for e in events)
    rona = of("ring_no_answer")
    return {
        "offered": offered,
        "offered_per_min": round(offered / ((t1 - t0) / 60), 1) if t1 > t0 else None,
        "answered": answered,
        "abandoned": abandoned,
        "abandoned_while_ringing": sum(e["seat"] is not None for e in abandons),
        "abandon_rate": round(abandoned / offered, 4) if offered else None,
        "drop_rate": round(abandoned / offered, 4) if offered else None,
        "drop_rate_definition": FIGURE_NOTES["drop_rate"],
        "rona": len(rona),
        "rona_by_detail": dict(collections.Counter(e["detail"] for e in rona)),
        "asa_s": r2(statistics.fmean(waits)) if waits else None,
        "answer_wait_p90_s": r2(percentile(waits, 0.9)) if waits else None,
        "max_answer_wait_s": r2(max(waits)) if waits else None,
        "max_queue_wait_s": r2(max(queue_waits)) if queue_waits else None,
        "routing_latency_ms": {
            **summary_ms(window),
            "over_goal": sum(x > LATENCY_GOAL_P99_MS for x in window),
            "goal_p99_ms": LATENCY_GOAL_P99_MS,
        },
        "routing_latency_drain_ms": summary_ms(latency[n1:]),
        "offers": len(offers),
        "calls_lost": len(lost),
        "calls_lost_goal_max": LOST_GOAL,
        "calls_lost_examples": {
            str(c): [
                (e["step"], e["type"], e["seat"])
                for e in sorted(by_call.get(c, []), key=lambda e: e["step"])
            ]
            for c in lost[:5]
        },
        "calls_in_progress_at_end": len(in_progress),
        "calls_in_progress_phases": dict(collections.Counter(in_progress.values())),
        "calls_ended_more_than_once": sum(n > 1 for n in ended.values()),
        "calls_unknown_to_the_bench": sum(c not in set(arrived) for c in by_call),
        "call_events": len(events),
        "call_events_pbx_counted": sum(pbx_counts.values()),
        "call_events_missing_at_subscriber": sum(pbx_counts.values()) - len(events),
        "call_events_missing_steps": missing_steps,
        "call_events_duplicates": sub.duplicates,
        "call_event_counts": dict(sorted(seen_counts.items())),
        "call_event_counts_pbx": dict(sorted(pbx_counts.items())),
        "call_event_delivery_ms": summary_ms(sub.delivery_ms),
    }


async def run_bench(plan: Plan, work: Path, procs: Processes) -> dict[str, Any]:
    broker, port = start_broker(work, procs, nodelay=True)
    log(f"mosquitto on 127.0.0.1:{port}; work directory {work}")
    sub = Subscriber(port)
    sub_task = asyncio.create_task(sub.run(), name="subscriber")
    try:
        await until(sub.ready.is_set, 10, "the subscriber")
        return await _run(plan, work, procs, broker, port, sub)
    finally:
        sub_task.cancel()
        try:
            await sub_task
        except asyncio.CancelledError:
            pass


async def _run(
    plan: Plan,
    work: Path,
    procs: Processes,
    broker: subprocess.Popen[bytes],
    port: int,
    sub: Subscriber,
) -> dict[str, Any]:
    n = plan.seats
    me = [sys.executable, "-m", "tools.bench_pbx"]
    farm_proc = procs.spawn(
        "farm",
        [*me, "_farm", "--seats", str(n), "--port", str(port), "--map", str(work / "seats.json"),
         "--store", str(work / "farm-store"), "--seed", str(plan.seed + 1)],
        log_file=work / "farm.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    farm = Worker("seat farm", farm_proc)
    hello = await farm.ask(None)
    edge_cfg, pbx_cfg = write_configs(work, port, hello["uids"], plan.seed)
    edge = procs.spawn(
        "gateway", [*seatlink_command(), "edge", "--config", str(edge_cfg)],
        log_file=work / "gateway.log",
    )  # fmt: skip
    pbx_proc: subprocess.Popen[bytes] | None = None

    def alive() -> None:
        for name, proc in (("gateway", edge), ("seat farm", farm_proc), ("mosquitto", broker),
                           ("PBX", pbx_proc)):  # fmt: skip
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode}: see its log")

    log(f"{n} seats (pid {farm_proc.pid}), gateway (pid {edge.pid}): waiting for every seat")
    await until(lambda: len(sub.states) == n, 90, f"the {n} seats' states", alive)
    pbx_proc = procs.spawn(
        "pbx",
        [*me, "_pbx", "--config", str(pbx_cfg), "--rate", str(plan.rate),
         "--seed", str(plan.seed)],
        log_file=work / "pbx.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    pbx = Worker("PBX", pbx_proc)
    await pbx.ask(None, timeout=60)
    log(f"PBX online (pid {pbx_proc.pid}); an agent signed in at every seat, each logs in")
    t_login = time.time()
    await farm.ask("login", timeout=60)
    ready = {"n": 0}

    async def all_ready() -> bool:
        ready["n"] = (await pbx.ask("status"))["ready_seats"]
        return ready["n"] == n and sub.seats_in("ready") == n

    deadline = time.monotonic() + 120
    while not await all_ready():
        alive()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"timed out after 120 s waiting for {n} seats Ready (the PBX sees "
                f"{ready['n']}, the subscriber {sub.seats_in('ready')})"
            )
        await asyncio.sleep(0.5)
    warmup_s = time.time() - t_login
    clock = CpuClock({"gateway": edge.pid, "pbx": pbx_proc.pid, "farm": farm_proc.pid,
                      "broker": broker.pid, "bench": os.getpid()})  # fmt: skip
    clock.mark("t0")
    go = await pbx.ask("go")
    t0, n0 = float(go["t"]), int(go["latency_samples"])
    t1 = t0 + plan.seconds
    log(f"warm-up {warmup_s:.1f} s: all {n} seats Ready; {plan.rate:g} calls/min for "
        f"{plan.seconds:g} s")  # fmt: skip
    peak = 0.0
    last = "t0"
    step = 0
    while time.time() < t1 - 0.5:
        await asyncio.sleep(min(10.0, t1 - time.time()))
        alive()
        step += 1
        clock.mark(f"s{step}")
        peak = max(peak, clock.cores(last, f"s{step}")["pbx"] or 0.0)
        last = f"s{step}"
        s = await pbx.ask("status")
        log(f"{time.time() - t0:5.0f} s: {s['arrived']} arrived, {s['calls_active']} in "
            f"progress, {s['waiting']} waiting, {s['ready_seats']} seats Ready, "
            f"{sub.count('answer')} answered, {sub.count('abandon')} abandoned, "
            f"{sub.count('ring_no_answer')} RONA; PBX CPU {clock.cores('t0', last)['pbx']} "
            "cores")  # fmt: skip
    await sleep_until(t1)
    stop = await pbx.ask("stop")
    clock.mark("t1")
    t1, n1 = float(stop["t"]), int(stop["latency_samples"])
    memory = memory_mb(pbx_proc.pid)
    log(f"arrivals stopped ({stop['arrived']} calls); draining {stop['calls_active']} "
        f"calls in progress (at most {plan.drain_s:g} s)")  # fmt: skip
    drain_end = time.monotonic() + plan.drain_s
    while True:
        s = await pbx.ask("status")
        if s["calls_active"] == 0 or time.monotonic() > drain_end:
            break
        alive()
        await asyncio.sleep(1.0)
    drain_s = time.time() - t1
    clock.mark("drained")
    log(f"drained in {drain_s:.0f} s, {s['calls_active']} calls still in progress; "
        "waiting for the last call events")  # fmt: skip
    counted = sum(call_event_counts(s["counts"]).values())
    try:
        await until(lambda: len(sub.events) >= counted, 15, "every call event", alive)
    except RuntimeError as exc:
        log(str(exc))
    await asyncio.sleep(1.0)  # the seat commands' results
    stats = await pbx.ask("stats", timeout=60)
    memory_end = memory_mb(pbx_proc.pid)
    robot = await farm.ask("stats")
    edge_health = dict(sub.edge_health)
    states = collections.Counter(str(st.get("state")) for st in sub.states.values())
    figures = analyse(sub, stats, n0, n1, t0, t1)

    log("stopping the PBX, the gateway and the seats")
    await quit_worker(pbx)
    pbx_status = await asyncio.to_thread(Processes.stop, pbx_proc, 15.0)
    edge_status = await asyncio.to_thread(Processes.stop, edge, 15.0)
    await quit_worker(farm)
    await asyncio.to_thread(Processes.stop, farm_proc, 15.0)
    window = clock.cores("t0", "t1")
    drain = clock.cores("t1", "drained")
    result: dict[str, Any] = {
        "seats": n,
        "rate_per_min": plan.rate,
        "seconds": plan.seconds,
        "seed": plan.seed,
        "machine_cpus": os.cpu_count(),
        "warmup_s": round(warmup_s, 1),
        "drain_s": round(drain_s, 1),
        **figures,
        "pbx_cpu_cores": window["pbx"],
        "pbx_cpu_peak_10s_cores": round(peak, 3),
        "pbx_cpu_cores_drain": drain["pbx"],
        "pbx_rss_mb": memory.get("VmRSS"),
        "pbx_peak_rss_mb": memory_end.get("VmHWM"),
        "pbx_gc": {
            **stats["gc"],
            # when, from the window's start (negative: before it)
            "long": [{"at_s": round(t - t0, 1), "generation": g, "ms": ms}
                     for t, g, ms in stats["gc"]["long"]],
        },  # fmt: skip
        "gateway_cpu_cores": window["gateway"],
        "farm_cpu_cores": window["farm"],
        "broker_cpu_cores": window["broker"],
        "bench_cpu_cores": window["bench"],
        "pbx_stats": {**{k: stats.get(k) for k in (*PBX_STATS, "outgoing")},
                      "health_lost": stats["health"].get("lost")},  # fmt: skip
        "pbx_latency_samples_kept_max": stats["latency_kept_max"],
        "seat_cmds": dict(collections.Counter(sub.commands.values())),
        "seat_cmd_results": {f"{c} {st}": k for (c, st), k in sorted(sub.results.items())},
        "seat_cmd_result_problems": dict(sub.result_details.most_common(8)),
        "seat_states_at_end": dict(states),
        "agents": robot["robot"],
        "headsets_on_hanger_at_end": robot["headsets_on_hanger"],
        "gateway_health": {k: edge_health.get(k) for k in (
            "links_open", "seats_online", "quarantined", "outbox_depth",
            "outbox_dropped_total", "published", "reconnects")},  # fmt: skip
        "subscriber_connections": sub.connections,
        "subscriber_bad_messages": sub.bad,
        "pbx_exit_status": pbx_status,
        "gateway_exit_status": edge_status,
        **{k.replace("gateway_", "pbx_", 1): v
           for k, v in gateway_log_summary(work / "pbx.log").items()},
        **gateway_log_summary(work / "gateway.log"),
        "notes": FIGURE_NOTES,
    }  # fmt: skip
    farm_log = (work / "farm.log").read_text(errors="replace").strip()
    if farm_log:
        result["farm_log_tail"] = farm_log.splitlines()[-5:]
    return result


async def quit_worker(worker: Worker) -> None:
    """`quit`, then its exit (what is still running after 15 s is stopped by the caller)."""
    try:
        await worker.ask("quit", timeout=30)
        await asyncio.to_thread(worker.proc.wait, 15)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log(f"{worker.name}: {exc}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def default_drain(seconds: float) -> float:
    """The window's length, at least 30 s and at most 180 s (talk time is lognormal, mean
    45 s, sd 20 s: one call in about 4,000 talks longer than 180 s)."""
    return min(180.0, max(30.0, seconds))


def measure(
    *,
    seats: int = 256,
    rate: float = 200.0,
    seconds: float = 600.0,
    drain_s: float | None = None,
    seed: int = SEED,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Run the bench (needs mosquitto); every process and the work directory are gone when
    it returns or raises, unless `keep` names a directory to leave them in."""
    if drain_s is None:
        drain_s = default_drain(seconds)
    if seats < 1 or seats > 999 or rate <= 0 or seconds <= 0 or drain_s < 0:
        raise ValueError("need 1 <= seats <= 999, rate > 0, seconds > 0 and drain >= 0")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="bench-pbx-", dir=keep))
    else:
        work = Path(tempfile.mkdtemp(prefix="seatlink-bench-pbx-"))
    procs = Children()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan = Plan(seats=seats, rate=rate, seconds=seconds, drain_s=drain_s, seed=seed)
        return asyncio.run(run_bench(plan, work.resolve(), procs))
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs and configs kept in {work}")


def summary(f: dict[str, Any]) -> str:
    lat = f.get("routing_latency_ms") or {}
    return (
        f"{f['seats']} seats, {f['rate_per_min']:g} calls/min for {f['seconds']:g} s: "
        f"{f.get('offered')} offered, {f.get('answered')} answered, {f.get('abandoned')} "
        f"abandoned ({f.get('abandon_rate')}), {f.get('rona')} RONA; routing p99 "
        f"{lat.get('p99')} ms (goal <= {LATENCY_GOAL_P99_MS:g}), max {lat.get('max')} ms; "
        f"calls lost {f.get('calls_lost')} (goal {LOST_GOAL}), in progress at the end "
        f"{f.get('calls_in_progress_at_end')}; ASA {f.get('asa_s')} s; PBX CPU "
        f"{f.get('pbx_cpu_cores')} cores, peak RSS {f.get('pbx_peak_rss_mb')} MB"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    workers: dict[str, Callable[[Sequence[str]], int]] = {
        "_farm": farm_worker,
        "_pbx": pbx_worker,
    }
    if argv[:1] and argv[0] in workers:
        return workers[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_pbx",
        description="Load figures of the simulated PBX with virtual seats and agents, as one "
        "JSON object.",
    )
    parser.add_argument("--seats", type=int, default=256, help="virtual seats (default 256)")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="calls offered a minute (default 200)"
    )
    parser.add_argument(
        "--seconds", type=float, default=600.0, help="measured window (default 600)"
    )
    parser.add_argument(
        "--drain", type=float, metavar="S",
        help="after the window, at most this long for the calls in progress to end "
        "(default: the window's length, at least 30 and at most 180)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=SEED, help=f"traffic seed (default {SEED})")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the work directory (logs, configs) under DIR"
    )
    args = parser.parse_args(argv)
    try:
        figures = measure(seats=args.seats, rate=args.rate, seconds=args.seconds,
                          drain_s=args.drain, seed=args.seed, keep=args.keep)  # fmt: skip
    except (RuntimeError, ValueError, OSError) as exc:
        log(f"no figures: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    log(summary(figures))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
