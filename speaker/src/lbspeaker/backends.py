"""Backends of standalone-forwarded services: their health, and who forwards to whom.

A service with ``backends`` is forwarded by the speaker itself (see
``forwarding``): each backend is an address and port on a named node with a
health check (a TCP connect to the backend unless the config says otherwise).
The model and its parser are the core's (``lbspeaker.core.dataplane``).
Health is tracked here, over the one asyncio loop, with ``health.probe``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from .core.dataplane import Backend, IPAddress
from .core.service import ServicePort
from .health import probe
from .metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwardedService:
    """What the forwarder needs to know about a service with backends."""

    name: str
    addresses: tuple[IPAddress, ...]
    ports: tuple[ServicePort, ...]
    policy: str  # Cluster | Local
    backends: tuple[Backend, ...]


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
