"""The BGP controller: per service IP, advertise it from this node or withdraw it.

Cluster: every node announces (each is one ECMP unit). Local: only while a
local endpoint is healthy here, so routers send traffic only to nodes that
keep the client's address and have somewhere to deliver it. To whom and with
which attributes is the BGP speaker's policy (``bgp.manager.routes_for_peer``): the
bgp section's advertisements, or, for a cluster Service, its pool's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bgp.config import route_advertisement
from ..bgp.manager import Announcement
from ..config import ServiceConfig
from ..core.advertisements import Advertisement
from ..core.dataplane import IPAddress
from ..desired import DesiredServices
from .view import Eligibility, service_eligible


@dataclass(frozen=True)
class BgpDecision:
    """One BGP service IP on this node.

    ``advertise``: handed to the BGP speaker (this node may announce it).
    ``announcing``: advertised and at least one session is Established, so a
    router hears it.
    """

    service: str
    address: IPAddress
    policy: str
    advertise: bool
    announcing: bool
    reason: str
    advertisements: tuple[Advertisement, ...] = ()  # the service's own BGP policy (a cluster pool's)


def _reason(svc: ServiceConfig, here: Eligibility, desired: DesiredServices, eligible: bool, established: int) -> str:
    if not eligible:
        if here.node in desired.excluded_nodes:
            return f"this node may not announce ({desired.excluded_nodes[here.node]}), withdrawn"
        if svc.external_traffic_policy == "Local":
            return "Local: no healthy local endpoint here, withdrawn"
        return "not among the nodes allowed to announce it, withdrawn"
    if established == 0:
        return "no BGP session established"
    if svc.external_traffic_policy == "Local":
        return f"Local: healthy local endpoint, advertised to {established} peer(s)"
    return f"Cluster: every node announces; advertised to {established} peer(s)"


class BgpController:
    """Decides which BGP service IPs this node advertises."""

    def __init__(self) -> None:
        self.desired = DesiredServices()

    def set_desired(self, desired: DesiredServices) -> None:
        self.desired = desired

    def decide(self, here: Eligibility, established: int) -> tuple[BgpDecision, ...]:
        """Every BGP service IP, in configuration order; ``established``: sessions up now."""
        out = []
        for svc in self.desired.bgp_services():
            eligible = service_eligible(svc, here, self.desired)
            reason = _reason(svc, here, self.desired, eligible, established)
            for addr in svc.addresses:
                out.append(
                    BgpDecision(
                        svc.name, addr, svc.external_traffic_policy, eligible, eligible and established > 0, reason,
                        svc.advertisements,
                    )
                )
        return tuple(out)


def announcements(decisions: tuple[BgpDecision, ...]) -> tuple[Announcement, ...]:
    """What the BGP speaker is told to advertise: the decisions to advertise."""
    return tuple(
        Announcement(d.service, d.address, d.policy, tuple(route_advertisement(ad) for ad in d.advertisements))
        for d in decisions
        if d.advertise
    )
