"""The floor as the API sees it: one MQTT client that keeps the live picture and sends
commands (issue 6, docs/api.md).

Design requirements:
- One subscription per contract topic the API shows: seats' state, availability and health,
  gateways' health, the core's live KPIs and open alerts, the PBX's compliance decisions, and
  the results of every command family. Retained topics give the whole picture at connect.
- Changes reach every WebSocket feed (`subscribe`) in batches: what changed within
  `BATCH_S` goes out as one message, serialised once for all feeds, with each seat, KPI key
  and the open alerts in it once, at their latest. Measured with 500 clients and 128 seat
  changes a second (tools/bench_api.py): one message per change and client kept the event
  loop sending 64,000 frames a second and fell tens of seconds behind.
- A feed that falls `queue_max` messages behind is not waited for: its queue is emptied, it
  gets a `resync` (a fresh snapshot follows) and the drop is counted.
- A command is published with an id and answered by its result topic (`seat/{seat}/cmd/
  result`, `alerts/cmd/result`, `pbx/{pbx}/cmd/result`) matched by that id; no result within
  the timeout is `None`, never a guess.
- Malformed messages are counted by topic name and never stop the client; the broker going
  away is retried with backoff, and the picture is kept (marked `connected: false`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from gateway.contract.payloads import (
    AlertCommandResult,
    AlertMessage,
    AlertsOpen,
    CommandResult,
    ComplianceDecisionMessage,
    CoreHealth,
    FirmwareJob,
    GatewayHealth,
    GatewayStatus,
    KpiLive,
    Payload,
    PbxCommandResult,
    SeatAgent,
    SeatAvailability,
    SeatFirmwareUpdate,
    SeatHealth,
    SeatState,
)
from gateway.contract.topics import TOPICS as _SPECS
from gateway.contract.topics import TopicError, Topics
from gateway.edge.settings import BrokerSettings

log = logging.getLogger(__name__)

# topic name -> what the floor keeps of it
_WATCHED = (
    "seat_state", "seat_availability", "seat_health", "seat_cmd_result", "seat_alert",
    "gateway_status", "gateway_health", "alerts_open", "alert_cmd_result", "kpi_live",
    "pbx_cmd_result", "compliance_decision", "core_health", "seat_firmware", "firmware_job",
    "seat_agent",
)  # fmt: skip
_RESULTS = {"seat_cmd_result", "alert_cmd_result", "pbx_cmd_result"}
# what a feed sends when its client needs the whole picture again (a snapshot follows)
RESYNC = json.dumps({"type": "resync"})


@dataclass
class FloorCounts:
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    malformed: collections.Counter[str] = field(default_factory=collections.Counter)
    feed_resyncs: int = 0  # WebSocket feeds that fell behind and were told to resync
    results_unmatched: int = 0  # command results for no command of ours (others', late)
    connects: int = 0


class Feed:
    """One WebSocket client's messages, as JSON text ready to send: `await feed.get()`."""

    def __init__(self, floor: Floor, queue_max: int) -> None:
        self._floor = floor
        self._queue: asyncio.Queue[str] = asyncio.Queue(queue_max)

    def put(self, text: str) -> None:
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            # a slow client must not hold the floor up or grow without bound
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)
            self._floor.counts.feed_resyncs += 1

    def ask_snapshot(self) -> None:
        self.put(RESYNC)

    async def get(self) -> str:
        return await self._queue.get()

    def close(self) -> None:
        self._floor._feeds.discard(self)


