"""Speaker configuration: parsed once from YAML into typed, validated objects.

Every error names the offending field with its dotted path (for example
``services[1].addresses[0]``) and the value found, through ``ConfigError``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

import yaml

from .bgp.config import BgpConfig, parse_bgp_config
from .core.advertisements import MODES, Advertisement, parse_advertisements
from .core.announcements import ANNOUNCED_SERVICE_KEYS
from .core.cluster import DEFAULT_LOAD_BALANCER_CLASS
from .core.dataplane import Backend, HealthCheck, IPAddress, parse_backends, parse_health_check, parse_ip
from .core.errors import refuse_unknown_keys
from .core.fields import boolean, integer, mapping, sequence, text
from .core.limits import secret_problem
from .core.names import check_object_name
from .core.pools import Pool, parse_pool_list
from .core.service import TRAFFIC_POLICIES, ServicePort, parse_ports
from .errors import ConfigError

DEFAULT_PATH = "/etc/baremetal-lb/speaker.yaml"
DEFAULT_PORT = 7474  # UDP; not memberlist's 7946, so it can run next to MetalLB while migrating
DEFAULT_INTERVAL_MS = 75
DEFAULT_DEAD_AFTER = 3
# how long after a secret rotation (the previous secret file's mtime) the old secret still counts
DEFAULT_PREVIOUS_SECRET_WINDOW_S = 3600


@dataclass(frozen=True)
class NodeConfig:
    name: str
    address: IPAddress


@dataclass(frozen=True)
class MembershipConfig:
    secret: bytes
    port: int = DEFAULT_PORT
    interval_ms: int = DEFAULT_INTERVAL_MS
    dead_after: int = DEFAULT_DEAD_AFTER
    # the secret before the last rotation, and until when (epoch seconds) it is still sent and accepted
    previous_secret: bytes | None = None
    previous_until: float = 0.0

    @property
    def dead_after_s(self) -> float:
        return self.interval_ms * self.dead_after / 1000.0


@dataclass(frozen=True)
class StatusConfig:
    address: str = "127.0.0.1"
    port: int = 7473


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    addresses: tuple[IPAddress, ...]
    mode: str = "l2"  # l2 | bgp
    external_traffic_policy: str = "Cluster"  # Cluster | Local
    health_check: HealthCheck | None = None
    interfaces: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    backends: tuple[Backend, ...] = ()
    # a cluster Service's pool's BGP advertisements (the core's model; its communities, local-pref, peers and
    # aggregation): when given they are this service's BGP policy, in place of the bgp section's advertisements
    advertisements: tuple[Advertisement, ...] = ()


@dataclass(frozen=True)
class KubernetesAccess:
    """How to reach the API server: a kubeconfig file, or the pod's service account (in-cluster)."""

    kubeconfig: str | None = None
    in_cluster: bool = False


@dataclass(frozen=True)
class ClusterConfig:
    """The speaker's ``kubernetes:`` section: follow the cluster's Services as well as ``services``.

    ``node_name``: this node's Node object (default: ``node``); ``pools``: the ``lb_pools`` whose
    addresses the speaker announces from Services' ``status.loadBalancer.ingress``;
    ``load_balancer_class``/``serve_unclassed``: which Services are ours, as the controller decides.
    """

    access: KubernetesAccess
    node_name: str
    pools: tuple[Pool, ...]
    load_balancer_class: str = DEFAULT_LOAD_BALANCER_CLASS
    serve_unclassed: bool = True
    # lb_l2_advertisements / lb_bgp_advertisements, as the inventory gives them: they decide each pool's mode
    # (core.advertisements.pool_announcement); none at all announces every pool over L2
    advertisements: tuple[Advertisement, ...] = ()


