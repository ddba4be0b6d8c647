# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules do, as plain functions over one ledger transaction.

Each function reads the state the transaction loaded, decides, and writes
only what changed. The modules add argument handling, check mode (abort the
transaction) and result formatting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .allocator import Allocation, Allocator
from .batching import cyclic_gc_paused
from .cluster import cluster_allocations
from .errors import AllocationError, InputError, refuse_unknown_keys
from .ledger import LedgerState, Transaction
from .pools import FAMILY_NAMES, POOL_KEYS, Pool, find_overlap, format_address, overlap_message, parse_pool
from .service import Service, parse_service


@dataclass
class PoolChange:
    changed: bool
    before: dict[str, object] | None
    after: dict[str, object] | None
    released: list[dict[str, object]] = field(default_factory=list)
    pool: Pool | None = None  # the pool as saved (None when removed or absent)


def _release_reason(pool: Pool, allocation: Allocation) -> str | None:
    """Why ``allocation`` may not stay in (the new definition of) ``pool``."""
    for family, value in allocation.addresses:
        if pool.find_range(family, value) is None:
            return f"{format_address(family, value)} is no longer in the pool"
        if not pool.allocatable(family, value):
            return f"{format_address(family, value)} ends in .0 or .255 and the pool now avoids those"
    refusal = pool.refusal(allocation.service.namespace, allocation.service.labels)
    if refusal:
        return f"the pool now {refusal}"
    return None


def _released(allocation: Allocation, reason: str) -> dict[str, object]:
    return {**allocation.to_dict(), "reason": reason}


def apply_pool(txn: Transaction, options: Mapping[str, object], field: str = "") -> PoolChange:
    """Create, update or remove one pool (``address_pool``'s options).

    ``field`` is empty for ``address_pool``'s own options; otherwise it is the
    pool's path in another option (``allocate``'s ``pools[2]``), which
    prefixes every error and makes unknown keys an error.
    """
    prefix = f"{field}." if field else ""
    name = options.get("name")
    state = options.get("state") or "present"
    force = bool(options.get("force"))
    existing = {p.name: p for p in txn.state.pools}
    old = existing.get(str(name))
    held = [a for a in txn.state.allocations if a.pool == name]

    if state == "absent":
        if old is None:
            return PoolChange(False, None, None)
        if held and not force:
            listing = ", ".join(f"{a.key} ({', '.join(a.address_strings)})" for a in held)
            raise InputError(
                f"{prefix}state",
                "absent",
                f"pool {name!r} holds {len(held)} allocation(s): {listing}; set force: true to release them",
            )
        released = [_released(a, "the pool was removed") for a in held]
        for a in held:
            txn.delete_allocation(a.key)
        txn.delete_pool(old.name)
        return PoolChange(True, old.to_dict(), None, released)

    new = parse_pool(options, field)
    overlap = find_overlap(new, txn.state.pools)
    if overlap is not None:
        mine, other, theirs = overlap
        index = new.ranges.index(mine)
        raise InputError(
            f"{prefix}addresses[{index}]",
            mine.text,
            overlap_message(new.name, mine.text, other.name, theirs.text),
        )
    if old is not None and old.to_dict() == new.to_dict():
        return PoolChange(False, old.to_dict(), new.to_dict(), pool=new)
    invalid = [(a, reason) for a in held if (reason := _release_reason(new, a)) is not None]
    if invalid and not force:
        listing = "; ".join(f"{a.key} holds {', '.join(a.address_strings)}: {reason}" for a, reason in invalid)
        raise InputError(
            f"{prefix}addresses",
            options.get("addresses"),
            f"the new definition of pool {name!r} would release {len(invalid)} allocation(s) ({listing}); "
            "set force: true to release them",
        )
    for a, _reason in invalid:
        txn.delete_allocation(a.key)
    txn.put_pool(new)
    return PoolChange(
        True, old.to_dict() if old else None, new.to_dict(), [_released(a, reason) for a, reason in invalid], new
    )


def ensure_pools(txn: Transaction, pools_data: object, field: str = "pools") -> list[PoolChange]:
    """Create or update each pool of ``pools_data`` (``address_pool`` without ``force``), in order.

    Pools not listed are left as they are. Each change is applied to
    ``txn.state`` as well as written, so that an operation that follows in the
    same transaction (``allocate``) sees the pools as they will be saved; in
    check mode that is what lets one task predict a first run.
    """
    if not isinstance(pools_data, list):
        raise InputError(field, pools_data, "must be a list of pools")
    changes = []
    seen: dict[object, int] = {}
    for i, item in enumerate(pools_data):
        path = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            raise InputError(path, item, "must be a pool (a dict with name and addresses)")
        # only pool keys: no state or force here, this option never removes or releases
        refuse_unknown_keys(item, POOL_KEYS, path)
        name = item.get("name")
        if isinstance(name, str) and name in seen:
            raise InputError(f"{path}.name", name, f"is listed twice (also {field}[{seen[name]}])")
        seen[name] = i
        change = apply_pool(txn, item, path)
        changes.append(change)
        new = change.pool
        if change.changed and new is not None:
            txn.state.pools = [new if p.name == new.name else p for p in txn.state.pools]
            if all(p.name != new.name for p in txn.state.pools):
                txn.state.pools.append(new)
    return changes


@dataclass
class AllocateResult:
    changed: bool
    allocations: list[dict[str, object]]
    failures: list[dict[str, object]]
    before: dict[str, object]
    after: dict[str, object]


