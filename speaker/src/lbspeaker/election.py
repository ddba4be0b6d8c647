"""Leader election per service IP: pure functions over a membership view.

Every node ranks the same candidates the same way, so every node with the
same view computes the same leader without talking about it (as MetalLB does:
sort on sha256(node + "#" + ip), first wins).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import ServiceConfig
from .core.dataplane import IPAddress


@functools.lru_cache(maxsize=65536)
def score(node: str, ip: IPAddress) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def rank(nodes: Iterable[str], ip: IPAddress) -> list[str]:
    """``nodes`` ordered by sha256(node + "#" + ip); the first is the leader."""
    return sorted(nodes, key=lambda n: (score(n, ip), n))


@dataclass(frozen=True)
class IPElection:
    address: IPAddress
    services: tuple[str, ...]
    candidates: tuple[str, ...]  # eligible live nodes, best first
    leader: str | None


def eligible(services: Iterable[ServiceConfig], node_local_healthy: frozenset[str]) -> bool:
    """Whether a live node may lead an IP held by ``services`` (the services sharing it).

    Cluster: any live node. Local: a node with a healthy local endpoint for at
    least one of the Local services on the IP (shared IPs have one backend key,
    so any healthy one can take the traffic). Config forbids mixing policies on
    one IP; if it happened, a Cluster service makes every node eligible.
    """
    svcs = list(services)
    if any(s.external_traffic_policy == "Cluster" for s in svcs):
        return True
    return any(s.name in node_local_healthy for s in svcs)


def elect(
    address: IPAddress,
    services: Iterable[ServiceConfig],
    live: Mapping[str, frozenset[str]],
    families: Mapping[str, frozenset[int]] | None = None,
) -> IPElection:
    """Elect the leader of ``address``.

    ``live`` maps each live node (this one included) to the names of the Local
    services it reports healthy; ``families``, where given, each node to the
    address families it can serve now (a node without an IPv6 address on its
    interface cannot lead an IPv6 IP).
    """
    svcs = tuple(services)
    candidates = rank(
        (
            n
            for n, healthy in live.items()
            if (families is None or address.version in families.get(n, (4, 6))) and eligible(svcs, healthy)
        ),
        address,
    )
    return IPElection(address, tuple(s.name for s in svcs), tuple(candidates), candidates[0] if candidates else None)


def group_by_address(services: Iterable[ServiceConfig]) -> dict[IPAddress, list[ServiceConfig]]:
    """Service IPs mapped to the services listing them (several for a shared IP)."""
    out: dict[IPAddress, list[ServiceConfig]] = {}
    for svc in services:
        for addr in svc.addresses:
            out.setdefault(addr, []).append(svc)
    return out
