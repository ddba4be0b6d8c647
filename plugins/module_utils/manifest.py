# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes manifests for one service and its allocation.

The ``Service`` carries its addresses the way MetalLB reads them, so a
cluster can move between MetalLB and this collection without re-addressing:
the ``metallb.io/loadBalancerIPs`` annotation (dual-stack capable, MetalLB
0.13+) or the older ``spec.loadBalancerIP`` (one address only, deprecated
since Kubernetes 1.24). Never both: MetalLB refuses a Service that has both.

The optional workload places pods so that the traffic policy works: spread
one per node (``topologySpreadConstraints`` maxSkew 1 on the hostname),
pod anti-affinity on the hostname, or a DaemonSet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

try:
    import yaml
except ImportError:  # only writing files needs it; service_manifest reports it with missing_required_lib
    HAS_YAML = False
else:
    HAS_YAML = True
    _INT = "tag:yaml.org,2002:int"
    _FLOAT = "tag:yaml.org,2002:float"

    class PlainDumper(yaml.SafeDumper):
        """Writes an object shared by two places (the selector reused as
        ``matchLabels``) in full at each: people read and diff these files,
        and ``&id001``/``*id001`` anchors make both harder."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    class ManifestLoader(yaml.SafeLoader):
        """Reads manifests as Kubernetes does: ``1234:1`` (a BGP community) stays a string.

        PyYAML follows YAML 1.1, where ``1234:1`` is the base-60 integer 74041;
        Kubernetes fills its string fields with the text as written.
        """

    ManifestLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    ManifestLoader.add_implicit_resolver(
        _INT, re.compile(r"^[-+]?(0|[1-9][0-9_]*|0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+)$"), list("-+0123456789")
    )
    ManifestLoader.add_implicit_resolver(
        _FLOAT,
        re.compile(r"^([-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$"),
        list("-+0123456789."),
    )


from .dataplane import parse_port
from .errors import InputError, refuse_unknown_keys
from .pools import FAMILY_NAMES, format_address, parse_address
from .service import Service
from .workload import Workload, parse_workload_shape

HOSTNAME_KEY = "kubernetes.io/hostname"
IP_FIELDS = ("annotation", "spec")
# An entry of allocate's allocations, or of pool_info's (which adds ports and sharing_key).
ALLOCATION_KEYS = frozenset({"namespace", "name", "addresses", "pool", "ports", "sharing_key"})
ANNOTATION_IPS = "metallb.io/loadBalancerIPs"
ANNOTATION_SHARED = "metallb.io/allow-shared-ip"
ANNOTATION_POOL = "metallb.io/address-pool"


def parse_workload(data: object, service: Service, field: str = "workload", *, rendering: bool = True) -> Workload:
    """The workload of a service; ``rendering=False`` (shape only) needs no image and no selector."""
    workload = parse_workload_shape(data, field, rendering=rendering)
    anti_affinity = workload.anti_affinity
    if rendering and not service.selector:
        if anti_affinity != "none":
            raise InputError(
                f"{field}.anti_affinity",
                anti_affinity,
                "needs service.selector: pod anti-affinity keeps apart pods that carry the selector's labels",
            )
        raise InputError("service.selector", {}, "a workload needs the service's selector: its pods get those labels")
    return workload


def parse_addresses(data: object, service: Service, field: str = "addresses") -> list[str]:
    """The allocation: a list of IPs, or an ``allocate`` result entry (a mapping with ``addresses``)."""
    if data is None:
        data = [format_address(f, v) for f, v in service.load_balancer_ips]
    if isinstance(data, Mapping):
        refuse_unknown_keys(data, ALLOCATION_KEYS, field)
        for key in ("namespace", "name"):
            value = data.get(key)
            mine = getattr(service, key)
            if value is not None and value != mine:
                raise InputError(f"{field}.{key}", value, f"is the allocation of another service (this one is {mine})")
        field = f"{field}.addresses"
        data = data.get("addresses") or []
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list):
        raise InputError(field, data, "must be a list of IP addresses or an allocation from allocate")
    if len(data) > 2:
        raise InputError(field, data, "at most two addresses, one per family")
    parsed = [parse_address(ip, f"{field}[{i}]") for i, ip in enumerate(data)]
    if len(parsed) == 2 and parsed[0][0] == parsed[1][0]:
        raise InputError(field, data, "both addresses are of one family; give one per family")
    return [format_address(f, v) for f, v in parsed]


def _port_name(protocol: str, port: int) -> str:
    return f"{protocol.lower()}-{port}"


def render_service(
    service: Service,
    addresses: Sequence[str],
    *,
    health_check_node_port: int | None = None,
    ip_field: str = "annotation",
    workload: Workload | None = None,
) -> dict[str, Any]:
    if not service.ports:
        raise InputError("service.ports", [], "a Kubernetes Service needs at least one port")
    if ip_field not in IP_FIELDS:
        raise InputError("ip_field", ip_field, f"must be one of {', '.join(IP_FIELDS)}")
    if health_check_node_port is not None:
        health_check_node_port = parse_port(health_check_node_port, "health_check_node_port")
        if service.external_traffic_policy != "Local":
            raise InputError(
                "health_check_node_port",
                health_check_node_port,
                "only applies to external_traffic_policy Local (kube-proxy serves it only then)",
            )
    annotations: dict[str, str] = {}
    spec: dict[str, Any] = {"type": "LoadBalancer"}
    if addresses:
        if ip_field == "spec":
            if len(addresses) > 1:
                raise InputError(
                    "ip_field", ip_field, "spec.loadBalancerIP holds one address; dual-stack needs the annotation"
                )
            spec["loadBalancerIP"] = addresses[0]
        else:
            annotations[ANNOTATION_IPS] = ",".join(addresses)
    if service.sharing_key:
        annotations[ANNOTATION_SHARED] = service.sharing_key
    if service.address_pool:
        annotations[ANNOTATION_POOL] = service.address_pool

    single_port = len(service.ports) == 1
    target = workload.container_port if workload is not None and single_port else None
    spec["ports"] = [
        {
            "name": _port_name(p.protocol, p.port),
            "port": p.port,
            "protocol": p.protocol,
            "targetPort": target or p.port,
        }
        for p in service.ports
    ]
    if service.selector:
        spec["selector"] = dict(service.selector)
    spec["externalTrafficPolicy"] = service.external_traffic_policy
    if health_check_node_port is not None:
        spec["healthCheckNodePort"] = health_check_node_port
    families = [parse_address(a, "addresses")[0] for a in addresses] or list(service.wanted_families)
    spec["ipFamilies"] = [FAMILY_NAMES[f] for f in families]
    spec["ipFamilyPolicy"] = service.ip_family_policy

    metadata: dict[str, Any] = {"name": service.name, "namespace": service.namespace}
    if service.labels:
        metadata["labels"] = dict(service.labels)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def render_workload(service: Service, workload: Workload) -> dict[str, Any]:
    # The workload and its container take the Service's name: a DNS label
    # (RFC 1035, parse_service checks), which is also a valid object and container name.
    labels = dict(service.selector)
    if workload.container_port is not None:
        container_ports = [{"containerPort": workload.container_port, "protocol": service.ports[0].protocol}]
    else:
        container_ports = [{"containerPort": p.port, "protocol": p.protocol} for p in service.ports]
    pod_spec: dict[str, Any] = {
        "containers": [{"name": service.name, "image": workload.image, "ports": container_ports}],
    }
    match = {"matchLabels": labels}
    if workload.spread:
        # DoNotSchedule: a pod that would break the spread waits, rather than
        # piling onto a node and leaving another node with none.
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": HOSTNAME_KEY,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": match,
            }
        ]
    term = {"labelSelector": match, "topologyKey": HOSTNAME_KEY}
    if workload.anti_affinity == "required":
        pod_spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    elif workload.anti_affinity == "preferred":
        pod_spec["affinity"] = {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]
            }
        }
    spec: dict[str, Any] = {
        "selector": match,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if workload.kind == "Deployment":
        spec = {"replicas": workload.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": workload.kind,
        "metadata": {"name": service.name, "namespace": service.namespace, "labels": labels},
        "spec": spec,
    }


def render(
    service: Service,
    addresses: Sequence[str],
    *,
    health_check_node_port: int | None = None,
    ip_field: str = "annotation",
    workload: Workload | None = None,
) -> list[dict[str, Any]]:
    """The resources, Service first (apply order)."""
    resources = [
        render_service(
            service,
            addresses,
            health_check_node_port=health_check_node_port,
            ip_field=ip_field,
            workload=workload,
        )
    ]
    if workload is not None:
        resources.append(render_workload(service, workload))
    return resources


def file_name(resource: Mapping[str, Any]) -> str:
    """``<namespace>_<name>_<kind>.yaml``, lower case: unique per resource."""
    meta = resource["metadata"]
    return f"{meta['namespace']}_{meta['name']}_{resource['kind'].lower()}.yaml"


def to_yaml(resource: Mapping[str, Any]) -> str:
    return "---\n" + plain_yaml(dict(resource))


def current_text(path: str) -> str | None:
    """A written file's text, or None when there is none yet (what the modules compare before writing)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def load_manifests(text: str) -> list[Any]:
    """Every document of a YAML text, read as Kubernetes reads it (:class:`ManifestLoader`)."""
    return list(yaml.load_all(text, Loader=ManifestLoader))  # a SafeLoader


def plain_yaml(data: object) -> str:
    """Block-style YAML in the data's own key order, without anchors (needs PyYAML: ``HAS_YAML``)."""
    return yaml.dump(data, Dumper=PlainDumper, sort_keys=False, default_flow_style=False)
