"""Event-to-client latency of the supervisor API's live feed (issue 6), printed as one JSON
object (a section of `make bench`).

    python -m tools.bench_api                            # 500 clients, 256 seats, 30 s
    python -m tools.bench_api --clients 50 --seconds 5   # a quick check
    python -m tools.bench_api --profile api.prof.txt     # the API's process under cProfile

Issue 6: "500 concurrent WebSocket clients, with 256 seats changing state. Report
event-to-client latency p99 (goal <= 100 ms)."

Processes, so that none shares a GIL or an event loop with another (the machine's cores are
shared by all of them: `machine_cpus` is printed):

- the bench's own mosquitto (tools/bench_edge.py start_broker: a free loopback port, never
  the machine's 1883, set_tcp_nodelay true, max_queued_messages 0);
- the API (`python -m tools.bench_api _server`): the same ApiService as `seatlink api`
  (uvicorn, port 0, uvloop through gateway.commands.edge._run, gc.freeze() once started),
  with its accounts in SQLite in a temporary directory, a unique site and one supervisor
  account. A process of its own rather than in this one so that its CPU and RSS are its
  alone (/proc/PID), and so that the clients' and the publisher's work is not on its loop.
  It also samples, on its own loop, what the figures cannot show from outside: its event
  loop's lag, the updates waiting in the WebSocket feeds' queues, and the time the floor
  spends handing each update to every feed (`api_*`);
- `client_procs` client processes (`python -m tools.bench_api _clients`), each with its own
  event loop (uvloop) and its share of the `clients` WebSocket clients (the `websockets`
  package), each client on /ws?token=... with a token of its process's (a supervisor may
  hold several sessions), offering permessage-deflate as browsers do (`--no-deflate`: not);
- this process: logs in over POST /auth/token, publishes the seats' states (paho, QoS 1,
  retained, on gateway.contract.topics' seat_state topic), and reads the results.

Every seat gets a first state before any client connects (each client's snapshot then holds
every seat); once every client has its snapshot, each seat changes state every `period`
seconds (ready <-> not_ready, the seats spread evenly: seats / period changes a second) for
`seconds`. Each change carries `since` = `t` = time.time() at its publish; the API's
`{"type": "seat"}` message carries `since` through, so each client records time.time() on
receipt minus `since`. After the window the bench waits until every delivery arrived, or
none arrived for SETTLE_IDLE_S (at most SETTLE_MAX_S).

The figures, all measured, none asserted (the goal is printed beside them):

- latency_p50/p95/p99/max_ms over every delivery that arrived, of every change to every
  client, with the p99 of each 5 s of the window (a rising row: a backlog building up), and
  latency_p99_goal_met: p99 <= the goal and every delivery arrived (a p99 over the
  deliveries that made it is no figure for the ones that did not);
- the same split where the API hands the change to the feeds (Floor._push, stamped in the
  API's process): publish_to_api_* (broker, the API's MQTT client and the wait for its event
  loop) and api_to_client_* (the feed's queue, the send, the client);
- deliveries_expected (changes x clients connected), deliveries_received, missed (changes a
  client had no `seat` message for when the bench stopped waiting: lost, or still queued;
  api_mqtt_queue_depth_at_end says how many changes the API had not yet taken from its MQTT
  client), resyncs (a client's feed fell ws_queue_max updates behind: the API emptied it and
  sent `resync` and a new snapshot), duplicate and unexpected seat messages, disconnects;
- api_cpu_percent (of one core; the API is one event loop) and api_rss_mb / api_peak_rss_mb
  from /proc, over the window; the clients', broker's and this process's CPU beside them;
  the API's loop lag, its MQTT client's and its feeds' queue depths, the fan-out's time.

Progress goes to stderr; stdout is the JSON object only.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tools.bench_edge import CpuClock, Processes, memory_mb, percentile, start_broker

P99_GOAL_MS = 100.0
USERNAME, PASSWORD = "sam.okafor", "Seat-link 2026!"
CONNECT_AT_ONCE = 25  # WebSocket handshakes in flight per client process
OPEN_TIMEOUT_S = 60.0  # every client connected with its snapshot
SETTLE_IDLE_S, SETTLE_MAX_S = 2.0, 10.0  # after the window: no new delivery / at most
ANSWER_TIMEOUT_S = 60.0  # a child's answer to a command
SLICE_S = 5.0

LATENCY_METHOD = (
    "time.time() in the client process when websockets hands the {'type': 'seat'} message "
    "over, minus the change's since (= t = time.time() in the bench process just before "
    "its MQTT publish, QoS 1, retained), for every change published in the window and every "
    "client; one machine, one clock. Includes the broker, the API and the client process's "
    "own queueing (its CPU is printed: a client process near one core adds to the figure)")


def log(text: str) -> None:
    print(f"bench-api: {text}", file=sys.stderr, flush=True)


def r2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _fast_loop(main: Any) -> Any:
    from gateway.commands.edge import _run  # uvloop when installed, as `seatlink api`

    return _run(main)


# --- a child process spoken to by lines ------------------------------------------------------


class Child:
    """A child process answering each line on its stdin with one JSON line on stdout; a
    thread reads its stdout, so that every wait for an answer has a timeout."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.proc = proc
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def ask(self, line: str | None, timeout: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
        if line is not None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except OSError as exc:
                raise RuntimeError(f"the {self.name} process is gone ({exc}): see its "
                                   "log") from exc
        try:
            answer = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the {self.name} process did not answer {line!r} within "
                               f"{timeout:g} s") from None  # fmt: skip
        if not answer:
            raise RuntimeError(f"the {self.name} process exited ({self.proc.poll()}) instead "
                               f"of answering {line!r}: see its log")  # fmt: skip
        result: dict[str, Any] = json.loads(answer)
        if "error" in result:
            raise RuntimeError(f"the {self.name} process: {result['error']}")
        return result


