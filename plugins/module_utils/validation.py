# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a whole desired state before anything is applied.

Input errors (a field of the wrong type, an unknown policy) raise
:class:`~.errors.InputError` naming the field. Everything else is a finding:
an *error* when the desired state cannot work as written (an IP no pool owns,
two services that must share an IP but never can, traffic that nobody will
answer), a *warning* when it works but not the way the user probably means
(a sharing group the allocator will split, pods that get uneven traffic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .advertisements import Advertisement, names_list, parse_advertisements, pool_announcement
from .allocator import Allocator, PoolChooser, Refusal, family_text
from .errors import AllocationError, InputError
from .fields import sequence
from .manifest import parse_workload
from .pools import Pool, check_no_overlaps, format_address, parse_pool
from .service import Service, parse_service
from .sharing import sharing_conflict
from .traffic import (
    PodShare,
    assumed_leader,
    describe,
    is_even,
    other_policy,
    per_pod_shares,
    shares_to_list,
)
from .workload import Workload

SPREAD_FIX = (
    "spread the pods so every node runs the same number: topologySpreadConstraints with maxSkew 1 on "
    "kubernetes.io/hostname, pod anti-affinity on kubernetes.io/hostname, or a DaemonSet"
)
COVER_FIX = (
    "run a pod on every candidate node: a DaemonSet, or a Deployment with at least one replica per node and "
    "topologySpreadConstraints (maxSkew 1, whenUnsatisfiable DoNotSchedule, topologyKey kubernetes.io/hostname) "
    "or required pod anti-affinity on kubernetes.io/hostname; or limit the L2 advertisement's nodes to the nodes "
    "that run pods; or use external_traffic_policy Cluster"
)


@dataclass
class DesiredState:
    pools: list[Pool]
    services: list[Service]
    advertisements: list[Advertisement]
    nodes: list[str]
    placement: dict[str, dict[str, int]]
    workloads: dict[str, Workload] = field(default_factory=dict)
    # each service's path in the options (services[3]), parallel to services
    service_fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    service: str | None
    message: str
    field: str  # the option to fix, by its path: services[3], pools[1].addresses[0], l2_advertisements[0]

    def to_dict(self) -> dict[str, object]:
        return {"service": self.service, "message": self.message, "field": self.field}


@dataclass
class Report:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    traffic: dict[str, dict[str, object]] = field(default_factory=dict)
    # namespace/name -> services[i], for findings about a service
    service_fields: dict[str, str] = field(default_factory=dict)

    def _field(self, service: str | None, at: str | None) -> str:
        if at is not None:
            return at
        return self.service_fields.get(service, "services") if service else ""

    def error(self, service: str | None, message: str, at: str | None = None) -> None:
        self.errors.append(Finding(service, message, self._field(service, at)))

    def warn(self, service: str | None, message: str, at: str | None = None) -> None:
        self.warnings.append(Finding(service, message, self._field(service, at)))

    def to_dict(self) -> dict[str, object]:
        return {
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "traffic": self.traffic,
        }


def parse_placement(data: object, field: str = "placement") -> dict[str, dict[str, int]]:
    """``{namespace/name: {node: pods}}``."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping of namespace/name to {node: pod count}")
    placement: dict[str, dict[str, int]] = {}
    for key, nodes in data.items():
        kfield = f"{field}[{key!r}]"
        if not isinstance(key, str) or key.count("/") != 1 or not all(key.split("/")):
            raise InputError(kfield, key, "keys must be namespace/name")
        if not isinstance(nodes, Mapping):
            raise InputError(kfield, nodes, "must be a mapping of node name to pod count")
        counts: dict[str, int] = {}
        for node, given in nodes.items():
            if not isinstance(node, str) or not node:
                raise InputError(kfield, node, "node names must be non-empty strings")
            count = int(given) if isinstance(given, str) and given.isdigit() else given
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InputError(f"{kfield}.{node}", count, "must be a pod count (a non-negative integer)")
            counts[node] = count
        placement[key] = counts
    return placement


def parse_desired_state(
    *,
    pools: object = None,
    services: object = None,
    l2_advertisements: object = None,
    bgp_advertisements: object = None,
    nodes: object = None,
    placement: object = None,
    workloads: object = None,
) -> DesiredState:
    """Parse every option; raises InputError naming the first bad field."""
    parsed_pools = []
    for i, p in enumerate(sequence(pools, "pools")):
        if not isinstance(p, Mapping):
            raise InputError(f"pools[{i}]", p, "must be a mapping with name and addresses")
        parsed_pools.append(parse_pool(p, f"pools[{i}]"))
    parsed_services = [parse_service(s, f"services[{i}]") for i, s in enumerate(sequence(services, "services"))]
    fields = [f"services[{i}]" for i, s in enumerate(parsed_services) if s.state == "present"]
    ads = parse_advertisements(l2_advertisements, "l2") + parse_advertisements(bgp_advertisements, "bgp")
    present = [s for s in parsed_services if s.state == "present"]
    return DesiredState(
        pools=parsed_pools,
        services=present,
        advertisements=ads,
        nodes=list(names_list(nodes, "nodes", "node")),
        placement=parse_placement(placement),
        # a service's own workload key (lb_services entries carry it), unless the workloads option names it
        workloads={
            **{s.key: s.workload for s in present if s.workload is not None},
            **parse_workloads(workloads, present),
        },
        service_fields=fields,
    )


def parse_workloads(data: object, services: Sequence[Service], field: str = "workloads") -> dict[str, Workload]:
    """``{namespace/name: workload}``, the shape of each service's pods (as for ``service_manifest``)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping of namespace/name to a workload")
    by_key = {s.key: s for s in services}
    workloads: dict[str, Workload] = {}
    for key, workload in data.items():
        kfield = f"{field}[{key!r}]"
        service = by_key.get(str(key))
        if service is None:
            raise InputError(kfield, key, "is not among the services (keys are namespace/name)")
        workloads[service.key] = parse_workload(workload, service, kfield, rendering=False)
    return workloads


def placement_from_workload(workload: Workload, nodes: Sequence[str]) -> dict[str, int] | None:
    """One placement the scheduler may choose for the workload, or None if nothing bounds it.

    A DaemonSet runs one pod per node. A Deployment spread with maxSkew 1
    (DoNotSchedule) puts floor(R/N) or ceil(R/N) pods on every node; with
    required anti-affinity at most one per node. Which nodes get the extra
    pods is the scheduler's choice: the first nodes are taken here.
    """
    if not nodes:
        return None
    if workload.kind == "DaemonSet":
        return dict.fromkeys(nodes, 1)
    replicas = workload.replicas or 0
    if workload.anti_affinity == "required":
        return {node: 1 if i < replicas else 0 for i, node in enumerate(nodes)}
    if workload.spread:
        base, extra = divmod(replicas, len(nodes))
        return {node: base + (1 if i < extra else 0) for i, node in enumerate(nodes)}
    return None


def validate(state: DesiredState) -> Report:
    report = Report()
    for service, at in zip(state.services, state.service_fields, strict=True):
        report.service_fields.setdefault(service.key, at)
    pools = _check_pools(state, report)
    # Overlapping or duplicate pools make any simulated allocation meaningless.
    allocator = Allocator(list(pools.values())) if not report.errors else None
    chooser = PoolChooser(list(pools.values()))
    services = _check_duplicates(state, report)
    _check_requested_sharing(services, report)
    pool_of: dict[str, Pool] = {}
    failed = {f.service for f in report.errors}  # refused sharing a requested IP: the allocator would say it again
    for service in services:
        pool = resolve_pool(service, chooser, report)
        if pool is None:
            continue
        if allocator is not None and service.key not in failed:
            # The allocator itself, run over the desired state in list order
            # (an empty ledger): it knows which pool wins, and when one runs out.
            try:
                pool = pools[allocator.assign(service).pool]
            except AllocationError as exc:
                report.error(service.key, f"cannot get its addresses: {exc}")
                continue
        pool_of[service.key] = pool
    _check_sharing_groups(services, pool_of, report)
    _check_advertisements(state, pools, report)
    _check_placement_keys(state, services, report)
    for service in services:
        pool = pool_of.get(service.key)
        if pool is not None:
            _check_traffic(service, pool, state, report)
    return report


def _check_pools(state: DesiredState, report: Report) -> dict[str, Pool]:
    by_name: dict[str, Pool] = {}
    for i, pool in enumerate(state.pools):
        if pool.name in by_name:
            report.error(None, f"pool {pool.name!r} is defined twice; pool names must be unique", f"pools[{i}].name")
            continue
        by_name[pool.name] = pool
    try:
        check_no_overlaps(state.pools)
    except InputError as exc:
        report.error(None, f"pools overlap: {exc.message}", exc.field)
    return by_name


def _check_duplicates(state: DesiredState, report: Report) -> list[Service]:
    seen: set[str] = set()
    unique = []
    fields = state.service_fields or [""] * len(state.services)
    for service, at in zip(state.services, fields, strict=True):
        if service.key in seen:
            report.error(service.key, "is listed twice; each namespace/name may appear once", at or None)
            continue
        seen.add(service.key)
        unique.append(service)
    return unique


def resolve_pool(service: Service, chooser: PoolChooser, report: Report) -> Pool | None:
    """The pool the service's addresses will come from, reporting why none can.

    The allocator's own choice (:class:`~.allocator.PoolChooser`: requested
    IPs, else ``address_pool``, else the automatic order) gives the pool or
    the refusal; this words the refusal in the user's terms. :func:`validate`
    then runs the allocator over the desired state, which settles the pool (a
    full pool falls through to the next) and finds pools that run out.
    """
    choice = chooser.choose(service)
    refusal = choice.refusal or next((r for _pool, r in choice.ranked if r is not None), None)
    candidates = choice.candidates
    if candidates:
        return candidates[0]
    if choice.path == "auto" or refusal is None:
        report.error(
            service.key,
            f"no pool can give it an address automatically: none has auto_assign on, serves namespace "
            f"{service.namespace!r} and labels {dict(service.labels)} and has {family_text(service.wanted_families)}",
        )
    else:
        report.error(service.key, _refusal_message(refusal, service, chooser))
    return None


def _refusal_message(refusal: Refusal, service: Service, chooser: PoolChooser) -> str:
    """A refusal of a requested address or pool, in the user's terms."""
    ip = format_address(*refusal.address) if refusal.address else ""
    pool = refusal.pool.name if refusal.pool else ""
    requested = service.address_pool
    if refusal.kind == "unowned":
        return f"requests {ip}, which no pool owns; add it to a pool or request another address"
    if refusal.kind == "split":
        other = format_address(*refusal.other_address) if refusal.other_address else ""
        other_pool = refusal.other_pool.name if refusal.other_pool else ""
        return (
            f"requests addresses from different pools ({ip} in {pool!r}, {other} in {other_pool!r}); "
            "all addresses of a service must come from one pool"
        )
    if refusal.kind == "not_requested_pool":
        if requested not in chooser.names:
            return f"requests address_pool {requested!r}, which does not exist"
        return (
            f"requests {ip} from pool {requested!r}, which does not own it (pool {pool!r} does); "
            "fix address_pool or the address"
        )
    if refusal.kind == "buggy":
        return f"requests {ip}, which pool {pool!r} never hands out (avoid_buggy_ips)"
    if refusal.kind == "no_such_pool":
        known = ", ".join(sorted(chooser.names)) or "none"
        return f"requests address_pool {requested!r}, which does not exist (pools: {known})"
    if refusal.kind == "families":
        return f"requests address_pool {pool!r}, which has no {family_text(refusal.families)} range"
    if service.load_balancer_ips:
        return f"requests an address of pool {pool!r}, which {refusal.detail}"
    return f"requests address_pool {pool!r}, which {refusal.detail}"


def _check_requested_sharing(services: Sequence[Service], report: Report) -> None:
    """Services requesting the same IP must be able to share it: else one fails."""
    holders: dict[tuple[int, int], list[Service]] = {}
    for service in services:
        for address in service.load_balancer_ips:
            holders.setdefault(address, []).append(service)
    for (family, value), group in holders.items():
        ip = format_address(family, value)
        for i, later in enumerate(group):
            for earlier in group[:i]:
                reason = sharing_conflict(later, earlier)
                if reason:
                    report.error(
                        later.key,
                        f"requests {ip}, as {earlier.key} does, but the two can never share it: {reason}",
                    )


def _check_sharing_groups(services: Sequence[Service], pool_of: Mapping[str, Pool], report: Report) -> None:
    """Services with one sharing key that the allocator will never put together."""
    groups: dict[str, list[Service]] = {}
    for service in services:
        if service.sharing_key:
            groups.setdefault(service.sharing_key, []).append(service)
    for key, group in groups.items():
        for i, later in enumerate(group):
            for earlier in group[:i]:
                if set(later.load_balancer_ips) & set(earlier.load_balancer_ips):
                    continue  # requested the same IP: _check_requested_sharing decided
                reason = sharing_conflict(later, earlier)
                if reason:
                    detail = (
                        reason.removeprefix(f"it is held by {earlier.key}, ")
                        .replace("whose backends differ", "their backends differ")
                        .replace("which already uses", "both use")
                        .removesuffix(" on it")
                    )
                    report.warn(
                        later.key,
                        f"has sharing_key {key!r} like {earlier.key} but the two can never share an IP: "
                        f"{detail}; they will get separate addresses",
                    )
                    continue
                if later.load_balancer_ips and earlier.load_balancer_ips:
                    report.warn(
                        later.key,
                        f"has sharing_key {key!r} like {earlier.key} but their requested IPs disagree "
                        f"({_ips(later)} vs {_ips(earlier)}); they will not share an address",
                    )
                    continue
                mine, theirs = pool_of.get(later.key), pool_of.get(earlier.key)
                if mine is not None and theirs is not None and mine.name != theirs.name:
                    report.warn(
                        later.key,
                        f"has sharing_key {key!r} like {earlier.key} but takes its address from pool "
                        f"{mine.name!r}, not {theirs.name!r}; they will not share an address",
                    )


def _ips(service: Service) -> str:
    return ", ".join(format_address(f, v) for f, v in service.load_balancer_ips)


def _check_advertisements(state: DesiredState, pools: Mapping[str, Pool], report: Report) -> None:
    known_nodes = set(state.nodes)
    for ad in state.advertisements:
        for name in ad.pools:
            if name not in pools:
                report.error(None, f"{ad.field} announces pool {name!r}, which does not exist", f"{ad.field}.pools")
        if known_nodes:
            unknown = [n for n in ad.nodes if n not in known_nodes]
            if unknown:
                unknown_text = ", ".join(unknown)
                report.warn(
                    None, f"{ad.field} names nodes that are not in nodes: {unknown_text}", at=f"{ad.field}.nodes"
                )


def _check_placement_keys(state: DesiredState, services: Sequence[Service], report: Report) -> None:
    keys = {s.key for s in services}
    known_nodes = set(state.nodes)
    for key, counts in state.placement.items():
        if key not in keys:
            report.warn(key, "has a placement but is not among the services", at=f"placement[{key!r}]")
        if known_nodes:
            unknown = [n for n in counts if n not in known_nodes]
            if unknown:
                unknown_text = ", ".join(unknown)
                report.warn(
                    key, f"placement names nodes that are not in nodes: {unknown_text}", at=f"placement[{key!r}]"
                )


def _check_traffic(service: Service, pool: Pool, state: DesiredState, report: Report) -> None:
    key = service.key
    plan = pool_announcement(pool.name, state.advertisements, state.nodes)
    mode, modes = plan.mode, plan.modes
    candidates = None if plan.nodes is None else list(plan.nodes)
    if mode is None:
        report.warn(
            key,
            f"its pool {pool.name!r} is in no l2_advertisements or bgp_advertisements entry: "
            "it gets an address but nobody announces it",
        )
        return
    placement = state.placement.get(key)
    policy = service.external_traffic_policy
    workload = state.workloads.get(key)
    derived = False
    if placement is None and workload is not None:
        derived = True
        _check_workload_shape(service, workload, mode=mode, modes=modes, nodes=state.nodes, report=report)
        placement = placement_from_workload(workload, state.nodes)
    elif "l2" in modes and policy == "Local":
        _check_l2_local(service, pool, state, placement, report)
    if placement is None:
        return

    pods = sum(placement.values())
    if pods == 0:
        report.warn(key, "its placement has no pods: there is nothing to send traffic to")
        return
    leader = assumed_leader(placement, candidates) if mode == "l2" else None
    shares = per_pod_shares(mode, policy, placement, candidates, leader)
    other = per_pod_shares(mode, other_policy(policy), placement, candidates, leader)
    entry: dict[str, object] = {
        "mode": mode,
        "policy": policy,
        "per_pod": shares_to_list(shares),
        "other_policy_per_pod": shares_to_list(other),
    }
    if mode == "l2":
        entry["leader"] = leader
    note = _traffic_note(mode, policy, modes, leader)
    if derived:
        note += "; pods placed as the workload's shape allows (which nodes get extra pods may differ)"
    entry["note"] = note
    report.traffic[key] = entry

    if mode == "bgp" and policy == "Local" and not derived:
        _check_bgp_local(
            service, placement=placement, candidates=candidates, shares=shares, cluster=other, report=report
        )


def _check_workload_shape(
    service: Service, workload: Workload, *, mode: str, modes: Sequence[str], nodes: Sequence[str], report: Report
) -> None:
    """What the workload's shape guarantees under a Local policy (all nodes, not only announcing ones)."""
    if service.external_traffic_policy != "Local":
        return
    key = service.key
    if workload.kind == "DaemonSet":
        return
    replicas = workload.replicas or 0
    bounded = workload.spread or workload.anti_affinity == "required"
    if not nodes:
        report.warn(key, "has a workload but nodes is not given: its shape cannot be checked")
        return
    count = len(nodes)
    if workload.anti_affinity == "required" and replicas > count:
        report.warn(
            key,
            f"required pod anti-affinity allows one pod per node: {replicas - count} of {replicas} replicas "
            f"stay pending on {count} nodes",
        )
    if "l2" in modes:
        if not bounded:
            report.warn(
                key,
                "L2 + Local: nothing makes the scheduler put a pod on every node, so the elected node may have "
                f"no pod, and then nobody answers; {COVER_FIX}",
            )
        elif replicas < count:
            report.warn(
                key,
                f"L2 + Local: {replicas} replicas cannot cover {count} nodes, so the elected node may have no pod, "
                f"and then nobody answers; {COVER_FIX}",
            )
    if mode == "bgp":
        if not bounded:
            report.warn(
                key,
                f"BGP + Local: nothing stops the scheduler from piling pods on one node, and traffic is "
                f"spread per node, not per pod; {SPREAD_FIX}",
            )
        elif workload.anti_affinity != "required" and replicas > count and replicas % count:
            base = replicas // count
            shares = per_pod_shares("bgp", "Local", placement_from_workload(workload, nodes) or {})
            cluster = per_pod_shares("bgp", "Cluster", placement_from_workload(workload, nodes) or {})
            report.warn(
                key,
                f"BGP + Local: {replicas} replicas on {count} nodes put {base + 1} pods on some nodes and {base} "
                f"on others, and traffic is spread per node: {describe(shares)} (under Cluster: "
                f"{describe(cluster)}); make replicas a multiple of {count}, or {SPREAD_FIX}",
            )


def _traffic_note(mode: str, policy: str, modes: Sequence[str], leader: str | None) -> str:
    if mode == "l2" and policy == "Local":
        note = (
            f"L2 + Local: the elected node's own pods take all the traffic; figures assume {leader} leads "
            "(the speakers elect the leader per IP)"
        )
    elif mode == "l2":
        note = "L2 + Cluster: the elected node receives everything and kube-proxy spreads it evenly over all pods"
    elif policy == "Local":
        note = "BGP + Local: each node with a pod is one equal ECMP path, split evenly over that node's pods"
    else:
        note = "BGP + Cluster: every announcing node is one equal ECMP path, then kube-proxy spreads over all pods"
    if len(modes) > 1:
        note += "; the pool is also announced over L2, which carries the traffic of clients on the segment"
    return note


def _check_l2_local(
    service: Service, pool: Pool, state: DesiredState, placement: Mapping[str, int] | None, report: Report
) -> None:
    """L2 + Local: every candidate node must run a pod, or the elected one may have none."""
    if placement is None:
        return
    l2 = [ad for ad in state.advertisements if ad.mode == "l2"]
    nodes = pool_announcement(pool.name, l2, state.nodes).nodes
    candidates = list(placement) if nodes is None else list(nodes)
    covered = [n for n in candidates if placement.get(n, 0) > 0]
    uncovered = [n for n in candidates if placement.get(n, 0) == 0]
    if not covered:
        report.error(
            service.key,
            "L2 + Local: no pod runs on any node that may announce its IP "
            f"({', '.join(candidates) or 'none'}), so nobody answers for it; {COVER_FIX}",
        )
    elif uncovered:
        report.warn(
            service.key,
            f"L2 + Local: nodes {', '.join(uncovered)} may be elected to answer for its IP but run no pod of it: "
            "the elected node may have no pod, and then nobody answers; whichever node leads, only its own pods "
            f"get traffic (the leader's pods take everything); {COVER_FIX}",
        )


def _check_bgp_local(
    service: Service,
    *,
    placement: Mapping[str, int],
    candidates: Sequence[str] | None,
    shares: Sequence[PodShare],
    cluster: Sequence[PodShare],
    report: Report,
) -> None:
    key = service.key
    if candidates is not None:
        outside = [n for n, c in placement.items() if c > 0 and n not in candidates]
        if outside and all(s.share == 0 for s in shares):
            report.error(
                key,
                f"BGP + Local: its pods run only on {', '.join(outside)}, which the BGP advertisement does not "
                "cover, so no node announces its IP; add those nodes to the advertisement or move the pods",
            )
            return
        if outside:
            report.warn(
                key,
                f"BGP + Local: pods on {', '.join(outside)} get no traffic: those nodes do not announce "
                "(not in the BGP advertisement's nodes)",
            )
    live = [s for s in shares if s.share > 0]
    if not is_even(live):
        report.warn(
            key,
            f"BGP + Local spreads traffic per node, not per pod: {describe(shares)} "
            f"(under Cluster: {describe(cluster)}); {SPREAD_FIX}",
        )
