"""Backends of standalone-forwarded services: their config and their health.

A service with ``backends`` is forwarded by the speaker itself (see
``forwarding``): each backend is an address and port on a named node with a
health check (a TCP connect to the backend unless the config says otherwise).
Health is tracked here, over the one asyncio loop, with ``health.probe``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from .config import HealthCheckConfig, IPAddress
from .config import _health as parse_health_check
from .errors import ConfigError
from .health import probe
from .metrics import Metrics

log = logging.getLogger(__name__)

PROTOCOLS = ("tcp", "udp")
POLICIES = ("Cluster", "Local")
DEFAULT_INTERVAL_MS = 1000
DEFAULT_TIMEOUT_MS = 500


@dataclass(frozen=True)
class ServicePort:
    """A port the service listens on at its VIPs."""

    port: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class Backend:
    """One backend: ``address:port`` on ``node``; traffic to every service port goes to ``port``."""

    node: str
    address: IPAddress
    port: int
    health_check: HealthCheckConfig

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if self.address.version == 6 else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class ForwardedService:
    """What the forwarder needs to know about a service with backends."""

    name: str
    addresses: tuple[IPAddress, ...]
    ports: tuple[ServicePort, ...]
    policy: str  # Cluster | Local
    backends: tuple[Backend, ...]


# --- config --------------------------------------------------------------------


def _port(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(path, value, "must be a port number between 1 and 65535")
    return value


def parse_ports(raw: Any, field: str) -> tuple[ServicePort, ...]:
    """Parse a service's ``ports``: a list of port numbers or ``{port, protocol}`` mappings.

    ``field`` is the dotted path of the list, e.g. ``services[2].ports``.
    """
    if not isinstance(raw, list) or not raw:
        raise ConfigError(field, raw, "must be a non-empty list of ports")
    out: list[ServicePort] = []
    for i, entry in enumerate(raw):
        path = f"{field}[{i}]"
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key not in ("port", "protocol"):
                    raise ConfigError(f"{path}.{key}", value, "unknown key (expected one of port, protocol)")
            port = _port(entry.get("port"), f"{path}.port")
            protocol = entry.get("protocol", "tcp")
            if protocol not in PROTOCOLS:
                raise ConfigError(f"{path}.protocol", protocol, f"must be one of {', '.join(PROTOCOLS)}")
            item = ServicePort(port, protocol)
        else:
            item = ServicePort(_port(entry, path))
        if item in out:
            raise ConfigError(path, entry, f"lists {item} twice")
        out.append(item)
    return tuple(out)


def parse_backends(raw: Any, field: str, known_nodes: Collection[str] | None = None) -> tuple[Backend, ...]:
    """Parse a service's ``backends``: a list of ``{node, address, port, health_check?}``.

    ``field`` is the dotted path of the list, e.g. ``services[2].backends``;
    errors name the exact entry (``services[2].backends[1].port``) and its
    value. ``health_check`` has the shape of a service's health check; a
    ``tcp`` check defaults its host and port to the backend's, and without
    one the backend gets a TCP check every second.
    """
    if not isinstance(raw, list) or not raw:
        raise ConfigError(field, raw, "must be a non-empty list of backends")
    out: list[Backend] = []
    for i, entry in enumerate(raw):
        path = f"{field}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(path, entry, "must be a mapping with node, address and port")
        for key, value in entry.items():
            if key not in ("node", "address", "port", "health_check"):
                raise ConfigError(
                    f"{path}.{key}", value, "unknown key (expected one of address, health_check, node, port)"
                )
        node = entry.get("node")
        if not isinstance(node, str) or not node:
            raise ConfigError(f"{path}.node", node, "must be a node name")
        if known_nodes is not None and node not in known_nodes:
            raise ConfigError(f"{path}.node", node, "not listed in nodes")
        address_raw = entry.get("address")
        try:
            address = ipaddress.ip_address(address_raw.strip() if isinstance(address_raw, str) else "")
        except ValueError:
            raise ConfigError(f"{path}.address", address_raw, "must be an IP address") from None
        if address.is_multicast or address.is_unspecified:
            raise ConfigError(f"{path}.address", address_raw, "must be a unicast address")
        port = _port(entry.get("port"), f"{path}.port")
        check_raw = entry.get("health_check")
        if check_raw is None:
            check = HealthCheckConfig("tcp", host=str(address), port=port, interval_ms=DEFAULT_INTERVAL_MS,
                                      timeout_ms=DEFAULT_TIMEOUT_MS)
        else:
            if isinstance(check_raw, dict) and check_raw.get("type") == "tcp":
                check_raw = {"host": str(address), "port": port, **check_raw}
            check = parse_health_check(check_raw, f"{path}.health_check")
        backend = Backend(node, address, port, check)
        if any((b.address, b.port) == (address, port) for b in out):
            raise ConfigError(path, entry, f"lists {backend.endpoint} twice")
        out.append(backend)
    return tuple(out)


def check_families(addresses: Iterable[IPAddress], backends: Iterable[Backend], field: str) -> None:
    """Every service address needs at least one backend of its family (NAT cannot cross families)."""
    families = {b.address.version for b in backends}
    for j, addr in enumerate(addresses):
        if addr.version not in families:
            raise ConfigError(f"{field}[{j}]", str(addr), f"no IPv{addr.version} backend to forward it to")


# --- state ---------------------------------------------------------------------


def forwarded_to(service: ForwardedService, node: str, healthy: Collection[Backend]) -> tuple[Backend, ...]:
    """The backends this node sends the service's traffic to, in config order.

    Cluster: every healthy backend on any node. Local: this node's healthy backends.
    """
    return tuple(
        b for b in service.backends if b in healthy and (service.policy == "Cluster" or b.node == node)
    )


def local_eligible(service: ForwardedService, node: str, healthy: Collection[Backend]) -> bool:
    """Whether ``node`` may take traffic for ``service``.

    Under Local, only with a healthy backend on this node (otherwise L2 must
    not elect it and BGP must withdraw); under Cluster, with any healthy backend.
    """
    return bool(forwarded_to(service, node, healthy))


class BackendHealth:
    """Probes every backend on its own interval and remembers which are healthy.

    A backend starts unhealthy until its first check passes. Probes start on a
    fixed cadence (one every ``interval_ms``, not interval after the previous
    probe ended), and one failed probe removes the backend, so a backend that
    refuses connections leaves the set within one interval; one that hangs,
    within one interval plus the check's timeout. ``on_change`` is called
    (from the event loop) whenever the healthy set changes.
    """

    def __init__(self, on_change: Callable[[], None], metrics: Metrics | None = None) -> None:
        self.on_change = on_change
        self.metrics = metrics
        self.healthy: set[Backend] = set()
        self.tasks: dict[Backend, asyncio.Task[None]] = {}

    def configure(self, backends: Iterable[Backend]) -> None:
        """Start, keep or stop checks so exactly ``backends`` are probed."""
        wanted = set(backends)
        changed = False
        for backend in list(self.tasks):
            if backend not in wanted:
                self.tasks.pop(backend).cancel()
                if backend in self.healthy:
                    self.healthy.discard(backend)
                    changed = True
        for backend in wanted - set(self.tasks):
            self.tasks[backend] = asyncio.create_task(self._loop(backend), name=f"backend {backend.endpoint}")
        if changed:
            self.on_change()

    def snapshot(self) -> frozenset[Backend]:
        return frozenset(self.healthy)

    def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    async def _loop(self, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        interval = backend.health_check.interval_ms / 1000
        next_at = loop.time()
        while True:
            ok = await probe(backend.health_check)
            if self.metrics:
                result = "healthy" if ok else "unhealthy"
                self.metrics.inc("backend_checks_total", backend=backend.endpoint, result=result)
            if ok != (backend in self.healthy):
                (self.healthy.add if ok else self.healthy.discard)(backend)
                log.info("backend %s on %s %s", backend.endpoint, backend.node, "healthy" if ok else "unhealthy")
                self.on_change()
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
