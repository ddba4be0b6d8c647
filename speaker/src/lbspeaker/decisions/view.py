"""The controllers' inputs besides the desired state: the membership view and
this node's eligibility, each taken once per reconcile so every decision in it
sees the same moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import ServiceConfig
from ..desired import DesiredServices
from ..membership import BOTH_FAMILIES


@dataclass(frozen=True)
class MembershipView:
    """Who may lead, as ``membership.Membership`` sees it now.

    ``live``: each node that may lead (this one included; peers alive and
    ready) -> the Local services it reports healthy. ``families``: each of
    them -> the address families it can serve. ``settled``: every peer has
    been heard or had time to be (before that, nothing is decided).
    """

    settled: bool
    live: Mapping[str, frozenset[str]]
    families: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def families_of(self, node: str) -> frozenset[int]:
        return self.families.get(node, BOTH_FAMILIES)


@dataclass(frozen=True)
class Eligibility:
    """What this node can serve now.

    ``local_healthy``: the Local services with a healthy endpoint here (health
    checks, forwarded backends, a source's allow-list). ``unserved``: each
    announcing interface -> the address families it has no address of.
    """

    node: str
    local_healthy: frozenset[str] = frozenset()
    unserved: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def unserved_on(self, family: int) -> list[str]:
        """The interfaces without an address of ``family``, sorted."""
        return [name for name, missing in sorted(self.unserved.items()) if family in missing]


def service_eligible(svc: ServiceConfig, here: Eligibility, desired: DesiredServices) -> bool:
    """Whether this node may announce ``svc``: not excluded, allowed by the source
    (where it restricts the service), and Cluster, or Local with a healthy endpoint here."""
    if here.node in desired.excluded_nodes:
        return False
    allowed = desired.allowed_nodes.get(svc.name)
    if allowed is not None and here.node not in allowed:
        return False
    return svc.external_traffic_policy != "Local" or svc.name in here.local_healthy
