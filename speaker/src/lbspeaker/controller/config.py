"""The controller's configuration (``/etc/baremetal-lb/controller.yaml``), parsed once.

Pools are the inventory's ``lb_pools``, parsed by the core; every error is the
core's ``InputError`` naming the field and the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import KubernetesAccess, parse_kubernetes_access, read_yaml
from ..core.cluster import DEFAULT_LOAD_BALANCER_CLASS
from ..core.errors import InputError, refuse_unknown_keys
from ..core.fields import boolean, integer, mapping, text
from ..core.names import check_namespace, check_object_name
from ..core.pools import Pool, parse_address, parse_pool_list

DEFAULT_PATH = "/etc/baremetal-lb/controller.yaml"
DEFAULT_CLASS = DEFAULT_LOAD_BALANCER_CLASS
LEASE_NAME = "baremetal-lb-controller"
LEASE_NAMESPACE = "baremetal-lb"
DEFAULT_LEASE_S = 15
STATUS_PORT = 7472  # the speaker's is 7473; both may run on one host
TOP_KEYS = frozenset(
    {"kubernetes", "pools", "reserved", "lease", "load_balancer_class", "serve_unclassed", "status"}
)

Address = tuple[int, int]


@dataclass(frozen=True)
class Reservation:
    """An address the playbook's ledger holds for ``service`` (``namespace/name``): never handed out here."""

    address: Address
    service: str


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str = LEASE_NAMESPACE
    name: str = LEASE_NAME
    duration_s: int = DEFAULT_LEASE_S


@dataclass(frozen=True)
class ControllerConfig:
    kubernetes: KubernetesAccess
    pools: tuple[Pool, ...]
    reserved: tuple[Reservation, ...] = ()
    lease: LeaseConfig = LeaseConfig()
    load_balancer_class: str = DEFAULT_CLASS
    serve_unclassed: bool = True
    status_address: str = "127.0.0.1"
    status_port: int = STATUS_PORT


def is_controller_config(raw: object) -> bool:
    """A controller's config has ``pools``; a speaker's never does (``lb-speaker check`` takes both)."""
    return isinstance(raw, dict) and "pools" in raw


def load(path: str) -> ControllerConfig:
    return parse(read_yaml(path))


def _reserved(value: object) -> tuple[Reservation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError("reserved", value, "must be a list of {address, service}")
    out = []
    for i, item in enumerate(value):
        field = f"reserved[{i}]"
        raw = mapping(item, field, frozenset({"address", "service"}), default={})
        if not raw:
            raise InputError(field, item, "must be a mapping with address and service")
        address = parse_address(raw.get("address"), f"{field}.address")
        service = raw.get("service")
        if not isinstance(service, str) or service.count("/") != 1:
            raise InputError(f"{field}.service", service, 'must be "namespace/name"')
        out.append(Reservation(address, service))
    return tuple(out)


def _lease(value: object) -> LeaseConfig:
    raw = mapping(value, "lease", frozenset({"namespace", "name", "duration_s"}), default={})
    namespace = text(raw.get("namespace"), "lease.namespace", LEASE_NAMESPACE)
    check_namespace(namespace, "lease.namespace")
    name = text(raw.get("name"), "lease.name", LEASE_NAME)
    check_object_name(name, "lease.name")
    return LeaseConfig(namespace, name, integer(raw.get("duration_s"), "lease.duration_s", 3, 300, DEFAULT_LEASE_S))


def parse(raw: object) -> ControllerConfig:
    raw = mapping(raw, "<root>")
    refuse_unknown_keys(raw, TOP_KEYS, "")
    status = mapping(raw.get("status"), "status", frozenset({"address", "port"}), default={})
    status_address = text(status.get("address"), "status.address", "127.0.0.1")
    parse_address(status_address, "status.address")
    return ControllerConfig(
        kubernetes=parse_kubernetes_access(raw.get("kubernetes")),
        pools=tuple(parse_pool_list(raw.get("pools"), "pools")),
        reserved=_reserved(raw.get("reserved")),
        lease=_lease(raw.get("lease")),
        load_balancer_class=text(raw.get("load_balancer_class"), "load_balancer_class", DEFAULT_CLASS),
        serve_unclassed=boolean(raw.get("serve_unclassed"), "serve_unclassed", True),
        status_address=status_address,
        status_port=integer(status.get("port"), "status.port", 1, 65535, STATUS_PORT),
    )


def default_path() -> str:
    return os.environ.get("LB_CONTROLLER_CONFIG", DEFAULT_PATH)
