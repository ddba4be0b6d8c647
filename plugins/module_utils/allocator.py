# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The allocator: which service holds which address, by MetalLB's rules.

Order of choice (fixed by the collection's design):

1. requested addresses (``load_balancer_ips``): all from one pool, each one
   free or shareable; ``auto_assign`` does not matter;
2. a requested pool (``address_pool``): the lowest usable address per family;
   ``auto_assign`` does not matter;
3. otherwise the pools whose ``service_allocation`` matches the service, by
   priority (lower first, 0 last), then the pools without
   ``service_allocation``, in the order they were first defined; only pools
   with ``auto_assign``.

``service_allocation`` restrictions hold on every path. A pool gives at most
one address per family. Inside a pool, ranges are tried in declared order and
the lowest usable address wins: a free one, or one already held under the
same sharing key where the sharing rules allow it. A service keeps what it
holds while that is still allowed, and a failed request leaves the service's
previous allocation untouched.

Free addresses are found with a cursor per range below which every address is
known to be taken; releasing an address moves the cursor back. A batch of N
services therefore costs O(N) address probes, not O(N^2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import AllocationError
from .pools import FAMILY_NAMES, Pool, format_address, is_buggy
from .service import Service
from .sharing import sharing_conflict

Address = tuple[int, int]  # (family, integer value)


@dataclass(frozen=True, slots=True)
class Allocation:
    service: Service
    pool: str
    addresses: tuple[Address, ...]

    @property
    def key(self) -> str:
        return self.service.key

    @property
    def address_strings(self) -> list[str]:
        return [format_address(f, v) for f, v in self.addresses]

    def to_dict(self) -> dict[str, object]:
        return {
            "namespace": self.service.namespace,
            "name": self.service.name,
            "addresses": self.address_strings,
            "pool": self.pool,
        }


def _families(families: Iterable[int]) -> str:
    return " and ".join(FAMILY_NAMES[f] for f in families)


class Allocator:
    """In-memory allocation state for one ledger transaction."""

    def __init__(self, pools: Sequence[Pool], allocations: Iterable[Allocation] = ()) -> None:
        self._pools = list(pools)
        self._pools_by_name = {p.name: p for p in self._pools}
        self._allocations: dict[str, Allocation] = {}
        self._holders: dict[Address, list[str]] = {}
        self._by_sharing_key: dict[str, set[Address]] = {}
        self._cursors: dict[tuple[str, int], int] = {}
        # Automatic candidates depend only on namespace and labels; pools do not change.
        self._auto_cache: dict[tuple[str, tuple[tuple[str, str], ...]], list[Pool]] = {}
        for allocation in allocations:
            self._index(allocation)

    # -- queries -------------------------------------------------------------

    @property
    def pools(self) -> list[Pool]:
        return list(self._pools)

    @property
    def allocations(self) -> Mapping[str, Allocation]:
        return self._allocations

    def get(self, key: str) -> Allocation | None:
        return self._allocations.get(key)

    def holders(self, address: Address) -> list[str]:
        return list(self._holders.get(address, ()))

    def assigned_count(self, pool: Pool, family: int) -> int:
        """Distinct addresses of the pool held by at least one service."""
        return sum(1 for f, v in self._holders if f == family and pool.find_range(f, v) is not None)

    def pool_of(self, address: Address) -> Pool | None:
        for pool in self._pools:
            if pool.find_range(*address) is not None:
                return pool
        return None

    # -- changes -------------------------------------------------------------

    def assign(self, service: Service) -> Allocation:
        """Give ``service`` its addresses, or raise AllocationError and change nothing."""
        current = self._allocations.get(service.key)
        if current is not None:
            self._unindex(current)
        try:
            allocation = self._choose(service, current)
        except AllocationError:
            if current is not None:
                self._index(current)
            raise
        self._index(allocation)
        return allocation

    def release(self, key: str) -> Allocation | None:
        allocation = self._allocations.get(key)
        if allocation is not None:
            self._unindex(allocation)
        return allocation

    # -- choice --------------------------------------------------------------

    def _choose(self, service: Service, current: Allocation | None) -> Allocation:
        if service.load_balancer_ips:
            return self._requested_addresses(service)
        if service.address_pool is not None:
            pool = self._pools_by_name.get(service.address_pool)
            if pool is None:
                known = ", ".join(p.name for p in self._pools) or "none"
                raise AllocationError(f"address_pool {service.address_pool!r} does not exist (pools: {known})")
            refusal = pool.refusal(service.namespace, service.labels)
            if refusal:
                raise AllocationError(f"address_pool {pool.name!r} {refusal}, and {service.key} does not qualify")
            result = self._take_from(pool, service, current)
            if isinstance(result, str):
                raise AllocationError(f"address_pool {pool.name!r} {result}")
            return Allocation(service, pool.name, result)

        candidates = self._auto_pools(service)
        if current is not None and candidates and candidates[0].name != current.pool:
            # Stay in the pool the service is in while it may; moving it would
            # change its address for nothing.
            candidates = sorted(candidates, key=lambda p: p.name != current.pool)
        reasons = []
        for pool in candidates:
            result = self._take_from(pool, service, current)
            if not isinstance(result, str):
                return Allocation(service, pool.name, result)
            reasons.append(f"pool {pool.name!r} {result}")
        for pool in self._pools:
            if pool not in candidates:
                refusal = pool.refusal(service.namespace, service.labels)
                reasons.append(f"pool {pool.name!r} {refusal or 'has auto_assign off (request it with address_pool)'}")
        detail = "; ".join(reasons) if reasons else "no pools are defined"
        raise AllocationError(f"no address pool can give {_families(service.wanted_families)}: {detail}")

    def _auto_pools(self, service: Service) -> list[Pool]:
        """Pools automatic allocation may use for this service, in the order to try them."""
        cache_key = (service.namespace, tuple(sorted(service.labels.items())))
        cached = self._auto_cache.get(cache_key)
        if cached is not None:
            return cached
        pinned: list[Pool] = []
        plain: list[Pool] = []
        for pool in self._pools:
            if not pool.auto_assign or pool.refusal(service.namespace, service.labels):
                continue
            if pool.service_allocation is not None:
                pinned.append(pool)
            else:
                plain.append(pool)
        # sort is stable: equal priorities keep definition order
        pinned.sort(key=lambda p: (p.service_allocation.priority == 0, p.service_allocation.priority))  # type: ignore[union-attr]
        self._auto_cache[cache_key] = pinned + plain
        return pinned + plain

    def _requested_addresses(self, service: Service) -> Allocation:
        pool: Pool | None = None
        for address in service.load_balancer_ips:
            text = format_address(*address)
            owner = self.pool_of(address)
            if owner is None:
                raise AllocationError(f"requested address {text} is not in any address pool")
            if pool is not None and owner.name != pool.name:
                first = format_address(*service.load_balancer_ips[0])
                raise AllocationError(
                    f"requested addresses must come from one pool: {first} is in {pool.name!r}, "
                    f"{text} is in {owner.name!r}"
                )
            pool = owner
        if pool is None:  # parse_service guarantees at least one address here
            raise AllocationError("no requested address")
        if service.address_pool is not None and service.address_pool != pool.name:
            text = format_address(*service.load_balancer_ips[0])
            raise AllocationError(f"requested address {text} is in pool {pool.name!r}, not in {service.address_pool!r}")
        refusal = pool.refusal(service.namespace, service.labels)
        if refusal:
            raise AllocationError(f"pool {pool.name!r}, which owns the requested addresses, {refusal}")
        for address in service.load_balancer_ips:
            text = format_address(*address)
            if pool.avoid_buggy_ips and is_buggy(*address):
                raise AllocationError(
                    f"requested address {text} ends in .0 or .255 and pool {pool.name!r} has avoid_buggy_ips"
                )
            conflict = self._conflict(address, service)
            if conflict:
                raise AllocationError(f"requested address {text} cannot be shared: {conflict}")
        return Allocation(service, pool.name, service.load_balancer_ips)

    def _take_from(self, pool: Pool, service: Service, current: Allocation | None) -> tuple[Address, ...] | str:
        """One address per wanted family from ``pool``, or why not."""
        wanted = service.wanted_families
        offered = [f for f in wanted if f in pool.families]
        if service.requires_all_families:
            missing = [f for f in wanted if f not in pool.families]
            if missing:
                return f"has no {_families(missing)} addresses"
        elif not offered:
            return f"has no {_families(wanted)} addresses"
        picked: list[Address] = []
        exhausted: list[int] = []
        for family in offered:
            address = self._pick(pool, family, service, current)
            if address is None:
                exhausted.append(family)
            else:
                picked.append(address)
        if exhausted and (service.requires_all_families or not picked):
            return f"has no free {_families(exhausted)} address for this service"
        return tuple(picked)

    def _pick(self, pool: Pool, family: int, service: Service, current: Allocation | None) -> Address | None:
        if current is not None:
            for address in current.addresses:
                if address[0] == family and pool.allocatable(*address) and self._conflict(address, service) is None:
                    return address
        first_free = self._first_free(pool, family)
        if service.sharing_key:
            shared = sorted(
                a for a in self._by_sharing_key.get(service.sharing_key, ()) if a[0] == family and pool.allocatable(*a)
            )
            for address in shared:
                if first_free is not None and address[1] > first_free:
                    break
                if self._conflict(address, service) is None:
                    return address
        return None if first_free is None else (family, first_free)

    def _first_free(self, pool: Pool, family: int) -> int | None:
        holders = self._holders
        for index, rng in enumerate(pool.ranges):
            if rng.family != family:
                continue
            slot = (pool.name, index)
            value = self._cursors.get(slot, rng.first)
            while value <= rng.last:
                if (family, value) in holders or (pool.avoid_buggy_ips and is_buggy(family, value)):
                    value += 1
                    continue
                self._cursors[slot] = value
                return value
            self._cursors[slot] = value
        return None

    def _conflict(self, address: Address, service: Service) -> str | None:
        for key in self._holders.get(address, ()):
            reason = sharing_conflict(service, self._allocations[key].service)
            if reason:
                return reason
        return None

    # -- indexes -------------------------------------------------------------

    def _index(self, allocation: Allocation) -> None:
        self._allocations[allocation.key] = allocation
        sharing_key = allocation.service.sharing_key
        for address in allocation.addresses:
            self._holders.setdefault(address, []).append(allocation.key)
            if sharing_key:
                self._by_sharing_key.setdefault(sharing_key, set()).add(address)

    def _unindex(self, allocation: Allocation) -> None:
        del self._allocations[allocation.key]
        sharing_key = allocation.service.sharing_key
        for address in allocation.addresses:
            holders = self._holders.get(address, [])
            if allocation.key in holders:
                holders.remove(allocation.key)
            if sharing_key and not any(self._allocations[k].service.sharing_key == sharing_key for k in holders):
                self._by_sharing_key.get(sharing_key, set()).discard(address)
            if not holders:
                self._holders.pop(address, None)
                self._rewind_cursor(address)

    def _rewind_cursor(self, address: Address) -> None:
        for pool in self._pools:
            index = pool.find_range(*address)
            if index is not None:
                slot = (pool.name, index)
                if slot in self._cursors and self._cursors[slot] > address[1]:
                    self._cursors[slot] = address[1]
                return
