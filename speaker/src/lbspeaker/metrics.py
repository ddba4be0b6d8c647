"""Counters and gauges, rendered in the Prometheus text format."""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "lbspeaker_"

HELP = {
    "announced_ips": ("gauge", "Service IPs this node announces now"),
    "members": ("gauge", "Live speakers in this node's view, itself included"),
    "leader_changes_total": ("counter", "Times the elected leader of an IP changed"),
    "heartbeats_sent_total": ("counter", "Membership heartbeats sent"),
    "heartbeats_received_total": ("counter", "Membership heartbeats accepted"),
    "heartbeats_dropped_total": ("counter", "Membership datagrams dropped, by reason"),
    "heartbeats_send_errors_total": ("counter", "Membership datagrams that could not be sent"),
    "arp_replies_total": ("counter", "ARP replies sent, by interface"),
    "ndp_replies_total": ("counter", "Neighbor advertisements sent in answer to solicitations, by interface"),
    "gratuitous_sent_total": ("counter", "Gratuitous ARP and unsolicited NA frames sent"),
    "packets_dropped_total": ("counter", "Frames the L2 responder could not decode, by reason"),
    "health_checks_total": ("counter", "Health checks run, by service and result"),
    "reloads_total": ("counter", "Configuration reloads, by result"),
}


class Metrics:
    def __init__(self) -> None:
        self.values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self.gauges: dict[str, Callable[[], float]] = {}
        # Whole families rendered by their owners (the BGP speaker), appended as they come.
        self.sections: list[Callable[[], list[str]]] = []

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        series = self.values.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0) + amount

    def get(self, name: str, **labels: str) -> float:
        return self.values.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read

    def counter(self, name: str, read: Callable[[], float]) -> None:
        """A counter kept by its owner as a plain number (hot paths)."""
        self.gauges[name] = read

    def render(self) -> str:
        lines = []
        names = sorted(set(self.values) | set(self.gauges) | {n for n, (k, _help) in HELP.items() if k == "counter"})
        for name in names:
            kind, text = HELP.get(name, ("gauge", name))
            lines.append(f"# HELP {PREFIX}{name} {text}")
            lines.append(f"# TYPE {PREFIX}{name} {kind}")
            if name in self.gauges:
                lines.append(f"{PREFIX}{name} {self.gauges[name]():g}")
                continue
            for labels, value in sorted(self.values.get(name, {}).items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{PREFIX}{name}{{{label_text}}} {value:g}" if labels else f"{PREFIX}{name} {value:g}")
        for section in self.sections:
            lines.extend(section())
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
