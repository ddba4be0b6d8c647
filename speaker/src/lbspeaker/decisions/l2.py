"""The Layer 2 controller: per service IP, who leads it, and what this node does about it.

Every node ranks the same candidates the same way (``election``), so each
decides for itself; this controller turns the election into actions for this
node (take, re-announce, release with a drain) and a reason for ``/status``.
It holds one row per L2 service IP: the last elected leader, whether this
node announces it (set only once the announcer carried a take or release
out, see :meth:`L2Controller.carried_out`), and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from .. import election
from ..config import ServiceConfig
from ..core.dataplane import IPAddress
from ..desired import DesiredServices
from .view import Eligibility, MembershipView

# After saying we leave, keep accepting traffic this long, so connections the
# client opened before the new leader's gratuitous ARP still land here.
HANDOVER_GRACE_S = 0.3
# When a partition heals, the node giving an IP back sees the other side before
# (or after) the elected node sees it: ARP must resolve again both ways, and the
# elected node re-announces only once it hears us. Keep accepting until then.
REJOIN_GRACE_S = 2.0


@dataclass
class L2Announcement:
    """What this node does for one L2 service IP (a ``/status`` row per service on it)."""

    address: IPAddress
    services: tuple[str, ...]
    interfaces: tuple[str, ...]
    leader: str | None = None
    announcing: bool = False
    reason: str = "starting"


@dataclass(frozen=True)
class L2Action:
    """One thing for the announcer to carry out.

    ``take``: accept the IP's traffic, answer ARP/NDP for it, send gratuitous
    announcements. ``reannounce``: restart the gratuitous announcements of an
    IP this node keeps (a node joined: clients may hold the other side's MAC).
    ``release``: stop answering at once, keep accepting for ``grace_s``.
    ``withdraw``: the IP left this node's table (or moved interfaces) while
    announced: stop answering, drop its route at the next reconcile.
    """

    kind: Literal["take", "reannounce", "release", "withdraw"]
    address: IPAddress
    interfaces: tuple[str, ...]
    reason: str = ""
    grace_s: float = 0.0


@dataclass(frozen=True)
class LeaderChange:
    address: IPAddress
    old: str | None
    new: str | None


@dataclass(frozen=True)
class L2Plan:
    """The actions of one reconcile (or a slice of the table), in table order, and
    the leaders that changed. Once a settled view's actions are carried out,
    this node leads everything it is elected for and may say it is ready
    (make before break on rejoin, see ``membership``)."""

    actions: tuple[L2Action, ...]
    leader_changes: tuple[LeaderChange, ...]


def _no_leader_reason(services: Iterable[ServiceConfig]) -> str:
    if any(s.external_traffic_policy == "Local" for s in services):
        return "no eligible node (no live node has a healthy local endpoint)"
    return "no eligible node (no live node may announce it)"


NAMES_SHOWN = 8  # candidates named in a reason; more are counted


def _local(services: Iterable[ServiceConfig]) -> bool:
    """Whether the IP's candidates are the nodes with a serving endpoint (every service on it is Local)."""
    return all(s.external_traffic_policy == "Local" for s in services)


# Why this node leads, as told to the cluster (``decisions.report``): without the candidates, which /status
# names, so that a node joining or leaving does not rewrite the record of every address this node leads.
RECORD_REASONS = {
    "Cluster": "elected among the eligible nodes (Cluster)",
    "Local": "elected among the nodes with a serving endpoint (Local)",
}


def record_reason(services: Iterable[ServiceConfig]) -> str:
    """The reason told to the cluster for an IP this node announces over L2: stable while it leads."""
    return RECORD_REASONS["Local" if _local(services) else "Cluster"]


def _leader_reason(services: Iterable[ServiceConfig], candidates: tuple[str, ...]) -> str:
    """Why this node leads: how many nodes could have, and which (an operator's first question)."""
    local = _local(services)
    if len(candidates) == 1:
        return "only node with a serving endpoint (Local)" if local else "only eligible node (Cluster)"
    names = sorted(candidates)
    more = len(names) - NAMES_SHOWN
    shown = ", ".join(names[:NAMES_SHOWN]) + (f", and {more} more" if more > 0 else "")
    what = "nodes with a serving endpoint (Local)" if local else "eligible nodes (Cluster)"
    return f"elected among {len(names)} {what} [{shown}]"


class L2Controller:
    """Decides, per L2 service IP, whether this node announces it."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.table: dict[IPAddress, L2Announcement] = {}
        self._services: dict[IPAddress, list[ServiceConfig]] = {}
        self._allowed: dict[IPAddress, frozenset[str] | None] = {}
        self._excluded: dict[str, str] = {}

    def set_desired(
        self, desired: DesiredServices, interfaces_for: Callable[[ServiceConfig], tuple[str, ...]]
    ) -> tuple[L2Action, ...]:
        """Match the table to ``desired``; returns the withdrawals it needs.

        Rows whose IP and interfaces did not change keep their state, so a
        reload or a new snapshot does not interrupt them. An announced IP that
        left the table, or moved to other interfaces, is withdrawn (a moved one
        starts over as a new row and is taken again where it now belongs).
        """
        groups = election.group_by_address(desired.l2_services())
        table: dict[IPAddress, L2Announcement] = {}
        withdrawals: list[L2Action] = []
        allowed: dict[IPAddress, frozenset[str] | None] = {}
        for addr, svcs in groups.items():
            ifaces = tuple(sorted({i for s in svcs for i in interfaces_for(s)}))
            names = tuple(s.name for s in svcs)
            old = self.table.get(addr)
            if old and old.interfaces == ifaces:
                old.services = names
                table[addr] = old
            else:
                if old and old.announcing:
                    withdrawals.append(L2Action("withdraw", addr, old.interfaces, "interfaces changed"))
                table[addr] = L2Announcement(addr, names, ifaces)
            # Shared IPs have one backend key: a node allowed for any of them may take the traffic.
            lists = [desired.allowed_nodes.get(s.name) for s in svcs]
            allowed[addr] = None if any(a is None for a in lists) else frozenset().union(*(a for a in lists if a))
        for addr, old in self.table.items():
            if addr not in table and old.announcing:
                withdrawals.append(L2Action("withdraw", addr, old.interfaces, "no longer configured"))
        self.table = table
        self._services = groups
        self._allowed = allowed
        self._excluded = dict(desired.excluded_nodes)
        return tuple(withdrawals)

    def plan(
        self,
        view: MembershipView,
        here: Eligibility,
        reannounce: bool = False,
        addresses: Iterable[IPAddress] | None = None,
    ) -> L2Plan:
        """Elect each IP's leader on ``view``; what this node must do, and why.

        ``reannounce``: the membership grew (a node joined, or a peer had
        declared this node dead): re-announce every IP this node keeps, and
        give the ones it releases the longer rejoin drain. ``addresses``: only
        these rows (the daemon plans a big table in slices, yielding to the
        loop between them); by default the whole table.
        Updates each row's leader and reason; ``announcing`` changes only in
        :meth:`carried_out`.
        """
        actions: list[L2Action] = []
        changes: list[LeaderChange] = []
        for addr in self.table if addresses is None else addresses:
            ann = self.table.get(addr)
            if ann is None:
                continue  # left the table since the caller listed it
            svcs = self._services.get(addr, [])
            result = election.elect(addr, svcs, self._candidates(view, addr), view.families)
            if result.leader != ann.leader and view.settled:
                changes.append(LeaderChange(addr, ann.leader, result.leader))
            ann.leader = result.leader
            lead = view.settled and result.leader == self.node
            ann.reason = self._reason(addr, svcs, result, view, here)
            if lead and not ann.announcing:
                actions.append(L2Action("take", addr, ann.interfaces, ann.reason))
            elif lead and reannounce:
                actions.append(L2Action("reannounce", addr, ann.interfaces, ann.reason))
            elif not lead and ann.announcing:
                # released because a node came back (a heal): the elected node may not have heard us yet
                grace = REJOIN_GRACE_S if reannounce else HANDOVER_GRACE_S
                actions.append(L2Action("release", addr, ann.interfaces, ann.reason, grace))
        return L2Plan(tuple(actions), tuple(changes))

    def carried_out(self, action: L2Action) -> None:
        """The announcer did ``action``: record whether this node announces the IP now."""
        ann = self.table.get(action.address)
        if ann is None or action.kind == "withdraw":
            return
        if action.kind == "take":
            ann.announcing = True
        elif action.kind == "release":
            ann.announcing = False

    def announced(self) -> list[L2Announcement]:
        return [a for a in self.table.values() if a.announcing]

    def rows(self) -> list[L2Announcement]:
        """The table in address order (IPv4 first), as ``/status`` lists it."""
        return [a for _addr, a in sorted(self.table.items(), key=lambda kv: (kv[0].version, kv[0]))]

    def _candidates(self, view: MembershipView, addr: IPAddress) -> dict[str, frozenset[str]]:
        """The live nodes that may lead ``addr`` at all: not excluded, allowed by the source."""
        allowed = self._allowed.get(addr)
        if not self._excluded and allowed is None:
            return dict(view.live)
        return {
            n: healthy
            for n, healthy in view.live.items()
            if n not in self._excluded and (allowed is None or n in allowed)
        }

    def _reason(
        self,
        addr: IPAddress,
        svcs: list[ServiceConfig],
        result: election.IPElection,
        view: MembershipView,
        here: Eligibility,
    ) -> str:
        leader = result.leader
        elsewhere = f"leader is {leader}" if leader else "no other node can"
        if not view.settled:
            return "waiting for membership to settle"
        if self.node in self._excluded:
            return f"this node may not announce ({self._excluded[self.node]}); {elsewhere}"
        if addr.version not in view.families_of(self.node):
            where = ", ".join(here.unserved_on(addr.version))
            return f"cannot serve IPv{addr.version} here (no IPv{addr.version} address on {where}); {elsewhere}"
        if leader is None:
            return _no_leader_reason(svcs)
        if leader == self.node:
            return _leader_reason(svcs, result.candidates)
        if self.node not in result.candidates:
            if any(s.external_traffic_policy == "Local" for s in svcs):
                return f"not eligible here (no healthy local endpoint); leader is {leader}"
            return f"not eligible here (not among the nodes allowed to announce it); leader is {leader}"
        return f"{leader} ranks higher"
