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

:class:`PoolChooser` is the one place that applies this order and says why a
pool is refused; ``validate`` asks it too. ``service_allocation``
restrictions hold on every path. A pool gives at most
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
from dataclasses import dataclass, field

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


def family_text(families: Iterable[int]) -> str:
    return " and ".join(FAMILY_NAMES[f] for f in families)


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """One family of one pool: distinct addresses held by at least one service, and how many are left."""

    pool: str
    family: int
    in_use: int
    available: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a service cannot take its addresses from a pool, before looking at what is held.

    ``kind`` names the rule that refuses; the allocator and ``validate`` each word it for their readers:

    - ``unowned``: the requested ``address`` is in no pool;
    - ``split``: the requested ``address`` is in ``pool``, ``other_address`` in ``other_pool``;
    - ``not_requested_pool``: the requested addresses (the first is ``address``) are in ``pool``,
      not in the service's ``address_pool``;
    - ``no_such_pool``: the service's ``address_pool`` does not exist;
    - ``service_allocation``: ``pool`` does not serve the service (``detail`` says why);
    - ``buggy``: the requested ``address`` ends in .0 or .255 and ``pool`` has avoid_buggy_ips;
    - ``auto_assign``: ``pool`` has auto_assign off, so only a request names it;
    - ``families``: ``pool`` has none of the service's ``families`` that it must have.
    """

    kind: str
    pool: Pool | None = None
    address: Address | None = None
    detail: str = ""
    families: tuple[int, ...] = ()
    other_pool: Pool | None = None
    other_address: Address | None = None


@dataclass(frozen=True, slots=True)
class PoolChoice:
    """The pools a service may take its addresses from, in the order to try them.

    ``path`` is the rule that decides: ``addresses`` (requested addresses),
    ``pool`` (a requested ``address_pool``) or ``auto``. ``ranked`` holds each
    pool that comes into question with its refusal or None: under ``auto``, the
    pools that serve the service in the order to try them, then those that do
    not, in definition order. ``refusal`` is set when no pool comes into question
    at all (an address no pool owns, an unknown ``address_pool``).
    """

    path: str
    ranked: tuple[tuple[Pool, Refusal | None], ...] = ()
    refusal: Refusal | None = None
    candidates: tuple[Pool, ...] = field(init=False)  # the pools without a refusal, in order

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(pool for pool, refusal in self.ranked if refusal is None))


class PoolChooser:
    """The one place that says which pools may serve a service, in which order, and why the others may not.

    It looks only at the pools and the service, never at what is held: the
    allocator then takes addresses from the candidates in order, and
    ``validate`` words the refusals for the user.
    """

    def __init__(self, pools: Sequence[Pool]) -> None:
        self._pools = list(pools)
        self._by_name = {p.name: p for p in self._pools}
        # Automatic choice depends only on namespace, labels and families; pools do not change.
        self._auto_cache: dict[object, PoolChoice] = {}

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def owner(self, address: Address) -> Pool | None:
        for pool in self._pools:
            if pool.find_range(*address) is not None:
                return pool
        return None

    def choose(self, service: Service) -> PoolChoice:
        if service.load_balancer_ips:
            return self._requested_addresses(service)
        if service.address_pool is not None:
            pool = self._by_name.get(service.address_pool)
            if pool is None:
                return PoolChoice("pool", refusal=Refusal("no_such_pool"))
            return PoolChoice("pool", ((pool, self._refusal(pool, service)),))
        cache_key = (
            service.namespace,
            tuple(sorted(service.labels.items())),
            service.wanted_families,
            service.requires_all_families,
        )
        cached = self._auto_cache.get(cache_key)
        if cached is None:
            cached = self._auto_cache[cache_key] = self._auto(service)
        return cached

    def _refusal(self, pool: Pool, service: Service) -> Refusal | None:
        """Why ``pool`` cannot serve ``service`` on any path, or None."""
        reason = pool.refusal(service.namespace, service.labels)
        if reason:
            return Refusal("service_allocation", pool, detail=reason)
        missing = tuple(f for f in service.wanted_families if f not in pool.families)
        if missing and (service.requires_all_families or len(missing) == len(service.wanted_families)):
            return Refusal("families", pool, families=missing)
        return None

    def _auto(self, service: Service) -> PoolChoice:
        pinned: list[Pool] = []
        plain: list[Pool] = []
        refused: list[tuple[Pool, Refusal | None]] = []
        for pool in self._pools:
            reason = pool.refusal(service.namespace, service.labels)
            if reason:
                refused.append((pool, Refusal("service_allocation", pool, detail=reason)))
            elif not pool.auto_assign:
                refused.append((pool, Refusal("auto_assign", pool)))
            elif pool.service_allocation is not None:
                pinned.append(pool)
            else:
                plain.append(pool)
        # sort is stable: equal priorities keep definition order
        pinned.sort(key=lambda p: (p.service_allocation.priority == 0, p.service_allocation.priority))  # type: ignore[union-attr]
        ranked = [(pool, self._refusal(pool, service)) for pool in pinned + plain]
        return PoolChoice("auto", tuple(ranked + refused))

    def _requested_addresses(self, service: Service) -> PoolChoice:
        pool: Pool | None = None
        for address in service.load_balancer_ips:
            owner = self.owner(address)
            if owner is None:
                return PoolChoice("addresses", refusal=Refusal("unowned", address=address))
            if pool is not None and owner.name != pool.name:
                first = service.load_balancer_ips[0]
                return PoolChoice(
                    "addresses",
                    refusal=Refusal("split", pool, first, other_pool=owner, other_address=address),
                )
            pool = owner
        if pool is None:  # parse_service guarantees at least one address here
            raise AllocationError("no requested address", "not_allowed")
        first = service.load_balancer_ips[0]
        if service.address_pool is not None and service.address_pool != pool.name:
            return PoolChoice("addresses", refusal=Refusal("not_requested_pool", pool, first))
        reason = pool.refusal(service.namespace, service.labels)
        if reason:
            return PoolChoice("addresses", ((pool, Refusal("service_allocation", pool, detail=reason)),))
        for address in service.load_balancer_ips:
            if pool.avoid_buggy_ips and is_buggy(*address):
                return PoolChoice("addresses", ((pool, Refusal("buggy", pool, address)),))
        return PoolChoice("addresses", ((pool, None),))


def _allocator_reason(refusal: Refusal) -> str:
    """A pool's refusal under automatic choice, as the allocator words it after the pool's name."""
    if refusal.kind == "auto_assign":
        return "has auto_assign off (request it with address_pool)"
    if refusal.kind == "families":
        return f"has no {family_text(refusal.families)} addresses"
    return refusal.detail


def _requested_refusal(refusal: Refusal, service: Service) -> str:
    """A refusal of the requested addresses, as the allocator words it."""
    text = format_address(*refusal.address) if refusal.address else ""
    pool = refusal.pool.name if refusal.pool else ""
    if refusal.kind == "unowned":
        return f"requested address {text} is not in any address pool"
    if refusal.kind == "split":
        other = format_address(*refusal.other_address) if refusal.other_address else ""
        other_pool = refusal.other_pool.name if refusal.other_pool else ""
        return f"requested addresses must come from one pool: {text} is in {pool!r}, {other} is in {other_pool!r}"
    if refusal.kind == "not_requested_pool":
        return f"requested address {text} is in pool {pool!r}, not in {service.address_pool!r}"
    if refusal.kind == "buggy":
        return f"requested address {text} ends in .0 or .255 and pool {pool!r} has avoid_buggy_ips"
    return f"pool {pool!r}, which owns the requested addresses, {refusal.detail}"


class Allocator:
    """In-memory allocation state for one ledger transaction."""

    def __init__(self, pools: Sequence[Pool], allocations: Iterable[Allocation] = ()) -> None:
        self._pools = list(pools)
        self._pools_by_name = {p.name: p for p in self._pools}
        self._allocations: dict[str, Allocation] = {}
        self._holders: dict[Address, list[str]] = {}
        self._by_sharing_key: dict[str, set[Address]] = {}
        self._cursors: dict[tuple[str, int], int] = {}
        self._chooser = PoolChooser(self._pools)
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

    def usage(self) -> list[PoolUsage]:
        """Every pool, both families: what ``pool_info`` reports and the controller exports as metrics."""
        held: dict[str, dict[int, set[int]]] = {p.name: {4: set(), 6: set()} for p in self._pools}
        for allocation in self._allocations.values():
            if allocation.pool in held:
                for family, value in allocation.addresses:
                    held[allocation.pool][family].add(value)
        return [
            PoolUsage(p.name, f, len(held[p.name][f]), p.size(f) - len(held[p.name][f]))
            for p in self._pools
            for f in (4, 6)
        ]

    def pool_of(self, address: Address) -> Pool | None:
        return self._chooser.owner(address)

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

    def hold(self, allocation: Allocation) -> None:
        """Record an allocation decided elsewhere (a ledger's reservation), as the constructor does."""
        current = self._allocations.get(allocation.key)
        if current is not None:
            self._unindex(current)
        self._index(allocation)

    def release(self, key: str) -> Allocation | None:
        allocation = self._allocations.get(key)
        if allocation is not None:
            self._unindex(allocation)
        return allocation

    # -- choice --------------------------------------------------------------

    def _choose(self, service: Service, current: Allocation | None) -> Allocation:
        choice = self._chooser.choose(service)
        if choice.path == "addresses":
            return self._requested_addresses(service, choice)
        if choice.path == "pool":
            if choice.refusal is not None:
                known = ", ".join(p.name for p in self._pools) or "none"
                raise AllocationError(
                    f"address_pool {service.address_pool!r} does not exist (pools: {known})", "no_pool"
                )
            ((pool, refusal),) = choice.ranked
            if refusal is not None and refusal.kind == "service_allocation":
                raise AllocationError(
                    f"address_pool {pool.name!r} {refusal.detail}, and {service.key} does not qualify", "not_allowed"
                )
            result = _allocator_reason(refusal) if refusal else self._take_from(pool, service, current)
            if isinstance(result, str):
                reason = "not_allowed" if refusal else "pool_exhausted"
                raise AllocationError(f"address_pool {pool.name!r} {result}", reason)
            return Allocation(service, pool.name, result)

        ranked = choice.ranked
        if current is not None and choice.candidates and choice.candidates[0].name != current.pool:
            # Stay in the pool the service is in while it may; moving it would
            # change its address for nothing (sort is stable).
            ranked = tuple(sorted(ranked, key=lambda entry: entry[1] is not None or entry[0].name != current.pool))
        reasons = []
        exhausted = False
        for pool, refusal in ranked:
            if refusal is not None:
                reasons.append(f"pool {pool.name!r} {_allocator_reason(refusal)}")
                continue
            result = self._take_from(pool, service, current)
            if not isinstance(result, str):
                return Allocation(service, pool.name, result)
            exhausted = True
            reasons.append(f"pool {pool.name!r} {result}")
        detail = "; ".join(reasons) if reasons else "no pools are defined"
        raise AllocationError(
            f"no address pool can give {family_text(service.wanted_families)}: {detail}",
            "pool_exhausted" if exhausted else "not_allowed" if reasons else "no_pool",
        )

    def _requested_addresses(self, service: Service, choice: PoolChoice) -> Allocation:
        refusal = choice.refusal or choice.ranked[0][1]
        if refusal is not None:
            raise AllocationError(_requested_refusal(refusal, service), "not_allowed")
        pool = choice.ranked[0][0]
        for address in service.load_balancer_ips:
            holder = self._conflicting_holder(address, service)
            if holder is not None:
                conflict = sharing_conflict(service, self._allocations[holder].service)
                raise AllocationError(
                    f"requested address {format_address(*address)} cannot be shared: {conflict}",
                    "sharing_conflict",
                    holder=holder,
                )
        return Allocation(service, pool.name, service.load_balancer_ips)

    def _take_from(self, pool: Pool, service: Service, current: Allocation | None) -> tuple[Address, ...] | str:
        """One address per wanted family from ``pool``, or why not."""
        # the chooser has refused the pools that lack a family the service must have
        offered = [f for f in service.wanted_families if f in pool.families]
        picked: list[Address] = []
        exhausted: list[int] = []
        for family in offered:
            address = self._pick(pool, family, service, current)
            if address is None:
                exhausted.append(family)
            else:
                picked.append(address)
        if exhausted and (service.requires_all_families or not picked):
            return f"has no free {family_text(exhausted)} address for this service"
        return tuple(picked)

    def _pick(self, pool: Pool, family: int, service: Service, current: Allocation | None) -> Address | None:
        if current is not None:
            for address in current.addresses:
                if (address[0] == family and pool.allocatable(*address)
                        and self._conflicting_holder(address, service) is None):
                    return address
        first_free = self._first_free(pool, family)
        if service.sharing_key:
            shared = sorted(
                a for a in self._by_sharing_key.get(service.sharing_key, ()) if a[0] == family and pool.allocatable(*a)
            )
            for address in shared:
                if first_free is not None and address[1] > first_free:
                    break
                if self._conflicting_holder(address, service) is None:
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

    def _conflicting_holder(self, address: Address, service: Service) -> str | None:
        """The key of a service holding ``address`` that ``service`` may not share it with, if any."""
        for key in self._holders.get(address, ()):
            if sharing_conflict(service, self._allocations[key].service):
                return key
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
