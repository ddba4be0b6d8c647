"""The speaker's desired state, and the sources that produce it.

A *source* says which services exist and where they may be announced; the
per-protocol controllers (``lbspeaker.decisions``) decide from it, with the
membership view and this node's eligibility, what this node announces. The
daemon reads every source's snapshot, merges them and hands the result on;
it never asks where a service came from.

Today's source is the configuration file (:class:`StaticSource`). A source
that follows a cluster implements the same :class:`Source` protocol and adds
what only it knows: per service, the nodes allowed to announce it (under
``Local``, the nodes with a serving endpoint), and the nodes that may
announce nothing at all (NotReady, excluded from load balancers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .config import Config, ServiceConfig


@dataclass(frozen=True)
class DesiredServices:
    """Everything the controllers need to know about services, from all sources.

    ``allowed_nodes``: service name -> the only nodes that may announce it; a
    service not listed may be announced by any node (its policy and health
    decide). ``excluded_nodes``: node -> why it may announce nothing now.
    ``cluster_services``: service name -> the Kubernetes Service
    (``namespace/name``) it was made from, for the services a cluster source
    gives: those are the ones whose announcements are told to the cluster
    (``sources.announcing``); the config file's services are not listed.
    ``recorded``: the Kubernetes Services (``namespace/name``) that carried this
    node's record when the source last looked (one of this node's earlier runs
    announced there): the reporter reads only those, and the ones this node
    announces, back from the API.
    """

    services: tuple[ServiceConfig, ...] = ()
    allowed_nodes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    excluded_nodes: Mapping[str, str] = field(default_factory=dict)
    cluster_services: Mapping[str, str] = field(default_factory=dict)
    recorded: frozenset[str] = frozenset()

    def l2_services(self) -> tuple[ServiceConfig, ...]:
        return tuple(s for s in self.services if s.mode == "l2")

    def bgp_services(self) -> tuple[ServiceConfig, ...]:
        return tuple(s for s in self.services if s.mode == "bgp")

    def allowed_here(self, node: str) -> frozenset[str]:
        """Local services whose allow-list names ``node``: a source's statement that
        the node has a serving endpoint, counted as healthy here (and told to peers)."""
        return frozenset(
            s.name
            for s in self.services
            if s.external_traffic_policy == "Local" and node in self.allowed_nodes.get(s.name, ())
        )


class Source(Protocol):
    """A producer of desired state. ``start`` begins following it; ``changed`` is
    called (on the event loop) whenever ``snapshot()`` would return something new."""

    name: str

    def snapshot(self) -> DesiredServices: ...

    async def start(self, changed: Callable[[], None]) -> None: ...

    async def stop(self) -> None: ...


class StaticSource:
    """The services of the configuration file; they change only on reload (SIGHUP)."""

    name = "config"

    def __init__(self, config: Config) -> None:
        self._state = DesiredServices(config.services)
        self._changed: Callable[[], None] | None = None

    def snapshot(self) -> DesiredServices:
        return self._state

    async def start(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    async def stop(self) -> None:
        self._changed = None

    def configure(self, config: Config) -> None:
        """Adopt a reloaded configuration's services."""
        state = DesiredServices(config.services)
        if state != self._state:
            self._state = state
            if self._changed is not None:
                self._changed()


class Conflict(NamedTuple):
    """A service name two sources give: the copy of ``kept`` is used, the one of ``ignored`` is not.
    ``same_addresses``: both copies hold the same addresses (site.yml applied the inventory's service to the
    cluster: the usual case, nothing to fix), or not (two different services under one name)."""

    name: str
    kept: str
    ignored: str
    same_addresses: bool


@dataclass(frozen=True)
class Merged:
    state: DesiredServices
    conflicts: tuple[Conflict, ...] = ()


def merge(snapshots: Iterable[tuple[str, DesiredServices]]) -> Merged:
    """One desired state from several sources' ``(name, snapshot)``, in order.

    A service name given by more than one source is taken from the first
    (the configuration file comes first) and reported in ``conflicts``.
    A node excluded by any source is excluded.
    """
    services: list[ServiceConfig] = []
    kept: dict[str, tuple[str, ServiceConfig]] = {}  # service name -> (the source it was taken from, its copy)
    allowed: dict[str, frozenset[str]] = {}
    excluded: dict[str, str] = {}
    cluster: dict[str, str] = {}
    recorded: set[str] = set()
    conflicts: list[Conflict] = []
    for source, state in snapshots:
        for svc in state.services:
            if svc.name in kept:
                first, copy = kept[svc.name]
                conflicts.append(Conflict(svc.name, first, source, set(svc.addresses) == set(copy.addresses)))
                continue
            kept[svc.name] = (source, svc)
            services.append(svc)
            if svc.name in state.allowed_nodes:
                allowed[svc.name] = state.allowed_nodes[svc.name]
            if svc.name in state.cluster_services:
                cluster[svc.name] = state.cluster_services[svc.name]
                if cluster[svc.name] in state.recorded:
                    recorded.add(cluster[svc.name])
        for node, why in state.excluded_nodes.items():
            excluded.setdefault(node, why)
    return Merged(DesiredServices(tuple(services), allowed, excluded, cluster, frozenset(recorded)), tuple(conflicts))