def parse_services(data: object) -> list[Service]:
    if not isinstance(data, list):
        raise InputError("services", data, "must be a list of services")
    services = [parse_service(item, f"services[{i}]", release_unchecked_names=True) for i, item in enumerate(data)]
    seen: dict[str, int] = {}
    for i, service in enumerate(services):
        if service.key in seen:
            raise InputError(f"services[{i}]", service.key, f"is listed twice (also services[{seen[service.key]}])")
        seen[service.key] = i
    return services


def _stored_form(allocation: Allocation | None) -> tuple[object, ...] | None:
    if allocation is None:
        return None
    return (allocation.pool, allocation.addresses, allocation.service)


def allocate_services(txn: Transaction, services_data: object,
                      cluster: Sequence[Mapping[str, Any]] = ()) -> AllocateResult:
    """Assign or release addresses for a batch of services, in list order.

    ``cluster``: a cluster's Services (the API's JSON); what they hold is never handed out here
    (:func:`cluster.cluster_allocations`), and is not written to the ledger.
    """
    with cyclic_gc_paused():
        return _allocate_services(txn, services_data, cluster)


def _allocate_services(txn: Transaction, services_data: object,
                       cluster: Sequence[Mapping[str, Any]] = ()) -> AllocateResult:
    services = parse_services(services_data)
    held = list(txn.state.allocations)
    if cluster:
        known = {a.key for a in held} | {s.key for s in services}
        held += cluster_allocations(txn.state.pools, cluster, known)
    allocator = Allocator(txn.state.pools, held)
    before = {s.key: allocator.get(s.key) for s in services}
    failures: list[dict[str, object]] = []
    for service in services:
        if service.state == "absent":
            allocator.release(service.key)
            continue
        try:
            allocator.assign(service)
        except AllocationError as exc:
            failures.append({"namespace": service.namespace, "name": service.name, "reason": str(exc)})

    changed_puts: list[Allocation] = []
    diff_before: dict[str, object] = {}
    diff_after: dict[str, object] = {}
    for service in services:
        old, new = before[service.key], allocator.get(service.key)
        if _stored_form(old) == _stored_form(new):
            continue
        diff_before[service.key] = old.to_dict() if old else None
        diff_after[service.key] = new.to_dict() if new else None
        if new is None:
            txn.delete_allocation(service.key)
        else:
            changed_puts.append(new)
    if changed_puts:
        txn.put_allocations(changed_puts)
    allocations = [a.to_dict() for s in services if (a := allocator.get(s.key)) is not None]
    return AllocateResult(bool(diff_after), allocations, failures, diff_before, diff_after)


def pool_report(state: LedgerState, names: Sequence[str] | None = None,
                cluster: Sequence[Mapping[str, Any]] = ()) -> dict[str, list[dict[str, object]]]:
    """``pool_info``'s result: pools with counts per family, and allocations (the ledger's, then a cluster's)."""
    seeds = list(state.allocations)
    ledger_keys = {a.key for a in seeds}
    if cluster:
        seeds += cluster_allocations(state.pools, cluster, ledger_keys)
    allocator = Allocator(state.pools, seeds)
    pools = [p for p in state.pools if not names or p.name in names]
    wanted = {p.name for p in pools}
    usage = allocator.usage()
    report_pools = []
    for pool in pools:
        mine = [u for u in usage if u.pool == pool.name]
        assigned = {FAMILY_NAMES[u.family].lower(): u.in_use for u in mine}
        available = {FAMILY_NAMES[u.family].lower(): u.available for u in mine}
        report_pools.append({**pool.to_dict(), "assigned": assigned, "available": available})
    report_allocations = [
        {
            **a.to_dict(),
            "ports": [p.to_dict() for p in a.service.ports],
            "sharing_key": a.service.sharing_key,
            "source": "ledger" if a.key in ledger_keys else "cluster",
        }
        for a in sorted(allocator.allocations.values(), key=lambda a: a.key)
        if a.pool in wanted
    ]
    return {"pools": report_pools, "allocations": report_allocations}


def ledger_dump(state: LedgerState) -> dict[str, object]:
    """Everything a ledger holds, as plain data (``baremetal.lb.ledger``'s dump, for backups and reading)."""
    return {
        "pools": [p.to_dict() for p in state.pools],
        "allocations": [
            {**a.to_dict(), "service": a.service.to_dict()} for a in sorted(state.allocations, key=lambda a: a.key)
        ],
    }


def copy_ledger(txn: Transaction, source: LedgerState, force: bool) -> bool:
    """Make the ledger of ``txn`` hold what ``source`` holds; whether anything changed.

    A ledger that already holds something else is replaced only with ``force``: a copy must not
    silently drop the allocations of the ledger it is copied into.
    """
    if ledger_dump(txn.state) == ledger_dump(source):
        return False
    if (txn.state.pools or txn.state.allocations) and not force:
        raise InputError(
            "force",
            force,
            f"the ledger already holds {len(txn.state.pools)} pool(s) and {len(txn.state.allocations)} "
            "allocation(s) that differ from the source's; set force: true to replace them",
        )
    for allocation in txn.state.allocations:
        txn.delete_allocation(allocation.key)
    for pool in txn.state.pools:
        txn.delete_pool(pool.name)
    for pool in source.pools:  # in definition order, which decides automatic choice
        txn.put_pool(pool)
    txn.put_allocations(source.allocations)
    return True
