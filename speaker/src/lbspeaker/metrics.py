"""Counters and gauges, rendered in the Prometheus text format.

Every family the speaker exposes is declared once in ``FAMILIES`` with its
type, its HELP text and its label names; recording into an undeclared family
raises, so nothing reaches ``/metrics`` without a type and a description.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

PREFIX = "lbspeaker_"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    kind: Literal["counter", "gauge"]
    help: str
    labels: tuple[str, ...] = ()


FAMILIES: dict[str, Family] = {
    "announced_ips": Family("gauge", "Service IPs this node announces now over Layer 2"),
    "members": Family("gauge", "Live speakers in this node's view, itself included"),
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
}


class Metrics:
    """The speaker's families by default; the controller passes its own (``lbcontroller_``)."""

    def __init__(self, families: dict[str, Family] | None = None, prefix: str = PREFIX) -> None:
        self.families = FAMILIES if families is None else families
        self.prefix = prefix
        self.values: dict[str, dict[Labels, float]] = {}
        self.readers: dict[str, Callable[[], float]] = {}
        # Whole families rendered by their owners (the BGP speaker), appended as they come.
        self.sections: list[Callable[[], list[str]]] = []

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        family = _declared(self.families, name, "counter")
        if set(labels) != set(family.labels):
            raise ValueError(f"metric {name} takes labels {family.labels}, got {tuple(labels)}")
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

    def render(self) -> str:
        lines: list[str] = []
        for name, family in self.families.items():
            if name in self.readers:
                samples: list[tuple[Labels, float]] = [((), self.readers[name]())]
            elif family.labels:
                samples = sorted(self.values.get(name, {}).items())
            else:  # an unlabelled counter exists from the start, at 0
                samples = [((), self.values.get(name, {}).get((), 0))]
            lines.extend(render_family(self.prefix + name, family, samples))
        for section in self.sections:
            lines.extend(section())
        return "\n".join(lines) + "\n"


def render_family(name: str, family: Family, samples: Iterable[tuple[Labels, float]]) -> list[str]:
    """One family in the text format: HELP, TYPE, then one line per sample."""
    lines = [f"# HELP {name} {family.help}", f"# TYPE {name} {family.kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return lines


def _number(value: float) -> str:
    # Whole numbers in full: ``:g`` would turn a counter of 1234567 into 1.23457e+06.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _declared(families: dict[str, Family], name: str, kind: str) -> Family:
    family = families.get(name)
    if family is None:
        raise KeyError(f"metric {name} is not declared in its families (lbspeaker.metrics.FAMILIES for the speaker)")
    if family.kind != kind:
        raise TypeError(f"metric {name} is a {family.kind}, not a {kind}")
    return family


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
