"""The daemons' Prometheus metrics, exposed through ``prometheus_client``.

Every family a daemon exposes is declared once (``FAMILIES`` for the speaker,
the controller's own table for ``lbcontroller_``) with its type, its HELP text
and its label names; recording into an undeclared family, or with other
labels, raises, so nothing reaches ``/metrics`` without a type and a
description. :class:`Metrics` is a ``prometheus_client`` collector: counters
are kept here as plain numbers (the hot paths only add), and everything else
is read from the daemon's state at scrape time, so a scrape shows what the
daemon holds at that moment and nothing can go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "lbspeaker_"
# The classic text format: every Prometheus 2 and 3 reads it (prometheus_client's own default moved to 1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]
# A source reads several families at once from its owner's state: {family name: samples}.
Source = Callable[[], Mapping[str, Iterable[Sample]]]


@dataclass(frozen=True)
class Family:
    kind: Literal["counter", "gauge"]
    help: str
    labels: tuple[str, ...] = ()


_NODE = ("node",)
FAMILIES: dict[str, Family] = {
    "announced_ips": Family("gauge", "Service IPs this node announces now over Layer 2"),
    "address_announced": Family(
        "gauge",
        "1 while this node announces the service IP (l2: it is the elected leader and answers ARP/NDP; "
        "bgp: it advertises the route to at least one established peer), else 0",
        ("node", "address", "service", "mode")),
    "service_eligible": Family(
        "gauge", "1 while this node may announce the service (Cluster, or Local with a healthy local endpoint)",
        ("node", "service")),
    "members": Family("gauge", "Live speakers in this node's view, itself included"),
    "member_up": Family(
        "gauge", "1 while heartbeats from the configured member arrive in time (alive in this node's view), else 0",
        ("node", "member")),
    "member_heartbeat_age_seconds": Family(
        "gauge", "Seconds since this node last accepted a heartbeat from the member (members heard at least once)",
        ("node", "member")),
    "config_last_reload_successful": Family(
        "gauge", "1 if the last configuration reload was applied (or none was asked for), 0 if it was refused",
        _NODE),
    "leader_changes_total": Family("counter", "Times the elected leader of a service IP changed"),
    "heartbeats_sent_total": Family("counter", "Membership heartbeats sent"),
    "heartbeats_received_total": Family("counter", "Membership heartbeats accepted"),
    "heartbeats_dropped_total": Family("counter", "Membership datagrams dropped, by reason", ("reason",)),
    "heartbeats_send_errors_total": Family(
        "counter", "Membership datagrams that could not be sent or were reported undeliverable"),
    "membership_stalls_total": Family(
        "counter", "Times peer expiry was skipped because this process had not run for two heartbeat intervals"),
    "arp_replies_total": Family("counter", "ARP replies sent, by interface", ("interface",)),
    "ndp_replies_total": Family(
        "counter", "Neighbor advertisements sent in answer to solicitations, by interface", ("interface",)),
    "gratuitous_sent_total": Family(
        "counter", "Gratuitous ARP and unsolicited neighbor advertisements sent, by interface", ("interface",)),
    "packets_dropped_total": Family(
        "counter", "Frames the Layer 2 responder could not decode, by interface and reason", ("interface", "reason")),
    "health_checks_total": Family(
        "counter", "Service health checks run, by service and result", ("service", "result")),
    "backend_checks_total": Family(
        "counter", "Forwarding backend health checks run, by backend and result", ("backend", "result")),
    "forwarding_apply_errors_total": Family(
        "counter", "Forwarding rulesets nftables refused or could not load (retried)"),
    "reloads_total": Family("counter", "Configuration reloads, by result", ("result",)),
    "cluster_report_errors_total": Family(
        "counter", "Calls telling the Kubernetes cluster which node announces a Service's address (reading or "
        "writing its record on the Service) that failed (retried)"),
}


class Metrics(Collector):
    """The speaker's families by default; the controller passes its own (``lbcontroller_``)."""

    def __init__(self, families: dict[str, Family] | None = None, prefix: str = PREFIX) -> None:
        self.families = FAMILIES if families is None else families
        self.prefix = prefix
        self.values: dict[str, dict[Labels, float]] = {}
        self.readers: dict[str, Callable[[], float]] = {}
        self.sources: list[Source] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        family = _declared(self.families, name, "counter")
        _check_labels(name, family, labels)
        series = self.values.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0) + amount

    def get(self, name: str, **labels: str) -> float:
        return self.values.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        _declared(self.families, name, "gauge")
        self.readers[name] = read

    def counter(self, name: str, read: Callable[[], float]) -> None:
        """A counter kept by its owner as a plain number (hot paths)."""
        _declared(self.families, name, "counter")
        self.readers[name] = read

    def source(self, read: Source) -> None:
        """Labelled families read from their owner's state at scrape time (per IP, per peer, per pool)."""
        self.sources.append(read)

    def collect(self) -> Iterator[Metric]:
        samples: dict[str, list[Sample]] = {}
        for read in self.sources:
            for name, read_rows in read().items():
                if name not in self.families:
                    raise KeyError(f"metric {name} is not declared in its families")
                samples.setdefault(name, []).extend(read_rows)
        for name, family in self.families.items():
            if name in self.readers:
                rows: list[Sample] = [((), self.readers[name]())]
            elif name in self.values:
                rows = sorted(self.values[name].items())
            elif not family.labels and family.kind == "counter":
                rows = [((), 0)]  # an unlabelled counter exists from the start, so rate() sees its first increment
            else:
                rows = samples.get(name, [])
            metric_type = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = metric_type(self.prefix + name, family.help, labels=family.labels)
            for labels, value in rows:
                given = dict(labels)
                _check_labels(name, family, given)
                metric.add_metric([given[k] for k in family.labels], value)
            yield metric

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _declared(families: dict[str, Family], name: str, kind: str) -> Family:
    family = families.get(name)
    if family is None:
        raise KeyError(f"metric {name} is not declared in its families (lbspeaker.metrics.FAMILIES for the speaker)")
    if family.kind != kind:
        raise TypeError(f"metric {name} is a {family.kind}, not a {kind}")
    return family


def _check_labels(name: str, family: Family, labels: Mapping[str, str]) -> None:
    if set(labels) != set(family.labels):
        raise ValueError(f"metric {name} takes labels {family.labels}, got {tuple(labels)}")
