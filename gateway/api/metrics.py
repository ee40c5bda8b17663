"""Prometheus /metrics of the API (docs/api.md, Metrics): read from the floor at scrape time,
plus the API's own counters (command outcomes, logins, WebSocket feeds). Only counts: no
person's name and no phone number is ever a label."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.api.floor import Floor
    from gateway.api.signins import SeatAgentPublisher


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter("seatlink_api_commands", "commands sent, by command and outcome",
                                ["command", "outcome"], registry=self.registry)  # fmt: skip
        self.logins = Counter("seatlink_api_logins", "login attempts by outcome", ["outcome"],
                              registry=self.registry)  # fmt: skip
        self._floor: Floor | None = None
        self._seat_agents: SeatAgentPublisher | None = None
        self.registry.register(_FloorCollector(self))

    def watch(self, floor: Floor, seat_agents: SeatAgentPublisher | None = None) -> None:
        self._floor = floor
        self._seat_agents = seat_agents

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _FloorCollector(Collector):
    def __init__(self, owner: ApiMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        floor = self._owner._floor
        if floor is None:
            return
        seats = [floor.seat(s) for s in floor.seats]
        online = GaugeMetricFamily("seatlink_seats_online", "seats whose board is heard")
        online.add_metric([], sum(1 for s in seats if s["online"]))
        yield online
        known = GaugeMetricFamily("seatlink_seats_known", "seats the floor has heard of")
        known.add_metric([], len(seats))
        yield known
        by_state = GaugeMetricFamily("seatlink_seats_by_state", "seats by state", labels=["state"])
        counts: dict[str, int] = {}
        for s in seats:
            counts[s["state"] or "unknown"] = counts.get(s["state"] or "unknown", 0) + 1
        for state, n in sorted(counts.items()):
            by_state.add_metric([state], n)
        yield by_state
        depth = GaugeMetricFamily("seatlink_outbox_depth", "events waiting in a gateway's "
                                  "outbox", labels=["gateway"])  # fmt: skip
        stored = GaugeMetricFamily("seatlink_gateway_events_stored", "seat events a gateway "
                                   "stored since it started", labels=["gateway"])  # fmt: skip
        dropped = GaugeMetricFamily("seatlink_outbox_dropped", "events a gateway's outbox "
                                    "dropped (overflow, expiry)", labels=["gateway"])  # fmt: skip
        for gw, kept in sorted(floor.gateways.items()):
            health = kept.get("health") or {}
            if "outbox_depth" in health:
                depth.add_metric([gw], health["outbox_depth"])
                stored.add_metric([gw], health.get("events_stored", 0))
                dropped.add_metric([gw], health.get("outbox_dropped_total", 0))
        yield depth
        yield stored
        yield dropped
        alerts = GaugeMetricFamily("seatlink_alerts_open", "open policy alerts by rule",
                                   labels=["rule"])  # fmt: skip
        rules: dict[str, int] = {}
        for alert in floor.alerts_open.get("alerts", []):
            rule = str(alert.get("rule", "?"))
            rules[rule] = rules.get(rule, 0) + 1
        for rule, n in sorted(rules.items()):
            alerts.add_metric([rule], n)
        yield alerts
        messages = GaugeMetricFamily("seatlink_api_mqtt_messages", "MQTT messages taken, by "
                                     "topic", labels=["topic"])  # fmt: skip
        for name, n in sorted(floor.counts.messages.items()):
            messages.add_metric([name], n)
        yield messages
        bad = GaugeMetricFamily("seatlink_api_mqtt_malformed", "MQTT messages that could not "
                                "be read, by topic", labels=["topic"])  # fmt: skip
        for name, n in sorted(floor.counts.malformed.items()):
            bad.add_metric([name], n)
        yield bad
        feeds = GaugeMetricFamily("seatlink_api_ws_clients", "WebSocket feeds connected")
        feeds.add_metric([], floor.feeds)
        yield feeds
        resyncs = GaugeMetricFamily("seatlink_api_ws_resyncs", "WebSocket feeds that fell "
                                    "behind and were told to resync")  # fmt: skip
        resyncs.add_metric([], floor.counts.feed_resyncs)
        yield resyncs
        up = GaugeMetricFamily("seatlink_api_broker_connected", "1 while the broker is "
                               "connected")  # fmt: skip
        up.add_metric([], 1 if floor.connected else 0)
        yield up
        publisher = self._owner._seat_agents
        if publisher is not None:
            pending = GaugeMetricFamily("seatlink_api_seat_agents_unpublished", "seats whose "
                                        "latest sign-in change the broker has not taken yet "
                                        "(published at the next connect)")  # fmt: skip
            pending.add_metric([], publisher.pending)
            yield pending