@dataclass(frozen=True)
class Config:
    node: str
    nodes: tuple[NodeConfig, ...]
    membership: MembershipConfig
    interfaces: tuple[str, ...]
    status: StatusConfig
    services: tuple[ServiceConfig, ...]
    bgp_raw: dict[str, Any] = field(default_factory=dict)
    bgp: BgpConfig | None = None
    kubernetes: ClusterConfig | None = None

    @property
    def this_node(self) -> NodeConfig:
        return next(n for n in self.nodes if n.name == self.node)

    def l2_services(self) -> tuple[ServiceConfig, ...]:
        return tuple(s for s in self.services if s.mode == "l2")

    def interfaces_for(self, service: ServiceConfig) -> tuple[str, ...]:
        return service.interfaces or self.interfaces


TOP_KEYS = frozenset({"node", "nodes", "membership", "interfaces", "status", "services", "bgp", "kubernetes"})
ACCESS_KEYS = frozenset({"kubeconfig", "in_cluster"})
CLUSTER_KEYS = ACCESS_KEYS | {
    "node_name", "pools", "load_balancer_class", "serve_unclassed", "l2_advertisements", "bgp_advertisements"
}
NODE_KEYS = frozenset({"name", "address"})
MEMBERSHIP_KEYS = frozenset(
    {"secret", "secret_file", "port", "interval_ms", "dead_after", "previous_secret_file", "previous_secret_window_s"}
)
STATUS_KEYS = frozenset({"address", "port"})
# what the speaker forwards itself with nftables (SCTP is left to kube-proxy)
FORWARDED_PROTOCOLS = ("TCP", "UDP")


