"""Load figures of the edge gateway, printed as one JSON object (a section of `make bench`).

    python -m tools.bench_edge                                  # 256 seats, 10/s, 60 s
    python -m tools.bench_edge --seats 16 --seconds 10          # a quick check
    python -m tools.bench_edge --keep DIR                       # keep logs, trace, configs

Four processes, so that none shares a GIL with another: the bench's own mosquitto (a free
loopback port, never the machine's 1883), a seat farm (gateway.virtual_farm: the real
firmware under CPython, one TCP link per seat, the load generator pressing HELP `rate`
times a second per seat, and the trace of every reliable frame's first write), the gateway
(`seatlink edge --config FILE`, its outbox and logs in the work directory) and this
process, whose aiomqtt subscriber (QoS 1, subscribed before the gateway starts) stamps
every seat event with time.time() on arrival.

The seats start pressing before the gateway runs; once it is on every link, every seat is
reset (a new boot counter, a hello the gateway hears: see farm_worker) and the window starts
a second after all of them are online. The broker runs with set_tcp_nodelay true (mosquitto's
default is false, `--broker-nagle`), so what the broker sends is not held back by Nagle's
algorithm, and max_queued_messages 0, so the bench's subscriber cannot lose messages there.

The figures, all measured, none asserted (goals are printed next to them):

- latency_*: subscriber arrival minus the farm's first write of the frame, over every
  reliable frame (B, S, E, X) first written in the `seconds`-long window after the warm-up
  (every seat's hello delivered); split at the payload's `t` (when the gateway took it)
  into seat -> gateway and gateway -> subscriber;
- events_lost: frames the farm's trace says the seats wrote (the whole run, warm-up and
  outage included) that never reached the subscriber once the gateway's outbox was empty;
  duplicates (an id twice) and order violations (a seq not above the seat's previous one,
  after dropping repeats) too;
- gateway_cpu_* / gateway_*rss*: from /proc/PID/stat (user + system) and /proc/PID/status
  (VmRSS, VmHWM) of the gateway process and its children (the event drainer), over the
  window; the farm's, broker's and this process's CPU next to them (the machine's cores
  are shared);
- throughput: see THROUGHPUT_METHOD.

Progress goes to stderr; stdout is the JSON object only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import ctypes
import getpass
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
SITE, RAW_SITE, ROOT, GATEWAY = "bench", "benchraw", "seatlink", "bench-gw"
# PUBLISH packets the broker took from clients: in the load window only the gateway publishes
SYS_PUBLISHED = "$SYS/broker/publish/messages/received"
FIRST_UID = 0x5EA70001
P99_GOAL_MS = 25
LOST_GOAL = 0
RATIO_GOAL = 0.5
WINDOW = 64  # gateway.edge.drain.Drainer.BATCH: publishes awaited together
INFLIGHT = 200  # the gateway's aiomqtt client: max_inflight_messages
GUARD_S = 1.0  # between the latency window's end and the broker's freeze
HEALTH_S = 1.0  # the gateway's health_interval_s (its default is 5)

LATENCY_METHOD = (
    "subscriber arrival (time.time() when aiomqtt hands the message over) minus the farm's "
    "time.time() at the frame's first write on the seat's TCP link, for every reliable frame "
    "first written in the window; seat->gateway ends at the payload's t (the gateway took "
    "it, before the outbox commit and the seat's ack), gateway->subscriber starts there")
THROUGHPUT_METHOD = (
    "gateway: right after the window the bench's mosquitto is frozen (SIGSTOP) for "
    "freeze_s while the seats keep pressing, so the gateway's durable outbox fills (it "
    "keeps storing and acking the seats); then the load stops and 1 s later the broker is "
    "thawed (SIGCONT): with the links idle the drain is the gateway's only work and the "
    "gateway is the bottleneck, so backlog / (last arrival at the subscriber - thaw) is its "
    "delivered msgs/s. raw: a process of its own with one aiomqtt client publishes the same "
    "number of the same payloads (QoS 1, to per-seat topics under site " + RAW_SITE + ", "
    f"batches of {WINDOW} awaited with asyncio.gather, {INFLIGHT} in flight, as the "
    "gateway's drainer) to the same broker, with the same subscriber on: count / (last "
    "arrival - first publish). ratio = gateway / raw, both timed at the subscriber; the "
    "PUBACK-side raw rate is printed too. offered_* is the load phase's rate, which the "
    "gateway only has to keep up with: not its capacity; where it did not keep up "
    "(gateway_kept_up false), window_delivered_per_s is what it delivered while also taking "
    "the seats' frames, and throughput_ratio_under_load compares that with raw")


def log(text: str) -> None:
    print(f"bench-edge: {text}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with `fraction` of them at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def r2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# --- processes -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the bench process goes (even by SIGKILL)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Processes:
    """Every child the bench starts, each in its own session (a Ctrl-C reaches the bench
    only, which then stops them in order); stop_all() ends whatever is still running."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.files: list[IO[bytes]] = []

    def spawn(self, name: str, cmd: list[str], *, log_file: Path,
              stdin: int | None = subprocess.DEVNULL,
              stdout: int | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        out = open(log_file, "ab")
        self.files.append(out)
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=stdin,
                                stdout=out if stdout is None else stdout, stderr=out,
                                start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
        self.procs.append((name, proc))
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)  # a frozen broker cannot act on SIGTERM
                proc.terminate()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        for f in self.files:
            f.close()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 1883:
            return port