class Floor:
    """`async with Floor(topics=..., broker=..., client_id=...) as floor:`; the client runs
    until the block ends. Read `seats`, `kpis`, `alerts_open`, ...; send with `command`."""

    RECONNECT_S = (0.2, 5.0)  # backoff while the broker is away
    BATCH_S = 0.02  # changes gathered into one feed message
    DECISIONS_KEPT = 1000  # the PBX's recent compliance decisions

    def __init__(self, *, topics: Topics, broker: BrokerSettings, client_id: str,
                 feed_queue_max: int = 1000) -> None:  # fmt: skip
        self.topics = topics
        self.broker = broker
        self.client_id = client_id
        self.feed_queue_max = feed_queue_max
        self.seats: dict[str, dict[str, Any]] = {}  # seat -> state/availability/health/alert
        self.gateways: dict[str, dict[str, Any]] = {}  # gateway -> status/health
        self.kpis: dict[str, dict[str, dict[str, Any]]] = {}  # scope -> key -> KpiLive
        self.alerts_open: dict[str, Any] = {"alerts": [], "more": 0, "t": None}
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=self.DECISIONS_KEPT)
        self.cores: dict[str, dict[str, Any]] = {}
        # seat -> who is signed in there (the retained seat/{seat}/agent); kept apart from
        # `seats`: a sign-in does not make a seat the floor has never heard of
        self.agents: dict[str, dict[str, Any]] = {}
        self._connect_hooks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self.connected = False
        self.counts = FloorCounts()
        self._feeds: set[Feed] = set()
        self._batch: dict[tuple[str, ...], dict[str, Any]] = {}
        self._flusher: asyncio.TimerHandle | None = None
        self._serial = 0
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Floor:
        self._task = asyncio.create_task(self._run(), name="floor")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for hook in list(self._hook_tasks):
            hook.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for future in self._waiting.values():
            future.cancel()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    def on_connect(self, hook: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `hook` (as its own task) after every connect, once subscribed: what the API
        publishes retained is published again there (sign-ins: api/signins.py)."""
        self._connect_hooks.append(hook)

    # --- feeds --------------------------------------------------------------------------

    def subscribe(self) -> Feed:
        feed = Feed(self, self.feed_queue_max)
        self._feeds.add(feed)
        return feed

    @property
    def feeds(self) -> int:
        return len(self._feeds)

    def snapshot(self) -> dict[str, Any]:
        """Everything a new wallboard needs, in one message."""
        return {
            "type": "snapshot", "t": time.time(), "connected": self.connected,
            "seats": [self.seat(s) for s in sorted(self.seats)],
            "kpis": self.kpis, "alerts": self.alerts_open,
        }  # fmt: skip

    def seat(self, seat: str) -> dict[str, Any]:
        """The seat as the API shows it (docs/api.md: Seat)."""
        kept = self.seats.get(seat, {})
        state = kept.get("state") or {}
        health = kept.get("health")
        availability = kept.get("availability") or {}
        gateway = state.get("gateway") or availability.get("gateway")
        gw_status = self.gateways.get(gateway or "", {}).get("status", {})
        online = availability.get("status") == "online" and gw_status.get("status") != "offline"
        now = time.time()
        since = state.get("since")
        agent = self.agents.get(seat) or {}
        return {
            "seat": seat, "online": online, "state": state.get("state"),
            "reason": state.get("reason"), "call": state.get("call"), "since": since,
            "time_in_state_s": None if since is None else round(max(0.0, now - since), 1),
            "help": state.get("help", False), "off_hook": state.get("off_hook", False),
            "hold_over_limit": state.get("hold_over_limit", False),
            "pending": state.get("pending"), "misses": state.get("misses", 0),
            "gateway": gateway, "board": state.get("board"), "boot": state.get("boot"),
            "board_name": None if health is None else health.get("board_name"),
            "firmware": None if health is None else health.get("firmware"),
            "health": health, "link_quality": _link_quality(health),
            "availability": availability.get("why"),
            "firmware_update": kept.get("firmware"),
            "agent": agent.get("agent"), "agent_name": agent.get("name"),
            "agent_since": agent.get("t") if agent.get("agent") else None,
        }  # fmt: skip

    def _push(self, update: dict[str, Any]) -> None:
        """Queue `update` for the next batch; a later one for the same thing replaces it."""
        kind = update["type"]
        if kind in ("seat", "seat_removed"):
            seat = update["seat"] if kind == "seat_removed" else update["seat"]["seat"]
            key: tuple[str, ...] = ("seat", seat)
        elif kind == "kpi":
            key = ("kpi", update["scope"], update["key"])
        elif kind in ("alerts", "connected"):
            key = (kind,)
        else:  # alert changes and decisions: each one counts
            self._serial += 1
            key = (kind, str(self._serial))
        self._batch.pop(key, None)  # re-inserted at the end: the batch keeps change order
        self._batch[key] = update
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(self.BATCH_S, self._flush)

    def _flush(self) -> None:
        self._flusher = None
        if not self._batch:
            return
        updates, self._batch = list(self._batch.values()), {}
        if not self._feeds:
            return
        text = json.dumps({"type": "batch", "t": time.time(), "updates": updates})
        for feed in list(self._feeds):
            feed.put(text)

    # --- commands -----------------------------------------------------------------------

    async def command(self, name: str, ids: Mapping[str, str], body: dict[str, Any], *,
                      timeout: float) -> dict[str, Any] | None:  # fmt: skip
        """Publish command `body` (its "id" is set here) on topic `name`; its result, or None
        if none came within `timeout` seconds. Raises ConnectionError when the broker is
        away (nothing was sent)."""
        client = self._client
        if client is None or not self.connected:
            raise ConnectionError("the broker is not connected: nothing was sent")
        cid = body.get("id") or f"{self.client_id}-{uuid.uuid4().hex[:12]}"
        body = {**body, "id": cid}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[cid] = future
        try:
            await client.publish(self.topics.topic(name, **ids), json.dumps(body), qos=1)
            try:
                async with asyncio.timeout(timeout):
                    return await future
            except TimeoutError:
                return None
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"the broker refused the command: {exc}") from exc
        finally:
            self._waiting.pop(cid, None)

    async def publish(self, name: str, ids: Mapping[str, str], body: Payload) -> None:
        """Publish `body` on topic `name` with the contract's QoS and retain flag; returns
        once the broker has it (PUBACK for QoS 1). ConnectionError when the broker is away
        or the publish fails: the caller keeps what it must publish again."""
        client = self._client
        if client is None or not self.connected:
            raise ConnectionError("the broker is not connected")
        spec = self.topics.topic(name, **ids)
        contract = _SPECS[name]
        try:
            await client.publish(spec, body.dump(), qos=contract.qos, retain=contract.retained)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"the broker did not take it: {exc}") from exc

    # --- the MQTT client -------------------------------------------------------------------

    async def _run(self) -> None:
        first, cap = self.RECONNECT_S
        delay = first
        while True:
            try:
                async with self._connect() as client:
                    self._client = client
                    self.connected = True
                    self.counts.connects += 1
                    delay = first
                    self._push({"type": "connected", "connected": True, "t": time.time()})
                    for name in _WATCHED:
                        await client.subscribe(self.topics.subscription(name), qos=1)
                    self._ready.set()
                    for hook in self._connect_hooks:
                        task = asyncio.create_task(hook(), name="floor-on-connect")
                        self._hook_tasks.add(task)
                        task.add_done_callback(self._hook_tasks.discard)
                    async for message in client.messages:
                        self._take(str(message.topic), message.payload, message.retain)
            except aiomqtt.MqttError as exc:
                log.info("api floor: broker away (%s); again in %.1f s", exc, delay)
            finally:
                self._client = None
                if self.connected:
                    self.connected = False
                    self._push({"type": "connected", "connected": False, "t": time.time()})
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[aiomqtt.Client]:
        b = self.broker
        async with aiomqtt.Client(b.host, b.port, identifier=self.client_id,
                                  username=b.username, password=b.password_text,
                                  keepalive=b.keepalive_s, timeout=10) as client:  # fmt: skip
            yield client

    def _take(self, topic: str, payload: object, retained: bool) -> None:
        try:
            parsed = self.topics.parse(topic)
        except TopicError as exc:  # not a topic of the contract: counted as unknown
            self.counts.malformed["?"] += 1
            log.debug("api floor: %s", exc)
            return
        name = parsed.spec.name
        self.counts.messages[name] += 1
        try:
            if not isinstance(payload, bytes | bytearray):
                raise ValueError("not bytes")
            body = json.loads(payload) if payload else None
            if body is not None and not isinstance(body, dict):
                raise ValueError("not a JSON object")
            if body is not None:
                body = _checked(name, parsed.ids, body)
            self._apply(name, parsed.ids, body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # kept out of the picture: one bad retained message must not break every
            # later read of the seats (ValidationError is a ValueError)
            self.counts.malformed[name] += 1
            log.debug("api floor: %s: %s", topic, exc)

    def _apply(self, name: str, ids: dict[str, str], body: dict[str, Any] | None) -> None:
        if name == "firmware_job":
            if body is None:
                return
            self.gateways.setdefault(ids["gateway"], {})["firmware_job"] = body
            future = self._waiting.get(str(body.get("job")))
            if future is not None and not future.done():
                future.set_result(body)
            return
        if name == "seat_agent":
            if body is None:
                self.agents.pop(ids["seat"], None)
            else:
                self.agents[ids["seat"]] = body
            if ids["seat"] in self.seats:
                self._push({"type": "seat", "seat": self.seat(ids["seat"])})
            return
        if name in _RESULTS:
            if body is None:
                return
            future = self._waiting.get(str(body.get("id")))
            if future is not None and not future.done():
                future.set_result(body)
            else:
                self.counts.results_unmatched += 1
            return
        if name.startswith("seat_"):
            seat = ids["seat"]
            kept = self.seats.setdefault(seat, {})
            part = name.removeprefix("seat_")
            if body is None:  # a cleared retained message: the seat left the inventory
                kept.pop(part, None)
                if not any(kept.get(k) for k in ("state", "availability", "health")):
                    self.seats.pop(seat, None)
                    self._push({"type": "seat_removed", "seat": seat})
                    return
            else:
                kept[part] = body
            if part == "alert":
                self._push({"type": "alert", "alert": body})
                return
            if part == "health" and body is not None and not _health_changed(kept, body):
                return  # heartbeats: only what the wallboard shows is pushed
            self._push({"type": "seat", "seat": self.seat(seat)})
        elif name in ("gateway_status", "gateway_health"):
            gw = self.gateways.setdefault(ids["gateway"], {})
            gw[name.removeprefix("gateway_")] = body
            if name == "gateway_status":
                for seat in [s for s, k in self.seats.items()
                             if (k.get("state") or k.get("availability") or {}).get("gateway")
                             == ids["gateway"]]:  # fmt: skip
                    self._push({"type": "seat", "seat": self.seat(seat)})
        elif name == "kpi_live":
            if body is None:
                self.kpis.get(ids["scope"], {}).pop(ids["key"], None)
                return
            self.kpis.setdefault(ids["scope"], {})[ids["key"]] = body
            self._push({"type": "kpi", "scope": ids["scope"], "key": ids["key"], "kpi": body})
        elif name == "alerts_open":
            self.alerts_open = body or {"alerts": [], "more": 0, "t": None}
            self._push({"type": "alerts", "alerts": self.alerts_open})
        elif name == "compliance_decision" and body is not None:
            self.decisions.append(body)
            self._push({"type": "decision", "decision": body})
        elif name == "core_health":
            self.cores[ids["core"]] = body or {}


# the contract's model of each topic the floor keeps (docs/mqtt.md, payloads)
_MODELS: dict[str, type[Payload]] = {
    "seat_state": SeatState, "seat_availability": SeatAvailability, "seat_health": SeatHealth,
    "seat_cmd_result": CommandResult, "seat_alert": AlertMessage,
    "gateway_status": GatewayStatus, "gateway_health": GatewayHealth, "kpi_live": KpiLive,
    "alerts_open": AlertsOpen, "alert_cmd_result": AlertCommandResult,
    "pbx_cmd_result": PbxCommandResult, "compliance_decision": ComplianceDecisionMessage,
    "core_health": CoreHealth, "seat_firmware": SeatFirmwareUpdate, "firmware_job": FirmwareJob,
    "seat_agent": SeatAgent,
}  # fmt: skip


def _checked(name: str, ids: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The payload as its contract model has it; ValueError when it is not one, or when it
    names another seat, gateway, scope or key than its topic."""
    model = _MODELS[name].model_validate(body)
    for key, value in ids.items():
        named = getattr(model, key, value)
        if named != value:
            raise ValueError(f"{key} {named!r} on the topic of {value!r}")
    checked: dict[str, Any] = model.model_dump(mode="json")
    return checked


def _health_changed(kept: dict[str, Any], body: dict[str, Any]) -> bool:
    shown = kept.setdefault("_shown", {})
    now = (body.get("firmware"), _link_quality(body))
    if shown.get("health") == now:
        return False
    shown["health"] = now
    return True


def _link_quality(health: Mapping[str, Any] | None) -> float | None:
    """Share of what came over the seat's link that was intact frames, from the gateway's
    counts (1.0: a clean line); None before the first heartbeat or frame."""
    if not health:
        return None
    good, bad = health.get("frames_in"), health.get("garbage")
    if not isinstance(good, int) or not isinstance(bad, int) or good + bad == 0:
        return None
    return round(good / (good + bad), 4)
