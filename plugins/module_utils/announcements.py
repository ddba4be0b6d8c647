# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From the inventory data model (``lb_*`` variables) to each speaker's configuration.

``resolve`` turns the allocations and the advertisements into the announced
services of the whole cluster (each with the nodes that may announce it) and
the BGP advertisements in the speaker's format; ``node_config`` cuts out one
node's configuration document. ``inventory_errors`` finds, before anything is
touched, the mistakes the modules cannot see (unknown BGP peers, a short
membership secret), each message starting with the variable to fix.

Plain Python, no Ansible imports: the filter plugin ``baremetal.lb.lb`` and
the unit tests call these functions directly.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from .advertisements import BGP_POLICY_KEYS, applies_to_node, parse_advertisements, pool_announcement
from .errors import InputError
from .limits import MIN_SECRET_BYTES, password_problem, secret_problem
from .service import parse_service

# a service in one node's speaker configuration (node_config): what the speaker reads
ANNOUNCED_SERVICE_KEYS = frozenset(
    {"name", "addresses", "mode", "external_traffic_policy", "health_check", "interfaces", "ports", "backends"}
)
# keys of lb_bgp_peers entries that are ours, not the speaker's
PEER_SELECTION_KEYS = ("nodes",)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def inventory_errors(
    membership_secret: Any,
    bgp_peers: Sequence[Mapping[str, Any]] | None,
    l2_advertisements: Sequence[Mapping[str, Any]] | None,
    bgp_advertisements: Sequence[Mapping[str, Any]] | None,
    pools: Sequence[Mapping[str, Any]] | None,
) -> list[str]:
    """Mistakes in the data model, each naming its variable; [] when all is well."""
    errors: list[str] = []
    if not isinstance(membership_secret, str) or not membership_secret:
        errors.append(
            "lb_membership_secret: is required "
            f"(a shared secret of at least {MIN_SECRET_BYTES} bytes; keep it in a vault)"
        )
    elif problem := secret_problem(membership_secret.encode()):
        errors.append(f"lb_membership_secret: {problem}")
    return errors + data_model_errors(bgp_peers, l2_advertisements, bgp_advertisements, pools)


def data_model_errors(
    bgp_peers: Sequence[Mapping[str, Any]] | None,
    l2_advertisements: Sequence[Mapping[str, Any]] | None,
    bgp_advertisements: Sequence[Mapping[str, Any]] | None,
    pools: Sequence[Mapping[str, Any]] | None,
) -> list[str]:
    """The peers' and advertisements' mistakes of :func:`inventory_errors` (all but the secret's)."""
    errors: list[str] = []
    pool_names = {p.get("name") for p in pools or []}
    known_peers: set[str] = set()
    for i, peer in enumerate(bgp_peers or []):
        where = f"lb_bgp_peers[{i}]"
        if not isinstance(peer, Mapping):
            errors.append(f"{where}: must be a mapping")
            continue
        try:
            ipaddress.ip_address(str(peer.get("address", "")))
        except ValueError:
            errors.append(f"{where}.address: must be an IP address (got {peer.get('address')!r})")
            continue
        if not isinstance(peer.get("asn"), int) or isinstance(peer.get("asn"), bool):
            errors.append(f"{where}.asn: must be an AS number (got {peer.get('asn')!r})")
        password = peer.get("password")
        if password is not None and (problem := password_problem(password)):
            errors.append(f"{where}.password: {problem}")
        known_peers.update(peer_keys(peer))
    entries = list(bgp_peers or [])
    index = [n for n, peer in enumerate(entries) if isinstance(peer, Mapping)]  # the mappings, by their place
    for j, key, i in peer_clashes([entries[n] for n in index], selected=True):
        errors.append(f"lb_bgp_peers[{index[j]}]: {key!r} {DUPLICATE_PEER} lb_bgp_peers[{index[i]}]"
                      " on a node both are meant for")
    for var, ads in (("lb_l2_advertisements", l2_advertisements), ("lb_bgp_advertisements", bgp_advertisements)):
        for i, ad in enumerate(ads or []):
            if not isinstance(ad, Mapping):
                errors.append(f"{var}[{i}]: must be a mapping")
                continue
            for j, pool in enumerate(_as_list(ad.get("pools"))):
                if pool not in pool_names:
                    errors.append(f"{var}[{i}].pools[{j}]: {pool!r} is not a pool in lb_pools")
            if var == "lb_bgp_advertisements":
                for j, peer_name in enumerate(_as_list(ad.get("peers"))):
                    if str(peer_name) not in known_peers:
                        errors.append(f"{var}[{i}].peers[{j}]: {peer_name!r} {UNKNOWN_PEER}")
    return errors