def mosquitto_executable() -> str:
    # Debian installs the broker in sbin, which is not on every user's PATH
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    exe = shutil.which("mosquitto", path=path)
    if exe is None:
        raise RuntimeError("mosquitto is not installed (make deps)")
    return exe


def start_broker(work: Path, procs: Processes, *,
                 nodelay: bool) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """A mosquitto of the bench's own. max_queued_messages 0: a subscriber that falls behind
    (this bench's, in Python) must not make the broker drop what it would count as lost.
    nodelay: set_tcp_nodelay (mosquitto's default is off: Nagle's algorithm on what the
    broker sends, which holds a small message back until the previous one is acked)."""
    port = free_port()
    config = work / "mosquitto.conf"
    # user: as root, mosquitto would switch to its own user, which clears _die_with_parent's
    # signal; staying the bench's user keeps it
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                      f"user {getpass.getuser()}\n"
                      f"max_queued_messages 0\nset_tcp_nodelay {str(nodelay).lower()}\n"
                      "sys_interval 1\nlog_dest stderr\n")  # fmt: skip
    proc = procs.spawn("mosquitto", [mosquitto_executable(), "-c", str(config)],
                       log_file=work / "mosquitto.log")  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"mosquitto did not listen on {port} within 10 s")


def seatlink_command() -> list[str]:
    script = Path(sys.executable).with_name("seatlink")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gateway.cli import main; main()"]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and its live descendants (the gateway's event drainer is a child process)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def cpu_s(pid: int, *, children: bool = False) -> float | None:
    """User + system CPU seconds of a process (with `children`: and its live descendants;
    all threads) so far."""
    total, found = 0.0, False
    for p in process_tree(pid) if children else [pid]:
        try:
            with open(f"/proc/{p}/stat") as f:
                data = f.read()
        except OSError:
            continue
        found = True
        fields = data[data.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return total if found else None


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) in MB, summed over the process and its children."""
    out: dict[str, float] = {}
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        out[key] = round(out.get(key, 0) + int(value.split()[0]) / 1024, 1)
        except OSError:
            pass
    return out


def fs_type(path: Path) -> str | None:
    best, kind = "", None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mount = parts[1]
                prefix = mount.rstrip("/") + "/"
                if (str(path) + "/").startswith(prefix) and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


class CpuClock:
    """CPU cores used by some processes between marks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.marks: dict[str, tuple[float, dict[str, float | None]]] = {}

    def mark(self, name: str) -> None:
        # the gateway's event drainer is its child; this process's children are the others
        self.marks[name] = (time.time(), {k: cpu_s(p, children=k == "gateway")
                                          for k, p in self.pids.items()})

    def cores(self, start: str, end: str) -> dict[str, float | None]:
        t0, c0 = self.marks[start]
        t1, c1 = self.marks[end]
        out: dict[str, float | None] = {}
        for k in self.pids:
            a, b = c0.get(k), c1.get(k)
            out[k] = None if a is None or b is None or t1 <= t0 else round((b - a) / (t1 - t0), 3)
        return out

    def seconds(self, name: str, start: str, end: str) -> float | None:
        a, b = self.marks[start][1].get(name), self.marks[end][1].get(name)
        return None if a is None or b is None else b - a


# --- the farm's process ----------------------------------------------------------------------