def _reply(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _lines() -> asyncio.Queue[str]:
    """stdin's lines as an asyncio queue ("" at EOF), read by a thread."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip() or " ")
        loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=read, daemon=True, name="stdin").start()
    return lines


# --- the API's process -----------------------------------------------------------------------


def server_worker(argv: Sequence[str]) -> int:
    """`python -m tools.bench_api _server ...`: the API, answering `mark` (the window
    starts), `stats` and `quit` on stdin; SIGTERM or EOF stops it too."""
    p = argparse.ArgumentParser(prog="bench_api _server")
    p.add_argument("--broker-port", type=int, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--profile", type=Path)
    args = p.parse_args(argv)
    try:
        return int(_fast_loop(_serve(args)))
    except Exception as exc:  # the bench reads it from the reply
        _reply(error=f"{type(exc).__name__}: {exc}")
        return 1


async def _serve(args: argparse.Namespace) -> int:
    import gc

    from gateway.api.accounts import Role, open_accounts
    from gateway.api.service import ApiService
    from gateway.api.settings import ApiSettings
    from gateway.edge.settings import BrokerSettings

    settings = ApiSettings(site=args.site, port=0, accounts=str(args.work / "api.db"),
                           store=str(args.work / "core.db"),
                           broker=BrokerSettings(host="127.0.0.1", port=args.broker_port))
    with open_accounts(settings.accounts) as accounts:
        accounts.create_user(username=USERNAME, password=PASSWORD, full_name="Sam Okafor",
                             role=Role.SUPERVISOR)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lines = await _lines()
    async with ApiService(settings) as api:
        floor = api.app.state.services.floor
        if not await floor.wait_connected(10):
            raise RuntimeError("the API's floor did not connect to the broker within 10 s")
        gc.freeze()  # as serve_until_signal
        monitor = _Monitor(floor)
        watcher = asyncio.create_task(monitor.run())
        _reply(port=api.port, pid=os.getpid(), queue_max=settings.ws_queue_max)
        profile: cProfile.Profile | None = None
        try:
            while not stop.is_set():
                got = asyncio.ensure_future(lines.get())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({got, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not got.done():
                    got.cancel()
                    break
                cmd = got.result()
                if cmd in ("", "quit"):
                    break
                if cmd == "health":
                    _reply(seats=len(floor.seats), feeds=floor.feeds,
                           connected=floor.connected)  # fmt: skip
                elif cmd == "mark":
                    monitor.reset()
                    if args.profile is not None:
                        profile = cProfile.Profile()
                        profile.enable()
                    _reply(t=time.time())
                elif cmd == "stats":
                    if profile is not None:
                        profile.disable()
                        _write_profile(profile, args.profile)
                        profile = None
                    _reply(**monitor.stats())
                else:
                    _reply(error=f"unknown command {cmd!r}")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return 0


def _write_profile(profile: cProfile.Profile, path: Path) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    path.write_text(out.getvalue())


@dataclass
class _Monitor:
    """On the API's own loop: its lag, the MQTT messages waiting in its client's queue
    (aiomqtt's) and the updates waiting in the WebSocket feeds' queues, the fan-out's
    time, and when each seat update was handed to the feeds (`pushed`: since -> time)."""

    floor: Any
    STEP_S: float = 0.05
    lag_ms: list[float] = field(default_factory=list)
    depth_max: int = 0
    depth_sum: int = 0
    depth_samples: int = 0
    mqtt_max: int = 0
    mqtt_sum: int = 0
    push_s: list[float] = field(default_factory=list)
    pushed: dict[float, float] = field(default_factory=dict)
    resyncs_at_mark: int = 0
    messages_at_mark: int = 0

    def __post_init__(self) -> None:
        push = self.floor._push

        def timed(update: dict[str, Any]) -> None:
            if update.get("type") == "seat":
                self.pushed[update["seat"]["since"]] = time.time()
            t = time.perf_counter()
            push(update)
            self.push_s.append(time.perf_counter() - t)

        setattr(self.floor, "_push", timed)  # noqa: B010 (an instance attribute, on purpose)

    def reset(self) -> None:
        self.lag_ms.clear()
        self.push_s.clear()
        self.pushed.clear()
        self.depth_max = self.depth_sum = self.depth_samples = 0
        self.mqtt_max = self.mqtt_sum = 0
        self.resyncs_at_mark = self.floor.counts.feed_resyncs
        self.messages_at_mark = self.floor.counts.messages["seat_state"]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.STEP_S)
            self.lag_ms.append((loop.time() - start - self.STEP_S) * 1000)
            depth = sum(f._queue.qsize() for f in list(self.floor._feeds))
            self.depth_max = max(self.depth_max, depth)
            self.depth_sum += depth
            self.depth_samples += 1
            client = self.floor._client
            waiting = 0 if client is None else len(client.messages)
            self.mqtt_max = max(self.mqtt_max, waiting)
            self.mqtt_sum += waiting

    def stats(self) -> dict[str, Any]:
        lag = self.lag_ms or [0.0]
        push = [s * 1000 for s in self.push_s] or [0.0]
        return {
            "loop_lag_p50_ms": r2(percentile(lag, 0.5)),
            "loop_lag_p99_ms": r2(percentile(lag, 0.99)),
            "loop_lag_max_ms": r2(max(lag)),
            "feed_queue_depth_max": self.depth_max,
            "feed_queue_depth_mean": round(self.depth_sum / max(1, self.depth_samples), 1),
            "mqtt_queue_depth_max": self.mqtt_max,
            "mqtt_queue_depth_mean": round(self.mqtt_sum / max(1, self.depth_samples), 1),
            "mqtt_queue_depth_at_end": 0 if self.floor._client is None
            else len(self.floor._client.messages),
            "fanout_updates": len(self.push_s),
            "fanout_p50_ms": r2(percentile(push, 0.5)),
            "fanout_max_ms": r2(max(push)),
            "resyncs_counted": self.floor.counts.feed_resyncs - self.resyncs_at_mark,
            "seat_state_messages_taken": self.floor.counts.messages["seat_state"]
            - self.messages_at_mark,
            "feeds": self.floor.feeds,
            "pushed": list(self.pushed.items()),
        }  # fmt: skip


# --- the clients' process --------------------------------------------------------------------


@dataclass
class _Client:
    since: array.array[float] = field(default_factory=lambda: array.array("d"))
    arrived: array.array[float] = field(default_factory=lambda: array.array("d"))
    snapshot_seats: int | None = None
    resyncs: int = 0
    snapshots: int = 0  # after the first
    other: int = 0
    closed: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def clients_worker(argv: Sequence[str]) -> int:
    """`python -m tools.bench_api _clients --url URL --clients N`: N WebSocket clients; the
    first answer once each has its snapshot (or failed), then `count`, `finish FILE OUT`
    (the latencies of the changes in FILE to OUT, and the counts) and `quit`."""
    p = argparse.ArgumentParser(prog="bench_api _clients")
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--no-deflate", action="store_true")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda s, f: os._exit(1))
    try:
        return int(_fast_loop(_clients(args)))
    except Exception as exc:
        _reply(error=f"{type(exc).__name__}: {exc}")
        return 1


async def _one_client(url: str, rec: _Client, gate: asyncio.Semaphore, deflate: bool) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    try:
        async with gate:
            ws = await connect(url, max_size=None, proxy=None, ping_interval=None,
                               open_timeout=OPEN_TIMEOUT_S, close_timeout=2,
                               compression="deflate" if deflate else None)  # fmt: skip
            try:
                first = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S))
            except BaseException:
                await ws.close()
                raise
            rec.snapshot_seats = len(first.get("seats", []))
            rec.ready.set()
        try:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "batch":  # a few milliseconds of changes, each seat once
                    for update in msg.get("updates", []):
                        if update.get("type") == "seat":
                            rec.since.append(update["seat"]["since"])
                            rec.arrived.append(now)
                elif kind == "resync":
                    rec.resyncs += 1
                elif kind == "snapshot":
                    rec.snapshots += 1
                else:
                    rec.other += 1
            rec.closed = f"closed by the server ({ws.close_code})"
        finally:
            await ws.close()
    except ConnectionClosed as exc:
        rec.closed = f"closed: {exc}"
    except (WebSocketException, OSError, TimeoutError, ValueError) as exc:
        rec.closed = f"{type(exc).__name__}: {exc}"
    finally:
        rec.ready.set()


async def _clients(args: argparse.Namespace) -> int:
    lines = await _lines()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    recs = [_Client() for _ in range(args.clients)]
    start = time.monotonic()
    tasks = [asyncio.create_task(_one_client(args.url, r, gate, not args.no_deflate))
             for r in recs]  # fmt: skip
    try:
        async with asyncio.timeout(OPEN_TIMEOUT_S + 10):
            await asyncio.gather(*(r.ready.wait() for r in recs))
    except TimeoutError:
        pass
    ok = [r for r in recs if r.snapshot_seats is not None]
    failed = [r.closed or "no snapshot in time" for r in recs if r.snapshot_seats is None]
    _reply(connected=len(ok), failed=len(failed), failures=failed[:3],
           snapshot_seats_min=min((r.snapshot_seats or 0 for r in ok), default=None),
           connect_s=round(time.monotonic() - start, 2), pid=os.getpid())  # fmt: skip
    try:
        while True:
            cmd = (await lines.get()).split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] == "count":
                _reply(received=sum(len(r.since) for r in recs),
                       closed=sum(r.closed is not None for r in ok))  # fmt: skip
            elif cmd[0] == "finish":
                _reply(**_finish(recs, Path(cmd[1]), Path(cmd[2])))
            else:
                _reply(error=f"unknown command {cmd!r}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0


def _finish(recs: list[_Client], published: Path, out: Path) -> dict[str, Any]:
    """Per client: which changes arrived; every arrival's (since, latency ms) to `out`."""
    changes = set(json.loads(published.read_text()))
    since_out, lat_out = array.array("d"), array.array("d")
    missed, duplicates, unexpected, with_misses = 0, 0, 0, 0
    counted = [r for r in recs if r.snapshot_seats is not None]
    for r in counted:
        seen: set[float] = set()
        for since, arrived in zip(r.since, r.arrived, strict=True):
            if since not in changes:
                unexpected += 1
            elif since in seen:
                duplicates += 1
            else:
                seen.add(since)
                since_out.append(since)
                lat_out.append((arrived - since) * 1000)
        gone = len(changes) - len(seen)
        missed += gone
        with_misses += gone > 0
    with open(out, "wb") as f:
        f.write(len(lat_out).to_bytes(8, "little"))
        since_out.tofile(f)
        lat_out.tofile(f)
    return {
        "clients": len(counted), "received": len(lat_out), "missed": missed,
        "clients_with_misses": with_misses, "duplicates": duplicates,
        "unexpected": unexpected, "resyncs": sum(r.resyncs for r in counted),
        "clients_resynced": sum(r.resyncs > 0 for r in counted),
        "snapshots_after_first": sum(r.snapshots for r in counted),
        "other_messages": sum(r.other for r in counted),
        "closed": sum(r.closed is not None for r in counted),
        "closed_examples": [r.closed for r in counted if r.closed is not None][:3],
    }  # fmt: skip


def _read_samples(path: Path) -> tuple[array.array[float], array.array[float]]:
    since, lat = array.array("d"), array.array("d")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        since.fromfile(f, n)
        lat.fromfile(f, n)
    return since, lat


# --- the bench ---------------------------------------------------------------------------------


@dataclass
class Plan:
    clients: int
    seats: int
    seconds: float
    period: float
    client_procs: int
    deflate: bool
    profile: Path | None


def seat_state(seat: str, *, state: str, since: float) -> dict[str, Any]:
    """tests/api/api_support.py seat_state(): a seat_state payload, `t` = `since`."""
    return {"v": 1, "seat": seat, "gateway": "gw1", "board": "5EA70001", "boot": 1,
            "state": state, "reason": "break" if state == "not_ready" else None,
            "call": None, "since": since, "help": False, "off_hook": False,
            "hold_over_limit": False, "pending": None, "misses": 0, "t": since}  # fmt: skip


def _wait(what: str, check: Any, timeout: float, alive: Any) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def _run(plan: Plan, work: Path, procs: Processes) -> dict[str, Any]:
    import httpx
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from gateway.contract.topics import Topics

    broker, port = start_broker(work, procs, nodelay=True)
    log(f"mosquitto on 127.0.0.1:{port}; work directory {work}")
    site = "bench" + uuid.uuid4().hex[:8]
    topics = Topics(site=site)
    cmd = [sys.executable, "-m", "tools.bench_api", "_server", "--broker-port", str(port),
           "--work", str(work), "--site", site]  # fmt: skip
    if plan.profile is not None:
        cmd += ["--profile", str(plan.profile.resolve())]
    server = Child("API", procs.spawn("api", cmd, log_file=work / "api.log",
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    workers: list[Child] = []

    def alive() -> None:
        for name, proc in [("API", server.proc), ("mosquitto", broker)] + [
                (w.name, w.proc) for w in workers]:  # fmt: skip
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} process exited with {proc.returncode}")

    hello = server.ask(None, timeout=60)
    url = f"http://127.0.0.1:{hello['port']}"
    log(f"API on {url} (pid {hello['pid']}), site {site}")

    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-api-{site}")
    mqtt.max_inflight_messages_set(1000)
    mqtt.max_queued_messages_set(0)
    mqtt.connect("127.0.0.1", port)
    mqtt.loop_start()
    try:
        figures = _measure(plan, work, procs, server, workers, mqtt, topics, url, alive,
                           broker.pid, httpx)  # fmt: skip
        figures["api_ws_queue_max"] = hello["queue_max"]
        return figures
    finally:
        mqtt.loop_stop()
        mqtt.disconnect()
        for w in workers:
            with contextlib.suppress(RuntimeError, OSError):
                w.ask("quit", timeout=0.1)
        with contextlib.suppress(RuntimeError, OSError):
            server.ask("quit", timeout=0.1)


def _measure(plan: Plan, work: Path, procs: Processes, server: Child, workers: list[Child],
             mqtt: Any, topics: Any, url: str, alive: Any, broker_pid: int,
             httpx: Any) -> dict[str, Any]:  # fmt: skip
    n = plan.seats
    names = [f"s{i:03d}" for i in range(1, n + 1)]
    state = dict.fromkeys(names, "ready")
    last = None
    for seat in names:  # every seat's first state, before any client: in every snapshot
        last = mqtt.publish(topics.topic("seat_state", seat=seat),
                            json.dumps(seat_state(seat, state="ready", since=time.time())),
                            qos=1, retain=True)  # fmt: skip
    assert last is not None
    last.wait_for_publish(10)
    _wait(f"the API's floor to hold {n} seats",
          lambda: server.ask("health")["seats"] >= n, 20, alive)  # fmt: skip

    tokens = []
    with httpx.Client(base_url=url, timeout=20, trust_env=False) as http:
        for _ in range(plan.client_procs):  # a session per client process
            r = http.post("/auth/token", data={"username": USERNAME, "password": PASSWORD})
            if r.status_code != 200:
                raise RuntimeError(f"POST /auth/token: {r.status_code} {r.text[:200]}")
            tokens.append(r.json()["access_token"])
    ws_url = url.replace("http://", "ws://")
    shares = [plan.clients // plan.client_procs + (i < plan.clients % plan.client_procs)
              for i in range(plan.client_procs)]  # fmt: skip
    log(f"connecting {plan.clients} WebSocket clients in {plan.client_procs} processes "
        f"(permessage-deflate {'offered' if plan.deflate else 'not offered'})")
    for i, (share, token) in enumerate(zip(shares, tokens, strict=True)):
        cmd = [sys.executable, "-m", "tools.bench_api", "_clients", "--url",
               f"{ws_url}/ws?token={token}", "--clients", str(share)]  # fmt: skip
        if not plan.deflate:
            cmd.append("--no-deflate")
        workers.append(Child(f"clients{i}", procs.spawn(
            f"clients{i}", cmd, log_file=work / f"clients{i}.log", stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)))  # fmt: skip
    ready = [w.ask(None, timeout=OPEN_TIMEOUT_S + 30) for w in workers]
    connected = sum(r["connected"] for r in ready)
    failures = [f for r in ready for f in r["failures"]]
    if connected == 0:
        raise RuntimeError(f"no WebSocket client connected: {failures[:3]}")
    snap_min = min(r["snapshot_seats_min"] for r in ready if r["connected"])
    log(f"{connected} clients connected with their snapshots ({snap_min}+ seats each) in "
        f"{max(r['connect_s'] for r in ready):.1f} s; {len(failures)} failed")

    rate = n / plan.period
    total = max(1, round(plan.seconds * rate))
    clock = CpuClock({"api": server.proc.pid, "broker": broker_pid, "bench": os.getpid(),
                      **{w.name: w.proc.pid for w in workers}})  # fmt: skip
    published: list[float] = []
    behind = 0.0
    server.ask("mark")
    t0 = time.time() + 0.5
    clock.mark("t0")
    next_log = t0 + 5
    log(f"publishing {total} changes at {rate:g}/s for {plan.seconds:g} s")
    for k in range(total):
        at = t0 + k / rate
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            behind = max(behind, -delay)
        seat = names[k % n]
        state[seat] = "not_ready" if state[seat] == "ready" else "ready"
        since = time.time()
        info = mqtt.publish(topics.topic("seat_state", seat=seat),
                            json.dumps(seat_state(seat, state=state[seat], since=since)),
                            qos=1, retain=True)  # fmt: skip
        if info.rc != 0:
            raise RuntimeError(f"MQTT publish refused: rc {info.rc}")
        published.append(since)
        if since >= next_log:
            next_log += 5
            alive()
            log(f"{since - t0:5.1f} s: {k + 1} changes published")
    t1 = time.time()
    clock.mark("t1")
    memory = memory_mb(server.proc.pid)

    expected = len(published) * connected
    seen = [0, time.monotonic()]
    settle_start = time.monotonic()

    def settled() -> bool:
        got = sum(w.ask("count")["received"] for w in workers)
        if got != seen[0]:
            seen[:] = [got, time.monotonic()]
        return (got >= expected or time.monotonic() - seen[1] >= SETTLE_IDLE_S
                or time.monotonic() - settle_start >= SETTLE_MAX_S)  # fmt: skip

    _wait("the deliveries", settled, SETTLE_MAX_S + 30, alive)
    settle_s = time.monotonic() - settle_start
    api = server.ask("stats", timeout=120)
    pushed = dict(api.pop("pushed"))
    (work / "published.json").write_text(json.dumps(published))
    parts = [w.ask(f"finish {work / 'published.json'} {work / (w.name + '.bin')}", timeout=120)
             for w in workers]  # fmt: skip
    since_all, lat_all = array.array("d"), array.array("d")
    for w in workers:
        part_since, part_lat = _read_samples(work / f"{w.name}.bin")
        since_all.extend(part_since)
        lat_all.extend(part_lat)

    def total_of(key: str) -> int:
        return sum(int(p[key]) for p in parts)

    cores = clock.cores("t0", "t1")
    client_cores = [cores[w.name] for w in workers]
    figures: dict[str, Any] = {
        "clients": plan.clients, "clients_connected": connected,
        "clients_failed": len(failures), "client_failures": failures[:3],
        "client_processes": plan.client_procs, "permessage_deflate": plan.deflate,
        "seats": n, "snapshot_seats_min": snap_min, "seconds": plan.seconds,
        "change_period_s": plan.period, "changes_per_s": round(rate, 1),
        "changes_published": len(published),
        "changes_published_per_s": round(len(published) / max(t1 - t0, 1e-9), 1),
        "publisher_behind_max_ms": round(behind * 1000, 1),
        "deliveries_expected": expected, "deliveries_received": len(lat_all),
        "missed": total_of("missed"), "clients_with_misses": total_of("clients_with_misses"),
        "resyncs": total_of("resyncs"), "clients_resynced": total_of("clients_resynced"),
        "duplicates": total_of("duplicates"), "unexpected_seat_messages": total_of("unexpected"),
        "clients_disconnected": total_of("closed"),
        "disconnect_examples": [e for p in parts for e in p["closed_examples"]][:3],
        "settle_s": round(settle_s, 1),
    }  # fmt: skip
    if lat_all:
        ordered = sorted(lat_all)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            figures[f"latency_{name}_ms"] = r2(percentile(ordered, q))
        figures["latency_max_ms"] = r2(ordered[-1])
        figures["latency_within_goal_share"] = round(
            sum(1 for x in ordered if x <= P99_GOAL_MS) / len(ordered), 4)
        slices: list[list[float]] = [[] for _ in range(max(1, int(-(-plan.seconds // SLICE_S))))]
        for at, lat in zip(since_all, lat_all, strict=True):
            slices[min(len(slices) - 1, max(0, int((at - t0) // SLICE_S)))].append(lat)
        figures["latency_p99_by_5s_ms"] = [r2(percentile(x, 0.99)) if x else None
                                           for x in slices]  # fmt: skip
        # split at the API's hand-over to the feeds: MQTT -> floor, then floor -> client
        intake = sorted((pushed[s] - s) * 1000 for s in published if s in pushed)
        out = sorted(lat - (pushed[s] - s) * 1000
                     for s, lat in zip(since_all, lat_all, strict=True) if s in pushed)
        for stage, samples in (("publish_to_api", intake), ("api_to_client", out)):
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                figures[f"{stage}_{name}_ms"] = r2(percentile(samples, q)) if samples else None
        figures["changes_handed_to_feeds"] = len(intake)
    else:
        figures.update(latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None,
                       latency_max_ms=None)  # fmt: skip
    p99 = figures["latency_p99_ms"]
    complete = figures["deliveries_received"] == expected
    figures.update({
        "latency_p99_goal_max_ms": P99_GOAL_MS,
        "latency_p99_goal_met": p99 is not None and p99 <= P99_GOAL_MS and complete,
        "api_cpu_percent": None if cores["api"] is None else round(100 * cores["api"], 1),
        "api_cpu_percent_of_machine": None if cores["api"] is None
        else round(100 * cores["api"] / (os.cpu_count() or 1), 1),
        "api_rss_mb": memory.get("VmRSS"), "api_peak_rss_mb": memory.get("VmHWM"),
        "clients_cpu_percent": [None if c is None else round(100 * c, 1)
                                for c in client_cores],
        "broker_cpu_percent": None if cores["broker"] is None
        else round(100 * cores["broker"], 1),
        "bench_cpu_percent": None if cores["bench"] is None else round(100 * cores["bench"], 1),
        "machine_cpus": os.cpu_count(),
        **{f"api_{k}": v for k, v in api.items()},
        "latency_method": LATENCY_METHOD,
    })  # fmt: skip
    return figures


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def measure(*, clients: int = 500, seats: int = 256, seconds: float = 30.0,
            period: float = 2.0, client_procs: int = 2, deflate: bool = True,
            profile: Path | None = None, keep: Path | None = None) -> dict[str, Any]:
    """Run the bench (needs mosquitto); every process and the work directory are gone when
    it returns or raises, unless `keep` names a directory to leave them in."""
    if clients < 1 or seats < 1 or seconds <= 0 or period <= 0 or client_procs < 1:
        raise ValueError("need clients, seats and client_procs >= 1, seconds and period > 0")
    client_procs = min(client_procs, clients)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="bench-api-", dir=keep))
    else:
        work = Path(tempfile.mkdtemp(prefix="seatlink-bench-api-"))
    procs = Processes()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan = Plan(clients=clients, seats=seats, seconds=seconds, period=period,
                    client_procs=client_procs, deflate=deflate, profile=profile)  # fmt: skip
        try:
            return _run(plan, work.resolve(), procs)
        except ImportError as exc:
            raise RuntimeError(f"a package is missing: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("httpx", "paho")):
                raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
            raise
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs kept in {work}")


def summary(f: dict[str, Any]) -> str:
    return (f"{f['clients_connected']} clients x {f['seats']} seats, "
            f"{f['changes_published']} changes: latency p50 {f.get('latency_p50_ms')} ms, "
            f"p99 {f.get('latency_p99_ms')} ms (goal <= {P99_GOAL_MS:g}, met: "
            f"{f['latency_p99_goal_met']}); received {f['deliveries_received']} of "
            f"{f['deliveries_expected']}, missed {f['missed']}, resyncs {f['resyncs']}; API "
            f"CPU {f['api_cpu_percent']} %, RSS {f['api_rss_mb']} MB")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_server"]:
        return server_worker(argv[1:])
    if argv[:1] == ["_clients"]:
        return clients_worker(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_api",
        description="Event-to-client latency of the API's WebSocket feed, as one JSON object.")
    parser.add_argument("--clients", type=int, default=500,
                        help="WebSocket clients (default 500)")
    parser.add_argument("--seats", type=int, default=256, help="seats (default 256)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="publishing window (default 30)")
    parser.add_argument("--period", type=float, default=2.0,
                        help="each seat changes state every PERIOD s (default 2)")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="processes the clients are spread over (default 2)")
    parser.add_argument("--no-deflate", action="store_true",
                        help="clients do not offer permessage-deflate (browsers do)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="run the API's window under cProfile; its top functions to FILE")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the work directory (logs) under DIR")
    args = parser.parse_args(argv)
    try:
        figures = measure(clients=args.clients, seats=args.seats, seconds=args.seconds,
                          period=args.period, client_procs=args.client_procs,
                          deflate=not args.no_deflate, profile=args.profile,
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
