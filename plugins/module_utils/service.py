# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service a user asks addresses for, parsed and checked once.

Field names follow the collection's options (snake_case); the meaning is that
of a Kubernetes ``Service`` of type ``LoadBalancer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .dataplane import Backend, HealthCheck, parse_backends, parse_health_check, parse_port
from .errors import InputError, refuse_unknown_keys
from .fields import text
from .names import check_namespace, check_service_name
from .pools import FAMILIES_BY_NAME, FAMILY_NAMES, format_address, parse_address
from .selectors import parse_labels
from .workload import Workload, parse_workload_shape

DEFAULT_NAMESPACE = "default"  # a service given without a namespace, as in Kubernetes
PROTOCOLS = ("TCP", "UDP", "SCTP")
TRAFFIC_POLICIES = ("Cluster", "Local")
FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
STATES = ("present", "absent")
PORT_KEYS = frozenset({"port", "protocol"})
SERVICE_KEYS = frozenset(
    {
        "namespace",
        "name",
        "ports",
        "external_traffic_policy",
        "selector",
        "labels",
        "load_balancer_ips",
        "address_pool",
        "sharing_key",
        "ip_families",
        "ip_family_policy",
        "state",
        # the data plane's and the manifests' (not part of the allocation: see Service)
        "health_check",
        "backends",
        "workload",
    }
)


# One shared, immutable empty mapping: most services have no labels or selector,
# and batches of 100,000 services should not carry 200,000 empty dicts.
EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, order=True, slots=True)
class ServicePort:
    """A port of the service at its addresses; ``protocol`` as Kubernetes writes it (``TCP``)."""

    protocol: str
    port: int

    @property
    def l4(self) -> str:
        """The protocol as nftables and iproute2 write it (``tcp``)."""
        return self.protocol.lower()

    def __str__(self) -> str:
        return f"{self.port}/{self.l4}"

    def to_dict(self) -> dict[str, object]:
        return {"port": self.port, "protocol": self.protocol}


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str = "Cluster"
    selector: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    load_balancer_ips: tuple[tuple[int, int], ...] = ()
    address_pool: str | None = None
    sharing_key: str = ""
    ip_families: tuple[int, ...] = (4,)
    ip_family_policy: str = "SingleStack"
    state: str = "present"
    # For the data plane (hosts without Kubernetes) and the manifests. Not part of
    # the allocation: a service that changes only these keeps its addresses, its
    # ledger entry is not rewritten, and to_dict() (the ledger's form) leaves them out.
    health_check: HealthCheck | None = field(default=None, compare=False)
    backends: tuple[Backend, ...] = field(default=(), compare=False)
    workload: Workload | None = field(default=None, compare=False)
    # Derived once (the allocator asks for them many times per service).
    key: str = field(init=False, repr=False, compare=False)
    backend_key: str = field(init=False, repr=False, compare=False)
    wanted_families: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}/{self.name}")
        object.__setattr__(self, "backend_key", self._backend_key())
        object.__setattr__(self, "wanted_families", self._wanted_families())

    def _backend_key(self) -> str:
        """Services sharing an IP must reach the same backends (MetalLB's rule).

        Under Cluster every node forwards to every endpoint, so all Cluster
        services agree. Under Local the nodes that may receive traffic are
        those running the selected pods: the selectors must be identical.
        """
        if self.external_traffic_policy != "Local":
            return ""
        # Prefixed, so that a Local service without a selector (endpoints managed
        # by hand) never looks like a Cluster one. MetalLB leaves both empty.
        return "Local:" + ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))

    def _wanted_families(self) -> tuple[int, ...]:
        """The families to allocate, primary first.

        Requested addresses decide exactly; otherwise SingleStack takes the
        primary family and the dual-stack policies both.
        """
        if self.load_balancer_ips:
            return tuple(family for family, _value in self.load_balancer_ips)
        if self.ip_family_policy == "SingleStack":
            return self.ip_families[:1]
        primary = self.ip_families[0]
        return (primary, 10 - primary)

    @property
    def requires_all_families(self) -> bool:
        return self.ip_family_policy != "PreferDualStack" or bool(self.load_balancer_ips)

    def to_dict(self) -> dict[str, object]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "ports": [p.to_dict() for p in self.ports],
            "external_traffic_policy": self.external_traffic_policy,
            "selector": dict(self.selector),
            "labels": dict(self.labels),
            "load_balancer_ips": [format_address(f, v) for f, v in self.load_balancer_ips],
            "address_pool": self.address_pool,
            "sharing_key": self.sharing_key,
            "ip_families": [FAMILY_NAMES[f] for f in self.ip_families],
            "ip_family_policy": self.ip_family_policy,
        }


