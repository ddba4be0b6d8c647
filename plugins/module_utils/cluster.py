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
from typing import Any

from .allocator import Allocation
from .errors import InputError
from .pools import Pool, parse_address
from .service import DEFAULT_NAMESPACE, Service

CLUSTER_NAMESPACE = "cluster"

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
        addresses = tuple(a for a in ingress_addresses(obj) if any(p.find_range(*a) is not None for p in pools))
        if addresses:
            out.append(Allocation(Service(CLUSTER_NAMESPACE, key), owner_pool(pools, addresses), addresses))
    return out


def reservations(ledger: Iterable[Mapping[str, Any]], this_run: Iterable[Mapping[str, Any]],
                 services: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, str]]:
    """The controller's ``reserved``: every address the playbook's ledger holds, as ``{address, service}``.

    ``ledger``: ``pool_info``'s allocations (those with ``source: cluster`` are left out: they are the
    cluster's own); ``this_run``: ``allocate``'s, which win for the ``services`` of the run (in check
    mode the ledger read is the one before the run, and a service of the run may be released).
    """
    run_keys = {f"{s.get('namespace') or DEFAULT_NAMESPACE}/{s.get('name')}" for s in services}
    kept = [a for a in ledger if a.get("source", "ledger") == "ledger" and _key(a) not in run_keys]
    return [{"address": address, "service": _key(a)} for a in [*kept, *this_run] for address in a["addresses"]]


def _key(allocation: Mapping[str, Any]) -> str:
    return f"{allocation['namespace']}/{allocation['name']}"


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