def farm_worker(argv: Sequence[str]) -> int:
    """`python -m tools.bench_edge _farm ...`: a SeatFarm driven by lines on stdin, each
    answered with one JSON line on stdout: `go` starts the seats and their load, `reset`
    reboots every seat (boot counter + 1) once the gateway is on every link, `stop-load`,
    `trace FILE`, `quit`.

    Why the reset: a seat writes its hello at boot, before any gateway can be connected, and
    resends only after 300 ms without a new frame; under load it never pauses that long, so
    its queue (10 frames) overflows into a snapshot and the hello is gone: the gateway never
    learns the board's uid and boot, and stores nothing. Rebooting with the gateway
    listening is what a seat does when its board is reset behind a running gateway."""
    from gateway.virtual_farm import SeatFarm

    p = argparse.ArgumentParser(prog="bench_edge _farm")
    p.add_argument("--seats", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--map", type=Path, required=True)
    p.add_argument("--store", type=Path, required=True)
    args = p.parse_args(argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(1)

    signal.signal(signal.SIGTERM, stop)

    def reply(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    farm = SeatFarm(args.seats, load_hz=args.rate, trace=True, first_uid=FIRST_UID,
                    store_dir=args.store)  # fmt: skip
    started = 0.0
    try:
        farm.write_map(args.map)
        reply(uids=[s.uid for s in farm.seats], pid=os.getpid())
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "go":
                farm.start()
                started = time.time()
                reply(t=started)
            elif cmd[0] == "reset":
                boots = [farm.reset(i) for i in range(len(farm.seats))]
                reply(t=time.time(), boots=boots)
            elif cmd[0] == "stop-load":
                farm.load_hz = 0  # a seat holding HELP lets go: a release makes no event
                reply(t=time.time())
            elif cmd[0] == "trace":
                frames = farm.write_trace(Path(cmd[1]))
                now = time.time()
                pressed = farm.pressed
                seats = farm.seats
                reply(t=now, frames=frames, pressed=sum(pressed),
                      pressed_min=min(pressed), pressed_max=max(pressed),
                      passes_per_seat_per_s=round(sum(s.passes for s in seats) / len(seats)
                                                  / max(now - started, 1e-9), 1),
                      discarded_bytes=sum(s.discarded for s in seats),
                      connections_max=max(s.connections for s in seats),
                      seats_connected=sum(s.connected for s in seats),
                      boots_max=max(s.boots for s in seats),
                      seat_errors=[f"{s.uid}: {s.error!r}" for s in seats
                                   if s.error is not None][:5])  # fmt: skip
            elif cmd[0] == "quit":
                break
    finally:
        farm.stop()  # raises if a seat's firmware or the scheduler failed: on stderr
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reply(stopped=True)
    return 0


class FarmControl:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def _ask(self, line: str | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the seat farm exited ({self.proc.poll()}) instead of "
                               f"answering {line!r}: see farm.log")  # fmt: skip
        result: dict[str, Any] = json.loads(answer)
        return result

    async def ask(self, line: str | None, timeout: float = 60.0) -> dict[str, Any]:
        # a thread, so the subscriber's arrival stamps do not wait for the farm
        return await asyncio.wait_for(asyncio.to_thread(self._ask, line), timeout)


# --- the raw aiomqtt baseline's process ------------------------------------------------------


def raw_worker(argv: Sequence[str]) -> int:
    """`python -m tools.bench_edge _raw --port N --input FILE`: publish every (topic,
    payload) of the JSON-lines file as fast as one aiomqtt client can, the gateway's way;
    print the timing as one JSON line."""
    p = argparse.ArgumentParser(prog="bench_edge _raw")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--input", type=Path, required=True)
    args = p.parse_args(argv)
    items = [(str(t), str(m).encode()) for t, m in
             (json.loads(line) for line in args.input.read_text().splitlines() if line)]
    print(json.dumps(asyncio.run(_raw_publish(args.port, items))), flush=True)
    return 0


async def _raw_publish(port: int, items: list[tuple[str, bytes]]) -> dict[str, Any]:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-raw-{uuid.uuid4().hex[:8]}",
                              max_inflight_messages=INFLIGHT, max_queued_outgoing_messages=0,
                              timeout=30) as client:  # fmt: skip
        c0, t0 = os.times(), time.time()
        for at in range(0, len(items), WINDOW):
            await asyncio.gather(*(client.publish(topic, payload, qos=1)
                                   for topic, payload in items[at : at + WINDOW]))  # fmt: skip
        c1, t1 = os.times(), time.time()
    cpu = c1.user + c1.system - c0.user - c0.system
    return {"count": len(items), "t_start": t0, "t_end": t1, "cpu_s": cpu}


# --- the subscriber --------------------------------------------------------------------------


class Subscriber:
    """Every seat event of the site (arrival time, raw payload: parsed after the run), the
    raw baseline's arrivals, and the gateway's health, from one aiomqtt client with a
    session of its own (kept by the broker across a reconnect, counted if one happens)."""

    def __init__(self, port: int) -> None:
        from gateway.contract.topics import Topics

        self.port = port
        self.topics = Topics(site=SITE, root=ROOT)
        self.raw_topics = Topics(site=RAW_SITE, root=ROOT)
        self.event_prefix = self.topics.prefix + "seat/"
        self.health_topic = self.topics.topic("gateway_health", gateway=GATEWAY)
        self.events: list[tuple[float, bytes]] = []
        self.raw: list[float] = []
        self.health: list[tuple[float, dict[str, Any]]] = []
        self.published: list[tuple[float, int]] = []  # the broker's SYS_PUBLISHED
        self.ready = asyncio.Event()
        self.connections = 0

    @property
    def last_health(self) -> dict[str, Any]:
        return self.health[-1][1] if self.health else {}

    def publish_rate(self, t0: float, t1: float) -> float | None:
        """PUBLISH packets a second the broker took between t0 and t1 (its 1 s counter)."""
        inside = [(t, n) for t, n in self.published if t0 - 0.5 <= t <= t1 + 0.5]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    async def run(self) -> None:
        import aiomqtt

        ident = f"bench-sub-{uuid.uuid4().hex[:8]}"
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=ident,
                                          clean_session=False) as client:  # fmt: skip
                    self.connections += 1
                    await client.subscribe(self.topics.subscription("seat_event"), qos=1)
                    await client.subscribe(self.raw_topics.subscription("seat_event"), qos=1)
                    await client.subscribe(self.health_topic, qos=1)
                    await client.subscribe(SYS_PUBLISHED, qos=0)
                    self.ready.set()
                    events, raw, prefix = self.events, self.raw, self.event_prefix
                    async for m in client.messages:
                        t = time.time()
                        topic = m.topic.value
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        if topic.startswith(prefix):
                            events.append((t, payload))
                        elif topic == self.health_topic:
                            self.health.append((t, json.loads(payload)))
                        elif topic == SYS_PUBLISHED:
                            self.published.append((t, int(payload)))
                        else:
                            raw.append(t)
            except aiomqtt.MqttError as exc:
                self.ready.clear()
                log(f"subscriber: connection lost ({exc}); again")
                await asyncio.sleep(0.1)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Plan:
    seats: int
    rate: float
    seconds: float
    freeze_s: float
    broker_nodelay: bool


async def until(condition: Callable[[], object], timeout: float, what: str,
                alive: Callable[[], None] | None = None) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.time()))


