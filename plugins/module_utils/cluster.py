# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Kubernetes cluster holds, in the core's terms: pure, no client, no I/O.

Both records of addresses read Services through these functions: the
controller (which allocates inside the cluster) and ``allocate``/``pool_info``
with a kubeconfig (which allocate for the playbook's ledger). An address in a
Service's ``status.loadBalancer.ingress`` is in use on the network, whichever
controller put it there, so the ledger's allocator must not hand it out; and a
ledger's address is in use outside the cluster, so the controller must not.

A cluster Service and a ledger service with the same ``namespace/name`` are
one service: the playbook renders its Services with the ledger's addresses
and applies them to the cluster. Every other cluster Service is held in the
ledger's allocator under ``cluster/<namespace>/<name>``, a key no ledger
service has (a name holds no ``/``), so its messages say where it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .allocator import Allocation
from .errors import InputError
from .pools import Pool, format_address, parse_address
from .service import TRAFFIC_POLICIES, Service, ServicePort, parse_ports, service_key

CLUSTER_NAMESPACE = "cluster"
DEFAULT_LOAD_BALANCER_CLASS = "baremetal.lb/speaker"
# Kubernetes' well-known names (k8s.io/api/core/v1 and discovery/v1)
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Ready=Unknown is silence, not a failure the node reported: the node lifecycle controller has not heard from
# the kubelet for node-monitor-grace-period. Every node shows it at once after the apiserver (or the
# controller manager's view of it) was away longer than that, until the kubelets post again; a speaker that
# withdrew at once would withdraw every route for a control-plane restart. So Unknown excludes a node only
# once it has lasted this long (from the condition's lastTransitionTime); Ready=False excludes at once. A
# node that is really gone loses its BGP sessions (hold time, BFD) and its membership heartbeats meanwhile.
NODE_UNKNOWN_GRACE_S = 30.0

# The options of the modules that read a cluster (cluster_client.py reads it); here, with what hides
# their secrets, so that a module can mask them without importing the kubernetes library (0.4 s)
CLUSTER_OPTIONS: dict[str, dict[str, object]] = {
    # a path, or the kubeconfig itself (what a vault-encrypted file reads as): see kubeconfig_secrets
    "kubeconfig": {"type": "raw"},
    "context": {"type": "str"},
}
SECRET_FIELDS = ("token", "password", "client-key-data")

Address = tuple[int, int]


def key_of(obj: Mapping[str, Any]) -> str:
    """A Service object's ``namespace/name``."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def is_load_balancer(obj: Mapping[str, Any]) -> bool:
    return (obj.get("spec") or {}).get("type") == "LoadBalancer"


def is_ours(obj: Mapping[str, Any], load_balancer_class: str, serve_unclassed: bool) -> bool:
    """A LoadBalancer Service of our class, or of none when we serve those."""
    if not is_load_balancer(obj):
        return False
    cls = (obj.get("spec") or {}).get("loadBalancerClass")
    return cls == load_balancer_class if cls else serve_unclassed


def ingress_addresses(obj: Mapping[str, Any]) -> tuple[Address, ...]:
    """The addresses in ``status.loadBalancer.ingress`` (hostnames and junk are not ours: skipped)."""
    out = []
    for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ():
        try:
            out.append(parse_address(entry.get("ip"), "ingress"))
        except (InputError, AttributeError):
            continue
    return tuple(out)


def owner_pool(pools: Sequence[Pool], addresses: Sequence[Address]) -> str:
    """The pool the first address is in, or "" when it is in none."""
    return next((p.name for p in pools if p.find_range(*addresses[0]) is not None), "") if addresses else ""


def cluster_allocations(pools: Sequence[Pool], services: Iterable[Mapping[str, Any]],
                        same_services: Collection[str] = ()) -> list[Allocation]:
    """What the cluster's Services hold inside ``pools``, as allocations the ledger's allocator must respect.

    ``same_services``: the keys the ledger knows (its allocations and this call's services); a cluster
    Service with one of them is that service, and the ledger decides for it. Addresses outside every
    pool are left out: no pool of ours can give them.
    """
    out = []
    for obj in services:
        key = key_of(obj)
        if not is_load_balancer(obj) or key in same_services:
            continue
        owned = [(a, owner_pool(pools, (a,))) for a in ingress_addresses(obj)]
        addresses = tuple(a for a, pool in owned if pool)
        if addresses:
            first_pool = next(pool for _address, pool in owned if pool)
            out.append(Allocation(Service(CLUSTER_NAMESPACE, key), first_pool, addresses))
    return out


def reservations(ledger: Iterable[Mapping[str, Any]], this_run: Iterable[Mapping[str, Any]],
                 services: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, str]]:
    """The controller's ``reserved``: every address the playbook's ledger holds, as ``{address, service}``.

    ``ledger``: ``pool_info``'s allocations (those with ``source: cluster`` are left out: they are the
    cluster's own); ``this_run``: ``allocate``'s, which win for the ``services`` of the run (in check
    mode the ledger read is the one before the run, and a service of the run may be released).
    """
    run_keys = {service_key(s, f"services[{i}]") for i, s in enumerate(services)}
    kept = [a for a in ledger if a.get("source", "ledger") == "ledger" and service_key(a, "ledger") not in run_keys]
    return [{"address": address, "service": service_key(a, "allocation")}
            for a in [*kept, *this_run] for address in a["addresses"]]


# -- What a speaker follows: nodes, endpoints, and the Services to announce ------------------------------------


def _epoch(timestamp: object) -> float | None:
    """An RFC 3339 time as the API writes it (``2026-12-03T15:40:00Z``), in seconds since the epoch."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _unknown_stamp(node: Mapping[str, Any]) -> str | None:
    """The lastTransitionTime of the node's Ready condition when it is Unknown, else None."""
    listed = (node.get("status") or {}).get("conditions") or ()
    for c in listed:
        if isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "Unknown":
            stamp = c.get("lastTransitionTime")
            return stamp if isinstance(stamp, str) else ""
    return None


def unknown_since(node: Mapping[str, Any]) -> float | None:
    """When the node's Ready condition became Unknown (epoch seconds, the control plane's clock), or None
    when it is not Unknown (or the time is missing: then it counts as long ago)."""
    return _epoch(_unknown_stamp(node))


# A node's Ready=Unknown grace as one evaluation saw it: (the condition's lastTransitionTime as the API wrote
# it, when the grace began on this clock), for the next evaluation (ClusterState.unknown)
UnknownSeen = tuple[str, float]


def unknown_grace(node: Mapping[str, Any], now: float | None,
                  seen: UnknownSeen | None = None) -> UnknownSeen | None:
    """When the node's Ready=Unknown grace began on this clock (``now``'s), or None when it has none (not
    Unknown, no time given, no transition time).

    The lastTransitionTime is the control plane's clock: one ahead of ours would put it in our future and
    lengthen the grace by the difference. So the grace begins no later than ``now``, nor later than when
    an earlier evaluation (``seen``, its :attr:`ClusterState.unknown` entry) saw the same transition.
    """
    stamp = _unknown_stamp(node) if now is not None else None
    since = _epoch(stamp)
    if stamp is None or since is None or now is None:
        return None
    since = min(since, now)
    if seen is not None and seen[0] == stamp:
        since = min(since, seen[1])
    return stamp, since


def _in_grace(grace: UnknownSeen | None, now: float | None) -> bool:
    """Ready=Unknown since less than NODE_UNKNOWN_GRACE_S before ``now``."""
    return now is not None and grace is not None and now - grace[1] < NODE_UNKNOWN_GRACE_S


def node_exclusion(node: Mapping[str, Any], now: float | None = None, seen: UnknownSeen | None = None) -> str:
    """Why a Node must not announce load-balancer addresses, or "" when it may.

    In this order: the label ``node.kubernetes.io/exclude-from-external-load-balancers``
    (any value, as the Kubernetes service controller reads it); the ``Ready``
    condition not ``True`` (``False``, ``Unknown`` or missing: a node nobody
    vouches for); ``NetworkUnavailable`` ``True``; and draining, which is
    ``spec.unschedulable`` (``kubectl cordon``/``drain``) together with the
    ``node.kubernetes.io/unschedulable`` taint the node lifecycle controller adds
    for it: the cordon as the control plane has acted on it. A cordon alone, not
    yet confirmed by the taint, or a taint left over after an uncordon, keeps
    the node eligible.

    ``now`` (epoch seconds): with it, ``Ready`` ``Unknown`` excludes only once it
    has lasted :data:`NODE_UNKNOWN_GRACE_S` (see there, and :func:`unknown_grace`
    for ``seen``); without it, at once.
    """
    return _exclusion(node, now, unknown_grace(node, now, seen))


def _exclusion(node: Mapping[str, Any], now: float | None, grace: UnknownSeen | None) -> str:
    """:func:`node_exclusion` with the node's Ready=Unknown grace already known."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    labels = meta.get("labels") or {}
    if EXCLUDE_LABEL in labels:
        return f"labelled {EXCLUDE_LABEL}"
    listed = (node.get("status") or {}).get("conditions") or ()
    conditions = {c.get("type"): c for c in listed if isinstance(c, Mapping)}
    ready = conditions.get("Ready")
    if ready is None:
        return "NotReady: no Ready condition"
    if ready.get("status") != "True" and not _in_grace(grace, now):
        why = ready.get("reason") or ready.get("message") or ""
        return f"NotReady: Ready is {ready.get('status')}" + (f" ({why})" if why else "")
    network = conditions.get("NetworkUnavailable")
    if network is not None and network.get("status") == "True":
        why = network.get("reason") or ""
        return "NetworkUnavailable" + (f" ({why})" if why else "")
    tainted = any(isinstance(t, Mapping) and t.get("key") == UNSCHEDULABLE_TAINT for t in spec.get("taints") or ())
    if spec.get("unschedulable") is True and tainted:
        return f"draining: spec.unschedulable and the {UNSCHEDULABLE_TAINT} taint"
    return ""


def slice_service_key(endpoint_slice: Mapping[str, Any]) -> str:
    """The ``namespace/name`` of the Service an EndpointSlice belongs to, or "" for none."""
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace', '')}/{name}" if name else ""


def is_serving(endpoint: Mapping[str, Any]) -> bool:
    """``conditions.serving`` (true also while terminating), else ``ready`` as the API says to defer to.

    ``ready`` alone is false for a terminating endpoint that still serves (MetalLB #2074); an unset
    condition counts as true, as the API defines it for both.
    """
    conditions = endpoint.get("conditions") or {}
    serving = conditions.get("serving")
    if serving is None:
        serving = conditions.get("ready")
    return serving is not False


def serving_nodes(endpoint_slices: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The nodes holding at least one serving endpoint in ``endpoint_slices`` (one Service's)."""
    return frozenset(
        ep["nodeName"]
        for s in endpoint_slices
        for ep in s.get("endpoints") or ()
        if isinstance(ep, Mapping) and isinstance(ep.get("nodeName"), str) and ep["nodeName"] and is_serving(ep)
    )


@dataclass(frozen=True)
class DesiredService:
    """One cluster Service as a speaker announces it.

    ``addresses``: its ingress addresses inside the configured pools, as text; ``pool``: the pool of
    the first; ``local_nodes``: for ``Local``, the nodes with a serving endpoint (the only ones that
    may announce), empty for ``Cluster`` (every eligible node may).
    """

    key: str
    addresses: tuple[str, ...]
    pool: str
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str = "Cluster"
    local_nodes: frozenset[str] = frozenset()

    def may_announce(self, node: str, exclusion: str) -> bool:
        """Whether ``node`` (with its :func:`node_exclusion`) may announce this Service."""
        if exclusion:
            return False
        return self.external_traffic_policy != "Local" or node in self.local_nodes


@dataclass(frozen=True)
class ClusterState:
    """What the cluster asks of the speakers: Services by ``namespace/name``, nodes by name with their
    exclusion ("" when eligible)."""

    services: Mapping[str, DesiredService] = field(default_factory=dict)
    nodes: Mapping[str, str] = field(default_factory=dict)
    # when a node verdict changes by time alone (a Ready=Unknown reaching NODE_UNKNOWN_GRACE_S), epoch seconds
    recheck_at: float | None = field(default=None, compare=False)
    # per node with Ready=Unknown, its grace as this evaluation saw it (unknown_grace): give it to the next one
    unknown: Mapping[str, UnknownSeen] = field(default_factory=dict, compare=False)

    @property
    def eligible_nodes(self) -> frozenset[str]:
        return frozenset(n for n, why in self.nodes.items() if not why)

    def announcers(self, key: str) -> frozenset[str]:
        """The nodes that may announce the Service ``key`` (eligible, and serving it where Local)."""
        svc = self.services.get(key)
        if svc is None:
            return frozenset()
        return frozenset(n for n, why in self.nodes.items() if svc.may_announce(n, why))


def _ports(spec: Mapping[str, Any]) -> tuple[ServicePort, ...]:
    wanted = [{"port": p.get("port"), "protocol": p.get("protocol") or "TCP"}
              for p in spec.get("ports") or () if isinstance(p, Mapping)]
    try:
        return parse_ports(wanted, "spec.ports")
    except InputError:
        return ()  # the apiserver validated them: only a hand-made object gets here


def desired_service(obj: Mapping[str, Any], pools: Sequence[Pool],
                    endpoint_slices: Iterable[Mapping[str, Any]] = ()) -> DesiredService | None:
    """A LoadBalancer Service (already known to be ours) as announced, or None when it has no ingress
    address in ``pools`` (nothing for us to announce). ``endpoint_slices``: the Service's own."""
    if not is_load_balancer(obj):
        return None
    inside = tuple(a for a in ingress_addresses(obj) if any(p.find_range(*a) is not None for p in pools))
    if not inside:
        return None
    spec = obj.get("spec") or {}
    policy = spec.get("externalTrafficPolicy") or "Cluster"
    if policy not in TRAFFIC_POLICIES:
        policy = "Cluster"  # the apiserver refuses anything else; "Cluster" is its default
    local = serving_nodes(endpoint_slices) if policy == "Local" else frozenset()
    return DesiredService(key=key_of(obj), addresses=tuple(format_address(*a) for a in inside),
                          pool=owner_pool(pools, inside), ports=_ports(spec), external_traffic_policy=policy,
                          local_nodes=local)


def cluster_state(services: Iterable[Mapping[str, Any]], endpoint_slices: Iterable[Mapping[str, Any]],
                  nodes: Iterable[Mapping[str, Any]], pools: Sequence[Pool], now: float | None = None,
                  *, unknown: Mapping[str, UnknownSeen] | None = None) -> ClusterState:
    """The desired state from the cluster's objects (``services``: ours only; slices: any).

    ``now`` (epoch seconds): the time the node verdicts are for (:func:`node_exclusion`); the state's
    ``recheck_at`` says when one of them changes by time alone. ``unknown``: the previous evaluation's
    :attr:`ClusterState.unknown`, so that a control plane's clock ahead of ours does not lengthen the
    Ready=Unknown grace (:func:`unknown_grace`).
    """
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for s in endpoint_slices:
        key = slice_service_key(s)
        if key:
            by_service.setdefault(key, []).append(s)
    wanted = {}
    for obj in services:
        entry = desired_service(obj, pools, by_service.get(key_of(obj), ()))
        if entry is not None:
            wanted[entry.key] = entry
    states: dict[str, str] = {}
    graces: dict[str, UnknownSeen] = {}
    recheck: list[float] = []
    for n in nodes:
        name = (n.get("metadata") or {}).get("name", "")
        grace = unknown_grace(n, now, (unknown or {}).get(name))
        states[name] = _exclusion(n, now, grace)
        if grace is not None:
            graces[name] = grace  # kept after the grace too: a later evaluation must not start it again
            if _in_grace(grace, now):
                recheck.append(grace[1] + NODE_UNKNOWN_GRACE_S)
    states.pop("", None)
    graces.pop("", None)
    return ClusterState(services=wanted, nodes=states, recheck_at=min(recheck) if recheck else None, unknown=graces)


def kubeconfig_secrets(kubeconfig: object) -> set[str]:
    """The credentials in a kubeconfig given as a mapping, for the module's ``no_log_values``.

    The option cannot be ``no_log`` as a whole: a path must be shown in its errors.
    """
    out: set[str] = set()
    if isinstance(kubeconfig, dict):
        for entry in kubeconfig.get("users") or ():
            user = entry.get("user") if isinstance(entry, dict) else None
            if isinstance(user, dict):
                out.update(v for k in SECRET_FIELDS if isinstance(v := user.get(k), str) and v)
    return out