def _string(data: Mapping[str, object], key: str, field: str, default: str | None = None) -> str:
    """A service's string option: an empty string is the same as leaving it out."""
    value = data.get(key)
    return text(None if value == "" else value, f"{field}.{key}", default)


def _choice(data: Mapping[str, object], key: str, choices: tuple[str, ...], default: str, field: str) -> str:
    value = data.get(key)
    if value is None:
        return default
    if value not in choices:
        raise InputError(f"{field}.{key}", value, f"must be one of {', '.join(choices)}")
    return str(value)


def parse_ports(data: object, field: str = "ports") -> tuple[ServicePort, ...]:
    """A service's ports: ``{port, protocol}`` mappings, or a port number alone (TCP).

    The protocol is taken in either case (``udp`` is ``UDP``) and kept as
    Kubernetes writes it. A port listed twice is refused.
    """
    if data is None:
        return ()
    if not isinstance(data, list):
        raise InputError(field, data, "must be a list of {port, protocol}")
    ports: list[ServicePort] = []
    for i, item in enumerate(data):
        pfield = f"{field}[{i}]"
        if isinstance(item, Mapping):
            refuse_unknown_keys(item, PORT_KEYS, pfield)
            port = parse_port(item.get("port"), f"{pfield}.port")
            protocol = item.get("protocol") or "TCP"
        elif isinstance(item, (int, str)) and not isinstance(item, bool):
            port, protocol = parse_port(item, pfield), "TCP"
        else:
            raise InputError(pfield, item, "must be a mapping with port and protocol, or a port number")
        if not isinstance(protocol, str) or protocol.upper() not in PROTOCOLS:
            raise InputError(f"{pfield}.protocol", protocol, f"must be one of {', '.join(PROTOCOLS)}")
        entry = ServicePort(protocol.upper(), port)
        if entry in ports:
            raise InputError(pfield, item, f"duplicates {entry.protocol}/{port} of the same service")
        ports.append(entry)
    return tuple(ports)


def service_key(data: Mapping[str, object], field: str = "service") -> str:
    """The ``namespace/name`` of a service in its user-facing form (the ``key`` :func:`parse_service` gives it)."""
    return f"{_string(data, 'namespace', field, DEFAULT_NAMESPACE)}/{_string(data, 'name', field)}"