def write_gateway_config(work: Path, port: int, uids: Sequence[str]) -> Path:
    lines = []
    for i, uid in enumerate(uids):
        lines += ["[[seat]]", f'seat = "s{i + 1:03d}"', f'board = "{uid}"']
    (work / "inventory.toml").write_text("\n".join(lines) + "\n")
    config = work / "edge.toml"
    config.write_text(
        f'gateway = "{GATEWAY}"\nsite = "{SITE}"\nroot = "{ROOT}"\n'
        'links_file = "seats.json"\ninventory = "inventory.toml"\noutbox = "outbox.db"\n'
        f"health_interval_s = {HEALTH_S}\n"
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\n')  # fmt: skip
    return config


def read_trace(path: Path) -> dict[tuple[str, int, int], float]:
    with open(path, newline="") as f:
        rows = csv.reader(f)
        next(rows)
        return {(uid, int(boot), int(seq)): float(t) for uid, boot, seq, t in rows}


def gateway_log_summary(path: Path) -> dict[str, Any]:
    """Counts of the gateway's warnings, errors and tracebacks, and the kinds of them (the
    line without its time stamp, digits as N) with how often each came, most often first."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    counts = collections.Counter[str]()
    kinds = collections.Counter[str]()
    for line in lines:
        level = next((lv for lv in ("WARNING", "ERROR", "CRITICAL") if f" {lv} " in line),
                     "Traceback" if line.startswith("Traceback") else None)  # fmt: skip
        if level is None:
            continue
        counts[level] += 1
        body = line.split(" ", 2)[2] if line[:2].isdigit() else line  # no date and time
        kind = re.sub(r"\d+", "N", body)[:200]
        kinds[kind] += 1
    return {"gateway_log_lines": len(lines), "gateway_log_warnings": counts["WARNING"],
            "gateway_log_errors": counts["ERROR"] + counts["CRITICAL"],
            "gateway_log_tracebacks": counts["Traceback"],
            "gateway_log_kinds": [f"{n}x {k}" for k, n in kinds.most_common(12)]}


def analyse(plan: Plan, arrivals: list[tuple[float, bytes]],
            trace: dict[tuple[str, int, int], float], counted: dict[str, int], t0: float,
            t1: float, thaw: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Figures from what arrived vs what the seats wrote since their reset (`counted`: uid
    -> boot; the frames of earlier boots had no gateway to hear their hello); also the
    events that arrived after the thaw (the drained backlog), for the raw baseline."""
    before = {k for k in trace if k[1] < counted.get(k[0], 0)}
    trace = {k: w for k, w in trace.items() if k not in before}
    first: dict[tuple[str, int, int], tuple[float, float]] = {}  # key -> (arrival, gw t)
    duplicates = order = helps = overflow = 0
    newest: dict[tuple[str, int], int] = {}
    backlog: list[dict[str, Any]] = []
    for t, payload in arrivals:
        e = json.loads(payload)
        key = (e["board"], e["boot"], e["seq"])
        if key in first:
            duplicates += 1
            continue
        first[key] = (t, e["t"])
        stream = (e["board"], e["boot"])
        if e["seq"] <= newest.get(stream, 0):
            order += 1
        newest[stream] = max(e["seq"], newest.get(stream, 0))
        data = e.get("data") or {}
        helps += e["type"] == "event" and data.get("event") == "help"
        overflow = max(overflow, int(data.get("dropped") or 0) if e["type"] == "snapshot" else 0)
        if t >= thaw:
            backlog.append({"seat": e["seat"], "payload": payload.decode()})
    lost = sorted(k for k in trace if k not in first)
    unexpected = sum(k not in trace and k not in before for k in first)
    window = [k for k, w in trace.items() if t0 <= w < t1]
    total, seat_gw, gw_sub = [], [], []
    late = 0  # window frames that only arrived after the broker froze
    for k in window:
        if k in first:
            arrived, took = first[k]
            w = trace[k]
            total.append((arrived - w) * 1000)
            seat_gw.append((took - w) * 1000)
            gw_sub.append((arrived - took) * 1000)
            late += arrived >= t1 + GUARD_S
    in_window = sum(t0 <= t < t1 for t, _ in arrivals)
    figures: dict[str, Any] = {
        "frames_before_reset": len(before),
        "frames_before_reset_delivered": sum(k in first for k in before),
        "frames_written": len(trace),
        "events_delivered": len(first),
        "help_events_delivered": helps,
        "window_frames_written": len(window),
        "offered_frames_per_s": round(len(window) / (t1 - t0), 1),
        "offered_goal_frames_per_s": plan.seats * plan.rate,
        "window_delivered_per_s": round(in_window / (t1 - t0), 1),
        # short of the offered rate: the gateway fell behind (its outbox grew in the window)
        "gateway_kept_up": in_window >= 0.98 * len(window),
        "latency_samples": len(total),
        "latency_window_frames_delayed_by_freeze": late,
    }
    for name, samples in (("latency", total), ("latency_seat_to_gateway", seat_gw),
                          ("latency_gateway_to_subscriber", gw_sub)):  # fmt: skip
        if samples:
            figures[f"{name}_p50_ms"] = r2(percentile(samples, 0.5))
            figures[f"{name}_p99_ms"] = r2(percentile(samples, 0.99))
            if name == "latency":
                figures["latency_p90_ms"] = r2(percentile(samples, 0.9))
                figures["latency_p999_ms"] = r2(percentile(samples, 0.999))
                figures["latency_max_ms"] = r2(max(samples))
                figures["latency_over_goal"] = sum(s > P99_GOAL_MS for s in samples)
        else:
            figures[f"{name}_p50_ms"] = figures[f"{name}_p99_ms"] = None
    figures.update({
        "latency_p99_goal_max_ms": P99_GOAL_MS,
        "events_lost": len(lost),
        "events_lost_goal_max": LOST_GOAL,
        "events_lost_in_window": sum(t0 <= trace[k] < t1 for k in lost),
        "events_lost_examples": ["-".join(map(str, k)) for k in lost[:8]],
        "duplicates": duplicates,
        "order_violations": order,
        "unexpected_events": unexpected,
        "seat_queue_overflow_frames": overflow,
    })  # fmt: skip
    return figures, backlog


async def run_bench(plan: Plan, work: Path, procs: Processes) -> dict[str, Any]:
    broker, port = start_broker(work, procs, nodelay=plan.broker_nodelay)
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


async def _run(plan: Plan, work: Path, procs: Processes, broker: subprocess.Popen[bytes],
               port: int, sub: Subscriber) -> dict[str, Any]:  # fmt: skip
    n = plan.seats
    farm_proc = procs.spawn("farm", [sys.executable, "-m", "tools.bench_edge", "_farm",
                                     "--seats", str(n), "--rate", str(plan.rate),
                                     "--map", str(work / "seats.json"),
                                     "--store", str(work / "farm-store")],
                            log_file=work / "farm.log", stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)  # fmt: skip
    farm = FarmControl(farm_proc)
    hello = await farm.ask(None)
    await farm.ask("go")
    config = write_gateway_config(work, port, hello["uids"])
    gw = procs.spawn("gateway", [*seatlink_command(), "edge", "--config", str(config)],
                     log_file=work / "gateway.log")  # fmt: skip

    def alive() -> None:
        for name, proc in (("gateway", gw), ("seat farm", farm_proc), ("mosquitto", broker)):
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode}: see its log")

    log(f"gateway started (pid {gw.pid}); waiting for its {n} links")
    await until(lambda: sub.last_health.get("links_open") == n, 60,
                f"the gateway's {n} links open", alive)  # fmt: skip
    reset = await farm.ask("reset")
    counted = dict(zip(hello["uids"], reset["boots"], strict=True))
    log(f"seats reset with the gateway on their links; waiting until all {n} are online")
    await until(lambda: sub.last_health.get("seats_online") == n and len(sub.events) >= 2 * n,
                60, f"{n} seats online and their hellos delivered", alive)  # fmt: skip
    warmup_s = time.time() - reset["t"]
    clock = CpuClock({"gateway": gw.pid, "farm": farm_proc.pid, "broker": broker.pid,
                      "bench": os.getpid()})  # fmt: skip
    t0 = time.time() + 1.0
    t1 = t0 + plan.seconds
    await sleep_until(t0)
    clock.mark("t0")
    log(f"warm-up {warmup_s:.1f} s; window of {plan.seconds:g} s starts")
    peak_cores = 0.0
    last = "t0"
    step = 0
    while time.time() < t1 - 0.5:
        await asyncio.sleep(min(5.0, t1 - time.time()))
        alive()
        step += 1
        clock.mark(f"s{step}")
        peak_cores = max(peak_cores, clock.cores(last, f"s{step}")["gateway"] or 0.0)
        last = f"s{step}"
        h = sub.last_health
        log(f"{time.time() - t0:5.1f} s: {len(sub.events)} events at the subscriber, "
            f"outbox depth {h.get('outbox_depth')}, gateway CPU "
            f"{clock.cores('t0', last)['gateway']} cores")  # fmt: skip
    await sleep_until(t1)
    clock.mark("t1")
    memory = memory_mb(gw.pid)
    await sleep_until(t1 + GUARD_S)

    # capacity: the broker frozen, the outbox fills; then the load stops and it drains
    log(f"freezing the broker for {plan.freeze_s:g} s (load on: the outbox fills)")
    broker.send_signal(signal.SIGSTOP)
    frozen = time.time()
    try:
        await asyncio.sleep(plan.freeze_s)
        await farm.ask("stop-load")
        await asyncio.sleep(1.0)
        clock.mark("thaw")
    finally:
        broker.send_signal(signal.SIGCONT)
    thaw = time.time()
    log("broker thawed, load stopped: timing the gateway's drain")
    stable = [len(sub.events), time.monotonic()]

    def drained() -> bool:
        if len(sub.events) != stable[0]:
            stable[:] = [len(sub.events), time.monotonic()]
            return False
        h = sub.last_health
        return (h.get("t", 0) > thaw + 0.5 and h.get("outbox_depth") == 0
                and time.monotonic() - stable[1] >= 1.0)  # fmt: skip

    drain_timeout = False
    try:
        await until(drained, 180, "the outbox to empty", alive)
    except RuntimeError as exc:
        if "timed out" not in str(exc):
            raise
        drain_timeout = True
        log(f"{exc}: counting what arrived")
    after = [t for t, _ in sub.events if t >= thaw]
    last_arrival = max(after) if after else thaw
    clock.mark("drained")
    memory_after = memory_mb(gw.pid)
    drain_cpu = clock.seconds("gateway", "thaw", "drained")
    farm_stats = await farm.ask(f"trace {work / 'trace.csv'}")
    trace = read_trace(work / "trace.csv")
    figures, backlog = analyse(plan, list(sub.events), trace, counted, t0, t1, thaw)

    # the raw aiomqtt baseline: the drained backlog's payloads, on another site's topics
    raw_figures: dict[str, Any] = {}
    if backlog:
        from gateway.contract.topics import Topics

        raw_topics = Topics(site=RAW_SITE, root=ROOT)
        items = work / "raw.jsonl"
        items.write_text("".join(json.dumps([raw_topics.seat_event(b["seat"]), b["payload"]])
                                 + "\n" for b in backlog))  # fmt: skip
        log(f"raw aiomqtt baseline: {len(backlog)} messages")
        before = len(sub.raw)
        raw_proc = procs.spawn("raw", [sys.executable, "-m", "tools.bench_edge", "_raw",
                                       "--port", str(port), "--input", str(items)],
                               log_file=work / "raw.log", stdout=subprocess.PIPE)  # fmt: skip
        out, _ = await asyncio.to_thread(raw_proc.communicate, None, 300)
        if raw_proc.returncode != 0:
            raise RuntimeError(f"the raw publisher failed ({raw_proc.returncode}): see raw.log")
        raw = json.loads(out.decode().strip().splitlines()[-1])
        try:
            await until(lambda: len(sub.raw) - before >= raw["count"], 60, "raw arrivals")
        except RuntimeError as exc:
            log(str(exc))
        got = sub.raw[before:]
        raw_sub_rate = len(got) / (max(got) - raw["t_start"]) if got else None
        raw_puback_rate = raw["count"] / (raw["t_end"] - raw["t_start"])
        gw_rate = len(after) / (last_arrival - thaw) if after and last_arrival > thaw else None
        raw_figures = {
            "gateway_drain_backlog": len(after),
            "gateway_delivered_per_s": r2(gw_rate),
            "gateway_drain_s": r2(last_arrival - thaw),
            "gateway_drain_cpu_ms_per_1000": r2(drain_cpu / len(after) * 1e6)
            if drain_cpu is not None and after else None,
            "raw_messages": raw["count"],
            "raw_delivered_per_s": r2(raw_sub_rate),
            "raw_puback_per_s": r2(raw_puback_rate),
            "raw_arrived": len(got),
            "raw_cpu_ms_per_1000": r2(raw["cpu_s"] / raw["count"] * 1e6),
            "throughput_ratio": round(gw_rate / raw_sub_rate, 3)
            if gw_rate and raw_sub_rate else None,
            "throughput_ratio_vs_raw_puback": round(gw_rate / raw_puback_rate, 3)
            if gw_rate else None,
            # only where the gateway was the bottleneck in the window too
            "throughput_ratio_under_load": round(figures["window_delivered_per_s"]
                                                 / raw_sub_rate, 3)
            if raw_sub_rate and not figures["gateway_kept_up"] else None,
            "throughput_ratio_goal_min": RATIO_GOAL,
        }  # fmt: skip

    # the gateway's own account, then its log once it has stopped
    final_health = sub.last_health
    log("stopping the gateway and the seats")
    stopping = time.monotonic()
    gw_status = await asyncio.to_thread(Processes.stop, gw, 15.0)
    gw_stop_s = time.monotonic() - stopping
    try:
        await farm.ask("quit", timeout=30)
        await asyncio.to_thread(farm_proc.wait, 15)
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        log(f"seat farm: {exc!r}")
    await asyncio.to_thread(Processes.stop, farm_proc, 15.0)
    window_cores = clock.cores("t0", "t1")
    result: dict[str, Any] = {
        "seats": n, "rate_hz": plan.rate, "seconds": plan.seconds,
        "freeze_s": round(thaw - frozen, 2), "machine_cpus": os.cpu_count(),
        "broker_tcp_nodelay": plan.broker_nodelay,
        "outbox_filesystem": fs_type(work), "warmup_s": round(warmup_s, 1),
        "presses": farm_stats["pressed"],
        **figures,
        "gateway_cpu_cores": window_cores["gateway"],
        "gateway_cpu_percent_of_machine": None if window_cores["gateway"] is None
        else round(100 * window_cores["gateway"] / (os.cpu_count() or 1), 1),
        "gateway_cpu_peak_5s_cores": round(peak_cores, 3),
        "gateway_rss_mb": memory.get("VmRSS"),
        "gateway_peak_rss_mb": memory.get("VmHWM"),
        "gateway_peak_rss_after_drain_mb": memory_after.get("VmHWM"),
        "farm_cpu_cores": window_cores["farm"],
        "broker_cpu_cores": window_cores["broker"],
        "subscriber_cpu_cores": window_cores["bench"],
        "window_broker_publishes_in_per_s": r2(sub.publish_rate(t0, t1)),
        **raw_figures,
        "drain_timeout": drain_timeout,
        "gateway_health": {k: final_health.get(k) for k in (
            "links_open", "seats_online", "quarantined", "outbox_depth",
            "outbox_dropped_total", "events_stored", "repeats_refused", "published",
            "reconnects")},
        "gateway_exit_status": gw_status,
        "gateway_stop_s": round(gw_stop_s, 1),
        "subscriber_connections": sub.connections,
        "farm": {k: v for k, v in farm_stats.items() if k not in ("t", "frames")},
        **gateway_log_summary(work / "gateway.log"),
        "latency_method": LATENCY_METHOD,
        "throughput_method": THROUGHPUT_METHOD,
    }  # fmt: skip
    farm_log = (work / "farm.log").read_text(errors="replace").strip()
    if farm_log:
        result["farm_log_tail"] = farm_log.splitlines()[-5:]
    return result


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def measure(*, seats: int = 256, rate: float = 10.0, seconds: float = 60.0,
            freeze_s: float = 6.0, broker_nodelay: bool = True,
            keep: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the bench (needs mosquitto); every process and the work directory are gone when
    it returns or raises, unless `keep` names a directory to leave them in."""
    if seats < 1 or rate <= 0 or seconds <= 0 or not 0 < freeze_s <= 8:
        raise ValueError("need seats >= 1, rate > 0, seconds > 0 and 0 < freeze_s <= 8 (the "
                         "gateway's publish timeout is 10 s)")  # fmt: skip
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="bench-edge-", dir=keep))
    else:
        work = Path(tempfile.mkdtemp(prefix="seatlink-bench-edge-"))
    procs = Processes()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan = Plan(seats=seats, rate=rate, seconds=seconds, freeze_s=freeze_s,
                    broker_nodelay=broker_nodelay)  # fmt: skip
        return asyncio.run(run_bench(plan, work.resolve(), procs))
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs, trace and configs kept in {work}")


def summary(f: dict[str, Any]) -> str:
    return (f"{f['seats']} seats x {f['rate_hz']:g}/s x {f['seconds']:g} s: latency p50 "
            f"{f.get('latency_p50_ms')} ms, p99 {f.get('latency_p99_ms')} ms (goal <= "
            f"{P99_GOAL_MS}); lost {f.get('events_lost')} of {f.get('frames_written')}; "
            f"duplicates {f.get('duplicates')}; gateway CPU {f.get('gateway_cpu_cores')} "
            f"cores, peak RSS {f.get('gateway_peak_rss_mb')} MB; delivered "
            f"{f.get('gateway_delivered_per_s')}/s vs raw {f.get('raw_delivered_per_s')}/s, "
            f"ratio {f.get('throughput_ratio')} (goal >= {RATIO_GOAL})")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_farm"]:
        return farm_worker(argv[1:])
    if argv[:1] == ["_raw"]:
        return raw_worker(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_edge",
        description="Load figures of the edge gateway with virtual seats, as one JSON object.")
    parser.add_argument("--seats", type=int, default=256, help="virtual seats (default 256)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="HELP presses a second per seat (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="measured load window (default 60)")
    parser.add_argument("--freeze", type=float, default=6.0, metavar="S",
                        help="broker outage that builds the drain backlog (default 6, max 8)")
    parser.add_argument("--broker-nagle", action="store_true",
                        help="leave mosquitto's default set_tcp_nodelay false (the bench sets "
                             "it true, so the broker's own Nagle delay is not in the figures)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the work directory (logs, trace, configs) under DIR")
    args = parser.parse_args(argv)
    try:
        figures = measure(seats=args.seats, rate=args.rate, seconds=args.seconds,
                          freeze_s=args.freeze, broker_nodelay=not args.broker_nagle,
                          keep=args.keep)  # fmt: skip
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
