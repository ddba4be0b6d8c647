# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a service carries for the data plane: its health check and its backends.

Part of the core that the modules and the speaker share (``lbspeaker.core``
in the speaker's wheel). ``allocate`` and ``validate`` check these keys of
``lb_services`` as they are; the speaker builds its services from the same
model. Every error is an :class:`~.errors.InputError` naming the field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TypeAlias, Union

from .errors import InputError, refuse_unknown_keys
from .fields import integer, text

# Union, not |: ansible-test's pylint reads the module_utils for older Pythons too
IPAddress: TypeAlias = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007

CHECK_TYPES = ("http", "tcp", "kube_proxy")
HEALTH_CHECK_KEYS = frozenset({"type", "url", "host", "port", "interval_ms", "timeout_ms"})
BACKEND_KEYS = frozenset({"node", "address", "port", "health_check"})
DEFAULT_CHECK_INTERVAL_MS = 1000
DEFAULT_CHECK_TIMEOUT_MS = 500
CHECK_INTERVAL_MS = (50, 600_000)
CHECK_TIMEOUT_MS = (10, 600_000)


@dataclass(frozen=True)
class HealthCheck:
    """How a node decides it has a serving local endpoint (hosts without Kubernetes).

    ``http`` and ``kube_proxy`` GET ``url`` (kube-proxy's healthCheckNodePort
    answers 200 with local endpoints, 503 without); ``tcp`` connects to
    ``host:port``.
    """

    type: str
    url: str = ""
    host: str = ""
    port: int = 0
    interval_ms: int = DEFAULT_CHECK_INTERVAL_MS
    timeout_ms: int = DEFAULT_CHECK_TIMEOUT_MS

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type}
        if self.type == "tcp":
            out.update(host=self.host, port=self.port)
        else:
            out["url"] = self.url
        out.update(interval_ms=self.interval_ms, timeout_ms=self.timeout_ms)
        return out


@dataclass(frozen=True)
class Backend:
    """One backend the speaker forwards a service's traffic to: ``address:port`` on ``node``."""

    node: str
    address: IPAddress
    port: int
    health_check: HealthCheck

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if self.address.version == 6 else f"{self.address}:{self.port}"

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "address": str(self.address),
            "port": self.port,
            "health_check": self.health_check.to_dict(),
        }


def parse_port(value: object, field: str) -> int:
    """A port number, 1-65535 (a string of digits is taken as its number)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return integer(value, field, 1, 65535)


def parse_health_check(data: object, field: str = "health_check") -> HealthCheck:
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping with type and url, or type, host and port")
    refuse_unknown_keys(data, HEALTH_CHECK_KEYS, field)
    kind = data.get("type")
    if kind not in CHECK_TYPES:
        raise InputError(f"{field}.type", kind, f"must be one of {', '.join(CHECK_TYPES)}")
    url = host = ""
    port = 0
    if kind in ("http", "kube_proxy"):
        url = text(data.get("url"), f"{field}.url").strip()
        if not url.startswith("http://"):
            raise InputError(f"{field}.url", url, "must be an http:// URL")
    else:
        host = text(data.get("host"), f"{field}.host", "127.0.0.1").strip()
        port = parse_port(data.get("port"), f"{field}.port")
    interval = integer(data.get("interval_ms"), f"{field}.interval_ms", *CHECK_INTERVAL_MS, DEFAULT_CHECK_INTERVAL_MS)
    timeout = integer(
        data.get("timeout_ms"), f"{field}.timeout_ms", *CHECK_TIMEOUT_MS, min(DEFAULT_CHECK_TIMEOUT_MS, interval)
    )
    return HealthCheck(str(kind), url, host, port, interval, timeout)


def parse_ip(value: object, field: str) -> IPAddress:
    if not isinstance(value, str):
        raise InputError(field, value, "must be an IP address string")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InputError(field, value, "is not a valid IP address") from None


def parse_backends(
    data: object, field: str = "backends", known_nodes: Collection[str] | None = None
) -> tuple[Backend, ...]:
    """A service's ``backends``: a non-empty list of ``{node, address, port, health_check?}``.

    A backend's ``health_check`` has the shape of a service's; a ``tcp`` check
    defaults its host and port to the backend's, and without one the backend
    gets a TCP connect every second. ``known_nodes`` (the speaker's node list)
    refuses a backend on a node it does not know.
    """
    if not isinstance(data, list) or not data:
        raise InputError(field, data, "must be a non-empty list of backends")
    out: list[Backend] = []
    for i, entry in enumerate(data):
        path = f"{field}[{i}]"
        if not isinstance(entry, Mapping):
            raise InputError(path, entry, "must be a mapping with node, address and port")
        refuse_unknown_keys(entry, BACKEND_KEYS, path)
        node = entry.get("node")
        if not isinstance(node, str) or not node:
            raise InputError(f"{path}.node", node, "must be a node name")
        if known_nodes is not None and node not in known_nodes:
            raise InputError(f"{path}.node", node, "is not listed in nodes")
        address = parse_ip(entry.get("address"), f"{path}.address")
        if address.is_multicast or address.is_unspecified:
            raise InputError(f"{path}.address", entry.get("address"), "must be a unicast address")
        port = parse_port(entry.get("port"), f"{path}.port")
        check_data = entry.get("health_check")
        if check_data is None:
            check = HealthCheck("tcp", host=str(address), port=port)
        else:
            if isinstance(check_data, Mapping) and check_data.get("type") == "tcp":
                check_data = {"host": str(address), "port": port, **check_data}
            check = parse_health_check(check_data, f"{path}.health_check")
        backend = Backend(node, address, port, check)
        if any((b.address, b.port) == (address, port) for b in out):
            raise InputError(path, dict(entry), f"lists {backend.endpoint} twice")
        out.append(backend)
    return tuple(out)