UNKNOWN_PEER = "is not a peer in lb_bgp_peers (by name or address)"
DUPLICATE_PEER = "names a peer already named by"


def peer_clashes(peers: Sequence[Mapping[str, Any]], *, selected: bool = False) -> list[tuple[int, str, int]]:
    """Peers named alike: ``(j, key, i)`` for each ``peers[j]`` sharing a key (:func:`peer_keys`) with an
    earlier ``peers[i]``, the first such ``i`` and key.

    A name or an address must point at one peer: an advertisement's ``peers`` and the speaker's sessions
    are matched by them. With ``selected``, two peers meant for disjoint ``nodes`` (the inventory's
    selection; none means every node) do not clash: no node has both (one router address seen from two
    racks). The one rule for site.yml's inventory check (:func:`inventory_errors`) and the speaker's
    configuration (one node's peers).
    """
    keys = [peer_keys(p) for p in peers]
    clashes: list[tuple[int, str, int]] = []
    for j in range(len(peers)):
        for i in range(j):
            common = keys[i] & keys[j]
            if common and not (selected and _disjoint(peers[i], peers[j])):
                clashes.append((j, min(common), i))
                break
    return clashes


def _disjoint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two items with optional ``nodes`` lists are meant for no node in common."""
    na, nb = _as_list(a.get("nodes")), _as_list(b.get("nodes"))
    return bool(na) and bool(nb) and not {str(n) for n in na} & {str(n) for n in nb}


def peer_keys(peer: Mapping[str, Any]) -> set[str]:
    """The names an advertisement's ``peers`` may give ``peer`` by: its name, its address as written and parsed.

    The one rule for the collection's checks and the speaker's config (``lbspeaker.bgp.config``)."""
    address = peer.get("address")
    keys = {str(n) for n in (peer.get("name"), address) if n not in (None, "")}
    with contextlib.suppress(ValueError):
        keys.add(str(ipaddress.ip_address(str(address))))
    return keys


def resolve(
    allocations: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    l2_advertisements: Sequence[Mapping[str, Any]] | None,
    bgp_advertisements: Sequence[Mapping[str, Any]] | None,
) -> dict[str, list[dict[str, Any]]]:
    """The cluster's announced services and BGP advertisements.

    A service's mode and nodes follow its pool, by the rule
    ``baremetal.lb.validate`` applies (:func:`.advertisements.pool_announcement`);
    a pool no advertisement applies to is not announced. The advertisements are
    checked as the inventory gives them (InputError names the variable).
    """
    # the inventory's services as they are, through the one service model (keyed as the allocator keys them)
    by_key = {}
    for i, data in enumerate(services):
        service = parse_service(data, f"lb_services[{i}]")
        by_key[service.key] = service
    advertisements = parse_advertisements(l2_advertisements, "l2", "lb_")
    advertisements += parse_advertisements(bgp_advertisements, "bgp", "lb_")
    out_services: list[dict[str, Any]] = []
    bgp_names: dict[int, list[str]] = {}
    for alloc in allocations:
        key = f"{alloc['namespace']}/{alloc['name']}"
        addresses = list(alloc.get("addresses") or [])
        if not addresses:
            continue
        spec = by_key.get(key)
        plan = pool_announcement(str(alloc.get("pool") or ""), advertisements)
        if plan.mode is None:
            continue
        entry: dict[str, Any] = {
            "name": key,
            "addresses": addresses,
            "mode": plan.mode,
            "external_traffic_policy": spec.external_traffic_policy if spec else "Cluster",
        }
        if spec is not None and spec.health_check is not None:
            entry["health_check"] = spec.health_check.to_dict()
        if spec is not None and spec.backends:
            # standalone forwarding (no kube-proxy): the speaker forwards VIP:port to these with nftables
            entry["ports"] = [p.to_dict() for p in spec.ports]
            entry["backends"] = [b.to_dict() for b in spec.backends]
        entry["nodes"] = list(plan.nodes or [])  # [] means every node to the speaker
        if plan.mode == "bgp":
            for applied in plan.advertisements:
                bgp_names.setdefault(applied.index, []).append(key)
        elif plan.interfaces:
            entry["interfaces"] = list(plan.interfaces)
        out_services.append(entry)
    out_ads: list[dict[str, Any]] = []
    for i, ad in enumerate(bgp_advertisements or []):
        names = bgp_names.get(i)
        if not names:  # an empty list would mean "every service" to the speaker
            continue
        rendered: dict[str, Any] = {"services": names, **_route_policy(ad)}
        rendered["nodes"] = _as_list(ad.get("nodes"))
        out_ads.append(rendered)
    return {"services": out_services, "bgp_advertisements": out_ads}


def _route_policy(ad: Mapping[str, Any]) -> dict[str, Any]:
    """An inventory BGP advertisement's peers and route attributes, in the speaker's format."""
    policy: dict[str, Any] = {}
    if ad.get("peers"):
        policy["peers"] = [str(p) for p in _as_list(ad["peers"])]
    for k in BGP_POLICY_KEYS:
        if ad.get(k) not in (None, [], ""):
            policy[k] = ad[k]
    return policy


def _selects(item: Mapping[str, Any], node: str) -> bool:
    """Whether an item with an optional ``nodes`` list is meant for ``node`` (none: every node)."""
    return applies_to_node(_as_list(item.get("nodes")), node)


def _for_node(items: Sequence[Mapping[str, Any]], node: str) -> list[dict[str, Any]]:
    """The items whose ``nodes`` is empty or names ``node``, without that key."""
    return [{k: v for k, v in item.items() if k not in PEER_SELECTION_KEYS} for item in items if _selects(item, node)]


class _NodePeers:
    """One node's view of ``lb_bgp_peers``: the names of its own peers and of the other nodes' only.

    An advertisement names peers of the whole inventory (``inventory_errors`` checks them against all
    of ``lb_bgp_peers``), but a peer with ``nodes`` goes to those nodes' configurations alone: on the
    other nodes its name stands for a peer that is not theirs, and is not used there.
    """

    def __init__(self, peers: Sequence[Mapping[str, Any]], node: str) -> None:
        self.own: set[str] = set()
        elsewhere: set[str] = set()
        for peer in peers:
            (self.own if _selects(peer, node) else elsewhere).update(peer_keys(peer))
        self.elsewhere = elsewhere - self.own
        self.known = self.own | elsewhere

    def used_here(self, names: list[Any]) -> list[str]:
        """The names of ``names`` not other nodes' peers only: this node's, and any unknown one (left for the
        speaker's check to name)."""
        return [str(n) for n in names if str(n) not in self.elsewhere]

    def reaches(self, ad: Mapping[str, Any]) -> bool:
        """Whether an advertisement meant for this node can announce anything from it: it names no peers
        (every peer) or at least one that is not another node's."""
        names = _as_list(ad.get("peers"))
        return not names or bool(self.used_here(names))


def _bgp_advertisements_here(ads: list[dict[str, Any]], peers: _NodePeers) -> list[dict[str, Any]]:
    """The bgp section's advertisements (``resolve``'s, already this node's), each with the peers this node
    has; one that names other nodes' peers only is left out (without ``peers`` it would mean every peer)."""
    return [
        {**ad, "peers": peers.used_here(_as_list(ad["peers"]))} if ad.get("peers") else ad
        for ad in ads
        if peers.reaches(ad)
    ]


def _check_cluster_peers(ads: Any, peers: _NodePeers) -> None:
    """The kubernetes section's BGP advertisements name peers of ``lb_bgp_peers`` (of any node): they go to
    the speaker as the inventory gives them, and its configuration holds this node's peers only, so a name
    that is nobody's peer can be told from another node's here and not there."""
    for i, ad in enumerate(ads if isinstance(ads, list) else []):
        if not isinstance(ad, Mapping):
            continue
        for j, name in enumerate(_as_list(ad.get("peers"))):
            if str(name) not in peers.known:
                raise InputError(f"lb_bgp_advertisements[{i}].peers[{j}]", name, UNKNOWN_PEER)


def node_config(node: str, nodes: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """One node's speaker configuration document (the YAML ``lb-speaker check`` reads).

    ``settings`` carries ``interfaces``, ``membership``, ``status``,
    ``services`` and ``bgp_advertisements`` (as from ``resolve``), ``bgp_asn``,
    ``bgp_router_id`` and ``bgp_peers``; on a cluster node also ``kubernetes``,
    the speaker's ``kubernetes:`` section, put in as it is. The ``bgp`` section
    is there when this node has peers and something to announce over BGP: a
    service of its own, or a BGP advertisement of the ``kubernetes`` section
    meant for it (the speaker applies those to the cluster's Services by their
    pool, with their peers, communities and local-pref).

    A peer with ``nodes`` is in those nodes' configurations only, so an
    advertisement's ``peers`` name it on those nodes only: the ``bgp``
    section's advertisements keep this node's peers (and any name that is
    nobody's, which the speaker refuses), and one naming other nodes' peers
    only is left out; the ``kubernetes`` section's stay as given (the speaker
    sends them to the peers they name that it has), and a name there that is
    no peer of ``bgp_peers`` raises InputError naming
    ``lb_bgp_advertisements[i].peers[j]``. The cluster's advertisements that
    name other nodes' peers only bring no ``bgp`` section.
    """
    services = _for_node(settings.get("services") or [], node)
    doc: dict[str, Any] = {
        "node": node,
        "nodes": [{"name": n["name"], "address": str(n["address"])} for n in nodes],
        "membership": dict(settings["membership"]),
        "interfaces": list(settings.get("interfaces") or []),
        "status": dict(settings["status"]),
        "services": services,
    }
    cluster: Mapping[str, Any] = settings.get("kubernetes") or {}
    if cluster:
        doc["kubernetes"] = dict(cluster)
    all_peers = settings.get("bgp_peers") or []
    node_peers = _NodePeers(all_peers, node)
    # the cluster's BGP advertisements meant for this node (and for one of its peers): the speaker applies
    # them to the cluster's Services itself (by their pool), and needs the bgp section's peers and session
    # settings for them
    cluster_bgp = []
    if cluster:
        _check_cluster_peers(cluster.get("bgp_advertisements"), node_peers)
        cluster_bgp = [ad for ad in _for_node(cluster.get("bgp_advertisements") or [], node) if node_peers.reaches(ad)]
    peers = _for_node(all_peers, node)
    if (cluster_bgp or any(s["mode"] == "bgp" for s in services)) and peers:
        doc["bgp"] = {
            "asn": settings["bgp_asn"],
            "router_id": str(settings["bgp_router_id"]),
            "peers": peers,
            "advertisements": _bgp_advertisements_here(_for_node(settings.get("bgp_advertisements") or [], node),
                                                       node_peers),
        }
    return doc
