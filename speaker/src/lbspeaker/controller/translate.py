"""A Kubernetes Service (the API's JSON) in the core's terms: pure, no client, no I/O.

MetalLB's interface is read as MetalLB reads it, so existing manifests work
unchanged: ``spec.loadBalancerIP`` or ``metallb.io/loadBalancerIPs`` (comma
separated) for requested addresses, ``metallb.io/address-pool`` for a pool,
``metallb.io/allow-shared-ip`` for the sharing key, each also under the
deprecated ``metallb.universe.tf/`` prefix. Everything else (the rules, the
checks of names, families and policies) is the core's :func:`parse_service`;
its errors are renamed to the Service field the value came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.cluster import key_of
from ..core.errors import InputError
from ..core.pools import parse_address
from ..core.service import Service, parse_service

PREFIXES = ("metallb.io/", "metallb.universe.tf/")
IPS_ANNOTATION = "loadBalancerIPs"
POOL_ANNOTATION = "address-pool"
SHARING_ANNOTATION = "allow-shared-ip"
ALLOCATED_FROM = "metallb.io/ip-allocated-from-pool"

Address = tuple[int, int]


@dataclass(frozen=True)
class Request:
    """What a Service asks of us: its core ``Service``, or the ``InputError`` that refused it."""

    key: str
    service: Service | None = None
    error: InputError | None = None
    origin: str = ""  # the Service fields that asked for addresses, a pool or sharing, as the user wrote them


def allocated_pool(obj: Mapping[str, Any]) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ALLOCATED_FROM)
    return value if isinstance(value, str) else None


def _annotation(annotations: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(full annotation name, value) under the current prefix, else the deprecated one."""
    for prefix in PREFIXES:
        if prefix + name in annotations:
            return prefix + name, annotations[prefix + name]
    return None


def annotation_field(name: str) -> str:
    return f'metadata.annotations["{name}"]'


def to_request(obj: Mapping[str, Any]) -> Request:
    """The core's ``Service`` for a LoadBalancer Service, or the error naming the Service's own field."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    key = key_of(obj)
    annotations = meta.get("annotations") or {}
    # core field -> the Service field its value came from, to word errors in the user's terms
    sources = {
        "namespace": "metadata.namespace",
        "name": "metadata.name",
        "ports": "spec.ports",
        "external_traffic_policy": "spec.externalTrafficPolicy",
        "selector": "spec.selector",
        "labels": "metadata.labels",
        "ip_families": "spec.ipFamilies",
        "ip_family_policy": "spec.ipFamilyPolicy",
    }
    data: dict[str, Any] = {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "ports": [{"port": p.get("port"), "protocol": p.get("protocol", "TCP")} for p in spec.get("ports") or ()],
        "external_traffic_policy": spec.get("externalTrafficPolicy") or "Cluster",
        "selector": spec.get("selector") or {},
        "labels": meta.get("labels") or {},
        "ip_families": spec.get("ipFamilies") or None,
        "ip_family_policy": spec.get("ipFamilyPolicy") or "SingleStack",
    }
    try:
        requested = _annotation(annotations, IPS_ANNOTATION)
        spec_ip = spec.get("loadBalancerIP")
        if requested is not None and spec_ip:
            raise InputError("spec.loadBalancerIP", spec_ip,
                             f"and the annotation {requested[0]} are both set; give one")
        if requested is not None:
            sources["load_balancer_ips"] = annotation_field(requested[0])
            data["load_balancer_ips"] = _address_list(requested[1], annotation_field(requested[0]))
        elif spec_ip:
            sources["load_balancer_ips"] = "spec.loadBalancerIP"
            data["load_balancer_ips"] = [spec_ip]
        for core_key, name in (("address_pool", POOL_ANNOTATION), ("sharing_key", SHARING_ANNOTATION)):
            found = _annotation(annotations, name)
            if found is not None:
                sources[core_key] = annotation_field(found[0])
                if not found[1].strip():
                    raise InputError(annotation_field(found[0]), found[1], "must not be empty")
                data[core_key] = found[1].strip()
        service = parse_service(data, "service")
    except InputError as exc:
        return Request(key, error=_renamed(exc, sources))
    asked = []
    for core_key in ("load_balancer_ips", "address_pool", "sharing_key"):
        if core_key in sources:
            value = data[core_key]
            asked.append(f"{sources[core_key]}={','.join(value) if isinstance(value, list) else value}")
    return Request(key, service=service, origin=", ".join(asked))


def _address_list(text: str, field: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise InputError(field, text, "must be a comma-separated list of IP addresses")
    for item in items:
        parse_address(item, field)  # names this annotation, not a list index the user never wrote
    return items


def _renamed(exc: InputError, sources: Mapping[str, str]) -> InputError:
    """``service.load_balancer_ips[0]`` -> ``spec.loadBalancerIP``: the field the user wrote."""
    if not exc.field.startswith("service."):
        return exc
    rest = exc.field[len("service."):]
    core_key = rest.split(".", 1)[0].split("[", 1)[0]
    source = sources.get(core_key)
    if source is None:
        return exc
    tail = rest[len(core_key):]
    if source.startswith("metadata.annotations") or source == "spec.loadBalancerIP":
        tail = ""  # one string in the manifest: the index into our list means nothing to the user
    return InputError(source + tail, exc.value, exc.message)
