"""What the controller should write for a Service, given the core's allocator: pure, no I/O.

The glue MetalLB keeps in ``controller/service.go``: a Service becomes the
allocator's input (:mod:`.translate`), the allocator's answer becomes a status,
an annotation and events. No allocation rule lives here; the core's
``Allocator`` decides, and a Service it refuses keeps what it held.

``Plan.rebuild`` is the start (and a takeover, and a reload): the allocator is
seeded with the addresses the cluster's Services already hold, those Services
are reconciled first, so that a pending Service never takes an address in use
(MetalLB #1774, #2479), and a Service that is already right gets no write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.allocator import Allocation, Allocator
from ..core.cluster import ingress_addresses, is_load_balancer, is_ours, key_of, owner_pool
from ..core.errors import AllocationError
from ..core.pools import Pool, format_address
from ..core.service import Service
from .config import Reservation
from .translate import ALLOCATED_FROM, Request, allocated_pool, to_request

Address = tuple[int, int]
NORMAL = "Normal"
WARNING = "Warning"
# the failure of a Service whose spec the core refuses before allocating (the others: the core's reasons)
INVALID_SERVICE = "invalid_service"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str  # IPAllocated | AllocationFailed | ClearAssignment
    message: str


@dataclass(frozen=True)
class Write:
    """One Service's outcome: a status (and annotation) to write, or None, and the events to record."""

    key: str
    ingress: tuple[str, ...] | None = None  # None: leave status alone; () clears it
    pool: str | None = None  # the annotation's value; None removes it (when ingress is written)
    events: tuple[Event, ...] = ()
    # why the Service got no (new) address: an AllocationError's reason, or "invalid_service"
    failure: str | None = None

    @property
    def writes_status(self) -> bool:
        return self.ingress is not None

    def status_patch(self, resource_version: str | None) -> dict[str, Any]:
        """A JSON merge patch for ``/status``: the API keeps its metadata changes there (the annotation)."""
        meta: dict[str, Any] = {"annotations": {ALLOCATED_FROM: self.pool}}
        if resource_version:
            meta["resourceVersion"] = resource_version  # a stale view gets 409, not a lost update
        return {"metadata": meta, "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in self.ingress or ()]}}}


def reserved_allocations(pools: Iterable[Pool], reserved: Iterable[Reservation]) -> dict[str, Allocation]:
    """The ledger's addresses by service: held under that service's own key (docs/kubernetes.md).

    The cluster Service of the same ``namespace/name`` is the ledger's service (the playbook
    rendered it), so it keeps them; any other is refused them (no sharing key).
    """
    by_service: dict[str, list[tuple[int, int]]] = {}
    for entry in reserved:
        by_service.setdefault(entry.service, []).append(entry.address)
    pools = list(pools)
    out = {}
    for key, addresses in by_service.items():
        namespace, name = key.split("/", 1)
        out[key] = Allocation(Service(namespace, name), owner_pool(pools, addresses), tuple(addresses))
    return out


@dataclass
class Plan:
    """The allocator and the Services it has seen; ``reconcile`` says what to write for one of them."""

    pools: tuple[Pool, ...]
    load_balancer_class: str
    serve_unclassed: bool
    reserved: tuple[Reservation, ...] = ()
    allocator: Allocator = field(init=False)
    _reservations: dict[str, Allocation] = field(init=False)

    def __post_init__(self) -> None:
        self._reservations = reserved_allocations(self.pools, self.reserved)
        self.allocator = Allocator(self.pools, self._reservations.values())

    def ours(self, obj: Mapping[str, Any]) -> bool:
        return is_ours(obj, self.load_balancer_class, self.serve_unclassed)

    def rebuild(self, services: Iterable[Mapping[str, Any]]) -> list[Write]:
        """Start from the cluster as it is: seed what Services hold, then reconcile holders first."""
        # each Service read once (10,000 on a restart): its request and what its status holds
        facts = [(obj, ingress_addresses(obj), to_request(obj) if self.ours(obj) else None) for obj in services]
        facts.sort(key=lambda fact: _start_order(fact[0], fact[1]))
        seeds = dict(self._reservations)
        for obj, addresses, request in facts:
            seed = self._held(obj, addresses, request)
            if seed is not None:
                seeds[seed.key] = seed  # what the cluster's Service holds wins over the ledger's record of it
        self.allocator = Allocator(self.pools, seeds.values())
        writes = [self.reconcile(obj, addresses, request) for obj, addresses, request in facts]
        return [w for w in writes if w.writes_status or w.events]

    def _held(self, obj: Mapping[str, Any], addresses: tuple[Address, ...], request: Request | None
              ) -> Allocation | None:
        """What a Service of ours holds in its status, if every address is still in one pool."""
        if request is None or not addresses:
            return None
        owners = {self.allocator.pool_of(a) for a in addresses}
        if len(owners) != 1 or None in owners:
            return None  # a pool removed or shrunk under it: reconcile clears or moves it
        (pool,) = owners
        # a Service whose spec we now refuse still holds its addresses: nobody else may take them
        namespace, name = key_of(obj).split("/", 1)
        service = request.service or Service(namespace, name)
        return Allocation(service, pool.name if pool else "", addresses)

    def forget(self, key: str) -> None:
        """A Service deleted (or no longer ours): its addresses are free for the next, unless the ledger's."""
        self.allocator.release(key)
        self._restore_reservation(key)

    def _restore_reservation(self, key: str) -> None:
        reservation = self._reservations.get(key)
        if reservation is not None and not any(self.allocator.holders(a) for a in reservation.addresses):
            self.allocator.hold(reservation)

    def _explained(self, message: str, exc: AllocationError) -> str:
        """Name the ledger when one of its reservations is why a Service was refused."""
        if exc.holder is not None and exc.holder in self._reservations:
            return f"{message} ({exc.holder}: reserved for the playbook's ledger)"
        return message

    def reconcile(self, obj: Mapping[str, Any], addresses: tuple[Address, ...] | None = None,
                  request: Request | None = None) -> Write:
        """What to write for ``obj``; ``addresses`` and ``request``, when given, are its already read."""
        key = key_of(obj)
        if addresses is None:
            addresses = ingress_addresses(obj)
        status_ips = tuple(format_address(*a) for a in addresses)
        if not self.ours(obj):
            self.forget(key)
            if not is_load_balancer(obj) and allocated_pool(obj) is not None:
                # it was ours and is of another type now: clear what we wrote
                return Write(key, ingress=(), pool=None, events=(
                    Event(NORMAL, "ClearAssignment", "Service is not of type LoadBalancer; address released"),))
            return Write(key)
        if request is None:
            request = to_request(obj)
        if request.service is None:
            assert request.error is not None
            exc = request.error
            refused = Event(WARNING, "AllocationFailed", f"{exc.field}: {exc.message} (got {exc.value!r})")
            return Write(key, events=(refused,), failure=INVALID_SERVICE)
        held = self.allocator.get(key)
        try:
            allocation = self.allocator.assign(request.service)
        except AllocationError as exc:
            asked = f" ({request.origin})" if request.origin else ""
            failed = Event(WARNING, "AllocationFailed",
                           self._explained(f"Failed to allocate IP for {key}{asked}: {exc}", exc))
            if held is None and status_ips:
                # its status names addresses no pool gives any more (pool removed or shrunk)
                cleared = Event(NORMAL, "ClearAssignment",
                                f"current IP {_ips(status_ips)} not allowed by config, clearing")
                return Write(key, ingress=(), pool=None, events=(cleared, failed), failure=exc.reason)
            return Write(key, events=(failed,), failure=exc.reason)
        ips = tuple(allocation.address_strings)
        if ips == status_ips and allocated_pool(obj) == allocation.pool:
            return Write(key)
        if ips == status_ips:
            return Write(key, ingress=ips, pool=allocation.pool)  # only the annotation was missing
        events = []
        if status_ips:
            events.append(Event(NORMAL, "ClearAssignment", f"current IP {_ips(status_ips)} replaced by {_ips(ips)}"))
        events.append(Event(NORMAL, "IPAllocated", f"Assigned IP {_ips(ips)} from pool {allocation.pool}"))
        return Write(key, ingress=ips, pool=allocation.pool, events=tuple(events))


def _ips(addresses: tuple[str, ...]) -> str:
    return json.dumps(list(addresses))  # as MetalLB words them: ["198.51.100.100"]


def _start_order(obj: Mapping[str, Any], addresses: tuple[Address, ...]) -> tuple[bool, str, str]:
    """Services holding addresses first; then the rest oldest first (stable, deterministic)."""
    meta = obj.get("metadata") or {}
    return (not addresses, meta.get("creationTimestamp") or "", key_of(obj))