def read_yaml(path: str) -> Any:
    """The YAML document at ``path`` (the speaker's config or the controller's)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ConfigError("<file>", path, f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", path, f"not valid YAML: {exc}") from exc


def load(path: str, *, check_interfaces: bool = True) -> Config:
    """Read and parse the config file at ``path``."""
    return parse(read_yaml(path), check_interfaces=check_interfaces)


def parse(raw: Any, *, check_interfaces: bool = True) -> Config:
    """Turn the decoded YAML document into a ``Config``, or raise ``ConfigError``.

    ``check_interfaces`` verifies that every L2 interface exists on this host;
    it is on for ``run`` and ``check``, off where the config is validated away
    from the host (unit tests).
    """
    raw = mapping(raw, "<root>")
    refuse_unknown_keys(raw, TOP_KEYS, "")

    node = text(raw.get("node"), "node")
    nodes = _nodes(raw.get("nodes"))
    if node not in {n.name for n in nodes}:
        raise ConfigError("node", node, "not listed in nodes")
    membership = _membership(raw.get("membership"))
    interfaces = _iface_list(raw.get("interfaces", []), "interfaces", check_interfaces)
    status = _status(raw.get("status"))
    services = _services(raw.get("services"), check_interfaces, {n.name for n in nodes})

    for i, svc in enumerate(services):
        if svc.mode == "l2" and not svc.interfaces and not interfaces:
            raise ConfigError(f"services[{i}].interfaces", [], "an l2 service needs interfaces (here or top-level)")

    _check_shared_ips(services)
    node_addresses = {n.address: f"nodes[{i}].address" for i, n in enumerate(nodes)}
    for i, svc in enumerate(services):
        for j, addr in enumerate(svc.addresses):
            if addr in node_addresses:
                raise ConfigError(
                    f"services[{i}].addresses[{j}]", str(addr), f"is a node address ({node_addresses[addr]})"
                )
    if check_interfaces:
        _check_local_address(nodes, node)

    bgp_raw = dict(mapping(raw.get("bgp"), "bgp", default={}))
    bgp = parse_bgp_config(bgp_raw) if bgp_raw else None
    bgp_names = {s.name for s in services if s.mode == "bgp"}
    if bgp is None and bgp_names:
        first = next(i for i, s in enumerate(services) if s.mode == "bgp")
        raise ConfigError(f"services[{first}].mode", "bgp", "needs a top-level bgp section with peers")
    if bgp is not None:
        for i, ad in enumerate(bgp.advertisements):
            for j, name in enumerate(ad.services):
                if name not in bgp_names:
                    raise ConfigError(
                        f"bgp.advertisements[{i}].services[{j}]", name, "is not a service with mode bgp in this config"
                    )

    # The kubernetes section's BGP advertisements are the cluster's (lb_bgp_advertisements, the same on every
    # node: they decide each pool's mode and nodes alike everywhere), the bgp section holds this node's peers
    # only: a peer they name that is not here is another node's (a rack's router), and not used here
    # (bgp.manager.routes_for_peer sends an advertisement only to the peers it names). Nobody's peer cannot
    # be told from that with this file alone; the core (announcements.node_config, the role's filter, and
    # inventory_errors), which sees every peer, refuses it.
    cluster = parse_cluster(raw["kubernetes"], node) if raw.get("kubernetes") is not None else None
    return Config(node, nodes, membership, interfaces, status, services, bgp_raw, bgp, cluster)


def parse_kubernetes_access(value: Any, field: str = "kubernetes",
                            known: frozenset[str] = ACCESS_KEYS) -> KubernetesAccess:
    """``{kubeconfig: PATH}`` or ``{in_cluster: true}``, exactly one (the controller's section too)."""
    if value is None:
        raise ConfigError(field, value, "is required: {kubeconfig: PATH} or {in_cluster: true}")
    raw = mapping(value, field, known)
    in_cluster = boolean(raw.get("in_cluster"), f"{field}.in_cluster", False)
    kubeconfig = raw.get("kubeconfig")
    if in_cluster == (kubeconfig is not None):
        raise ConfigError(field, value, "give exactly one of kubeconfig: PATH and in_cluster: true")
    if kubeconfig is not None and (not isinstance(kubeconfig, str) or not kubeconfig):
        raise ConfigError(f"{field}.kubeconfig", kubeconfig, "must be a path")
    return KubernetesAccess(kubeconfig=kubeconfig, in_cluster=in_cluster)


def parse_cluster(value: Any, node: str) -> ClusterConfig:
    """The speaker's ``kubernetes:`` section (``node``: the config's, the default Node name)."""
    raw = mapping(value, "kubernetes", CLUSTER_KEYS)
    access = parse_kubernetes_access(raw, "kubernetes", CLUSTER_KEYS)
    node_name = text(raw.get("node_name"), "kubernetes.node_name", node)
    check_object_name(node_name, "kubernetes.node_name")
    pools = tuple(parse_pool_list(raw.get("pools"), "kubernetes.pools"))
    if not pools:
        raise ConfigError("kubernetes.pools", raw.get("pools"),
                          "must list the pools (lb_pools) whose addresses this speaker announces")
    return ClusterConfig(
        access=access,
        node_name=node_name,
        pools=pools,
        load_balancer_class=text(raw.get("load_balancer_class"), "kubernetes.load_balancer_class",
                                 DEFAULT_LOAD_BALANCER_CLASS),
        serve_unclassed=boolean(raw.get("serve_unclassed"), "kubernetes.serve_unclassed", True),
        advertisements=tuple(
            parse_advertisements(raw.get("l2_advertisements"), "l2", "kubernetes.")
            + parse_advertisements(raw.get("bgp_advertisements"), "bgp", "kubernetes.")
        ),
    )


def _nodes(value: Any) -> tuple[NodeConfig, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("nodes", value, "must be a non-empty list")
    seen: dict[str, int] = {}
    out = []
    for i, entry in enumerate(value):
        path = f"nodes[{i}]"
        item = mapping(entry, path, NODE_KEYS)
        name = text(item.get("name"), f"{path}.name")
        if name in seen:
            raise ConfigError(f"{path}.name", name, f"duplicate node name (also nodes[{seen[name]}])")
        seen[name] = i
        address = parse_ip(item.get("address"), f"{path}.address")
        out.append(NodeConfig(name, address))
    return tuple(out)


def _membership(value: Any) -> MembershipConfig:
    raw = mapping(value, "membership", MEMBERSHIP_KEYS, default={})
    if raw.get("secret_file"):
        try:
            with open(raw["secret_file"], "rb") as fh:
                secret = fh.read().strip()
        except OSError as exc:
            raise ConfigError("membership.secret_file", raw["secret_file"], f"cannot read: {exc.strerror}") from None
        secret_path, secret_shown = "membership.secret_file", raw["secret_file"]
    else:
        if not raw.get("secret"):
            raise ConfigError("membership.secret", None, "is required (a shared secret of at least 32 bytes)")
        if not isinstance(raw["secret"], str):
            raise ConfigError("membership.secret", "<hidden>", "must be a string")
        secret = raw["secret"].encode()
        secret_path, secret_shown = "membership.secret", "<hidden>"
    problem = secret_problem(secret)
    if problem:
        raise ConfigError(secret_path, secret_shown, problem)
    window = integer(raw.get("previous_secret_window_s"), "membership.previous_secret_window_s", 60, 7 * 86400,
                     DEFAULT_PREVIOUS_SECRET_WINDOW_S)
    previous, until = _previous_secret(raw.get("previous_secret_file"), window)
    return MembershipConfig(
        secret=secret,
        port=integer(raw.get("port"), "membership.port", 1, 65535, DEFAULT_PORT),
        interval_ms=integer(raw.get("interval_ms"), "membership.interval_ms", 10, 10000, DEFAULT_INTERVAL_MS),
        dead_after=integer(raw.get("dead_after"), "membership.dead_after", 2, 100, DEFAULT_DEAD_AFTER),
        previous_secret=previous if previous != secret else None,
        previous_until=until,
    )


def _previous_secret(path: Any, window_s: int) -> tuple[bytes | None, float]:
    """The secret before the last rotation (the role moves the old file here when the secret changes):
    valid for ``window_s`` after the file was written. No file (never rotated) is no previous secret."""
    if path in (None, ""):
        return None, 0.0
    field = "membership.previous_secret_file"
    if not isinstance(path, str):
        raise ConfigError(field, path, "must be a file path")
    try:
        with open(path, "rb") as fh:
            previous = fh.read().strip()
            written = os.fstat(fh.fileno()).st_mtime
    except FileNotFoundError:
        return None, 0.0
    except OSError as exc:
        raise ConfigError(field, path, f"cannot read: {exc.strerror}") from None
    problem = secret_problem(previous)
    if problem:
        raise ConfigError(field, path, problem)
    return previous, written + window_s


def _iface_list(value: Any, path: str, check: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, value, "must be a list of interface names")
    out = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name or len(name) > 15:
            raise ConfigError(f"{path}[{i}]", name, "must be an interface name")
        if check:
            try:
                socket.if_nametoindex(name)
            except OSError:
                raise ConfigError(f"{path}[{i}]", name, "no such interface on this host") from None
        out.append(name)
    return tuple(out)


def _status(value: Any) -> StatusConfig:
    raw = mapping(value, "status", STATUS_KEYS, default={})
    address = text(raw.get("address"), "status.address", StatusConfig.address)
    parse_ip(address, "status.address")
    return StatusConfig(address, integer(raw.get("port"), "status.port", 1, 65535, StatusConfig.port))


def forwarded_ports(value: Any, path: str) -> tuple[ServicePort, ...]:
    """A forwarded service's ports: the core's model, TCP or UDP, at least one."""
    ports = parse_ports(value, path)
    if not ports:
        raise ConfigError(path, value, "must be a non-empty list of ports")
    for i, port in enumerate(ports):
        if port.protocol not in FORWARDED_PROTOCOLS:
            raise ConfigError(f"{path}[{i}].protocol", value[i].get("protocol"),
                              f"must be one of {', '.join(FORWARDED_PROTOCOLS)} (the speaker forwards these)")
    return ports


def check_families(addresses: tuple[IPAddress, ...], backends: tuple[Backend, ...], field: str) -> None:
    """Every service address needs at least one backend of its family (NAT cannot cross families)."""
    families = {b.address.version for b in backends}
    for j, addr in enumerate(addresses):
        if addr.version not in families:
            raise ConfigError(f"{field}[{j}]", str(addr), f"no IPv{addr.version} backend to forward it to")


def _services(value: Any, check_interfaces: bool, node_names: set[str]) -> tuple[ServiceConfig, ...]:
    out = []
    names: dict[str, int] = {}
    for i, entry in enumerate(sequence(value, "services")):
        path = f"services[{i}]"
        item = mapping(entry, path, ANNOUNCED_SERVICE_KEYS)
        name = text(item.get("name"), f"{path}.name")
        if name.count("/") != 1 or name.startswith("/") or name.endswith("/"):
            raise ConfigError(f"{path}.name", name, 'must be "namespace/name"')
        if name in names:
            raise ConfigError(f"{path}.name", name, f"duplicate service (also services[{names[name]}])")
        names[name] = i
        addrs = item.get("addresses")
        if not isinstance(addrs, list) or not addrs:
            raise ConfigError(f"{path}.addresses", addrs, "must be a non-empty list of IP addresses")
        addresses = tuple(parse_ip(a, f"{path}.addresses[{j}]") for j, a in enumerate(addrs))
        for j, a in enumerate(addresses):
            if a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local:
                raise ConfigError(f"{path}.addresses[{j}]", str(a), "not a usable unicast service address")
        if len(set(addresses)) != len(addresses):
            raise ConfigError(f"{path}.addresses", addrs, "lists an address twice")
        mode = item.get("mode", "l2")
        if mode not in MODES:
            raise ConfigError(f"{path}.mode", mode, f"must be one of {', '.join(MODES)}")
        policy = item.get("external_traffic_policy", "Cluster")
        if policy not in TRAFFIC_POLICIES:
            raise ConfigError(
                f"{path}.external_traffic_policy", policy, f"must be one of {', '.join(TRAFFIC_POLICIES)}"
            )
        health = parse_health_check(item["health_check"], f"{path}.health_check") if item.get("health_check") else None
        ports: tuple[ServicePort, ...] = ()
        backends: tuple[Backend, ...] = ()
        if "backends" in item or "ports" in item:
            backends = parse_backends(item.get("backends"), f"{path}.backends", node_names)
            ports = forwarded_ports(item.get("ports"), f"{path}.ports")
            check_families(addresses, backends, f"{path}.addresses")
        if policy == "Local" and health is None and not backends:
            raise ConfigError(f"{path}.health_check", None, "is required when external_traffic_policy is Local")
        ifaces = _iface_list(item.get("interfaces", []), f"{path}.interfaces", check_interfaces and mode == "l2")
        out.append(ServiceConfig(name, addresses, mode, policy, health, ifaces, ports, backends))
    return tuple(out)


def _check_shared_ips(services: tuple[ServiceConfig, ...]) -> None:
    """Services sharing an IP must share its traffic policy (same backend key)."""
    policy_of: dict[tuple[str, IPAddress], tuple[str, str]] = {}
    for i, svc in enumerate(services):
        for j, addr in enumerate(svc.addresses):
            key = (svc.mode, addr)
            if key in policy_of and policy_of[key][0] != svc.external_traffic_policy:
                raise ConfigError(
                    f"services[{i}].addresses[{j}]",
                    str(addr),
                    f"shared with {policy_of[key][1]} whose external_traffic_policy differs",
                )
            policy_of.setdefault(key, (svc.external_traffic_policy, svc.name))


def _check_local_address(nodes: tuple[NodeConfig, ...], node: str) -> None:
    """This node's membership address must be an address of this host."""
    for i, n in enumerate(nodes):
        if n.name != node:
            continue
        family = socket.AF_INET6 if n.address.version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((str(n.address), 0))
            except OSError:
                raise ConfigError(f"nodes[{i}].address", str(n.address), "is not an address of this host") from None


def default_path() -> str:
    return os.environ.get("LB_SPEAKER_CONFIG", DEFAULT_PATH)