def parse_service(data: object, field: str = "service", *, release_unchecked_names: bool = False) -> Service:
    """One service from its user-facing form; raises InputError naming the field.

    Names follow Kubernetes' rules (:mod:`.names`): the namespace is a DNS
    label (RFC 1123), the name a DNS label (RFC 1035), labels and selectors
    label names and values. With ``release_unchecked_names`` (``allocate``),
    a service with ``state: absent`` is not held to them, so that an
    allocation saved before names were checked can still be released.
    """
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping")
    refuse_unknown_keys(data, SERVICE_KEYS, field)
    state = _choice(data, "state", STATES, "present", field)
    check_names = not (release_unchecked_names and state == "absent")
    namespace = _string(data, "namespace", field, DEFAULT_NAMESPACE)
    name = _string(data, "name", field)
    if check_names:
        check_namespace(namespace, f"{field}.namespace")
        check_service_name(name, f"{field}.name")
    for key, value in (("namespace", namespace), ("name", name)):
        if "/" in value or value.strip() != value:
            raise InputError(f"{field}.{key}", value, "must not contain '/' or surrounding spaces")
    policy = _choice(data, "external_traffic_policy", TRAFFIC_POLICIES, "Cluster", field)
    family_policy = _choice(data, "ip_family_policy", FAMILY_POLICIES, "SingleStack", field)
    ports = parse_ports(data.get("ports"), f"{field}.ports")
    selector = parse_labels(data.get("selector"), f"{field}.selector", check_names=check_names)
    labels = parse_labels(data.get("labels"), f"{field}.labels", check_names=check_names)
    address_pool = _string(data, "address_pool", field, "") or None
    sharing_key = _string(data, "sharing_key", field, "")

    ips_data = data.get("load_balancer_ips") or []
    if isinstance(ips_data, str):
        ips_data = [ips_data]
    if not isinstance(ips_data, list):
        raise InputError(f"{field}.load_balancer_ips", ips_data, "must be a list of IP addresses")
    if len(ips_data) > 2:
        raise InputError(f"{field}.load_balancer_ips", ips_data, "at most two addresses, one per family")
    ips = tuple(parse_address(ip, f"{field}.load_balancer_ips[{i}]") for i, ip in enumerate(ips_data))
    if len(ips) == 2 and ips[0][0] == ips[1][0]:
        raise InputError(
            f"{field}.load_balancer_ips", ips_data, f"both addresses are {FAMILY_NAMES[ips[0][0]]}; give one per family"
        )

    families_data = data.get("ip_families")
    if families_data is None or families_data == []:
        families = tuple(family for family, _value in ips) or (4,)
    else:
        if not isinstance(families_data, list) or not 1 <= len(families_data) <= 2:
            raise InputError(f"{field}.ip_families", families_data, "must be a list of one or two of IPv4, IPv6")
        for i, fam in enumerate(families_data):
            if fam not in FAMILIES_BY_NAME:
                raise InputError(f"{field}.ip_families[{i}]", fam, "must be IPv4 or IPv6")
        families = tuple(FAMILIES_BY_NAME[str(f)] for f in families_data)
        if len(set(families)) != len(families):
            raise InputError(f"{field}.ip_families", families_data, "lists a family twice")
        for i, (fam, _value) in enumerate(ips):
            if fam not in families:
                raise InputError(
                    f"{field}.load_balancer_ips[{i}]",
                    ips_data[i],
                    f"is {FAMILY_NAMES[fam]} but ip_families is {', '.join(FAMILY_NAMES[f] for f in families)}",
                )
    if family_policy == "SingleStack" and (len(families) > 1 or len(ips) > 1):
        what = "ip_families" if len(families) > 1 and families_data else "load_balancer_ips"
        offending: object = families_data if what == "ip_families" else ips_data
        raise InputError(
            f"{field}.{what}", offending, "two families need ip_family_policy PreferDualStack or RequireDualStack"
        )
    if family_policy == "RequireDualStack" and len(ips) == 1:
        raise InputError(
            f"{field}.load_balancer_ips", ips_data, "ip_family_policy RequireDualStack needs one address per family"
        )
    health_check = None
    if data.get("health_check") is not None:
        health_check = parse_health_check(data["health_check"], f"{field}.health_check")
    backends: tuple[Backend, ...] = ()
    if data.get("backends") is not None:
        backends = parse_backends(data["backends"], f"{field}.backends")
        if not ports:
            raise InputError(
                f"{field}.ports",
                data.get("ports"),
                "a service with backends needs ports (the speaker forwards VIP:port)",
            )
    workload = None
    if data.get("workload") is not None:
        workload = parse_workload_shape(data["workload"], f"{field}.workload", rendering=False)
    return Service(
        namespace=namespace,
        name=name,
        ports=ports,
        external_traffic_policy=policy,
        selector=selector or EMPTY,
        labels=labels or EMPTY,
        load_balancer_ips=ips,
        address_pool=address_pool,
        sharing_key=sharing_key,
        ip_families=families,
        ip_family_policy=family_policy,
        state=state,
        health_check=health_check,
        backends=backends,
        workload=workload,
    )
