"""Properties of the allocator over random pools and random service streams."""

from __future__ import annotations

import contextlib
import itertools

from ansible_collections.baremetal.lb.plugins.module_utils.allocator import Allocator
from ansible_collections.baremetal.lb.plugins.module_utils.errors import AllocationError
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, ensure_pools
from ansible_collections.baremetal.lb.plugins.module_utils.pools import format_address, parse_pool
from ansible_collections.baremetal.lb.plugins.module_utils.service import parse_service
from ansible_collections.baremetal.lb.plugins.module_utils.sharing import sharing_conflict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@st.composite
def pool_sets(draw):
    """1-4 non-overlapping pools of small IPv4 and IPv6 ranges."""
    count = draw(st.integers(1, 4))
    starts = sorted(draw(st.lists(st.integers(0, 60), min_size=count, max_size=count, unique=True)))
    pools = []
    for i, start in enumerate(starts):
        span = draw(st.integers(0, 3))
        addresses = [f"198.51.100.{start * 4}-198.51.100.{start * 4 + span}"]
        if draw(st.booleans()):
            addresses.append(f"2001:db8:1::{i * 16:x}-2001:db8:1::{i * 16 + span:x}")
        pool = {"name": f"p{i}", "addresses": addresses}
        if draw(st.booleans()):
            pool["auto_assign"] = False
        if draw(st.integers(0, 3)) == 0:
            pool["service_allocation"] = {
                "priority": draw(st.integers(0, 3)),
                "namespaces": [draw(st.sampled_from(["a", "b"]))],
            }
        if draw(st.booleans()):
            pool["avoid_buggy_ips"] = True
        pools.append(pool)
    return pools


def service_specs(pools):
    addresses = [
        format_address(r.family, v)
        for p in (parse_pool(p) for p in pools)
        for r in p.ranges
        for v in range(r.first, r.last + 1)
    ]
    return st.fixed_dictionaries(
        {
            "namespace": st.sampled_from(["a", "b"]),
            "name": st.sampled_from([f"s{i}" for i in range(8)]),
            "ports": st.lists(
                st.fixed_dictionaries(
                    {"port": st.sampled_from([53, 80, 443]), "protocol": st.sampled_from(["TCP", "UDP"])}
                ),
                max_size=2,
                unique_by=lambda p: (p["port"], p["protocol"]),
            ),
            "sharing_key": st.sampled_from(["", "k1", "k2"]),
            "external_traffic_policy": st.sampled_from(["Cluster", "Local"]),
            "selector": st.sampled_from([{}, {"app": "x"}]),
            "ip_family_policy": st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]),
        },
        optional={
            "load_balancer_ips": st.lists(st.sampled_from(addresses), min_size=1, max_size=1),
            "address_pool": st.sampled_from([p["name"] for p in pools]),
        },
    )


def check_invariants(allocator: Allocator) -> None:
    pools = {p.name: p for p in allocator.pools}
    by_address: dict[tuple[int, int], list] = {}
    for allocation in allocator.allocations.values():
        pool = pools[allocation.pool]
        families = [family for family, _value in allocation.addresses]
        assert len(families) == len(set(families)), "one address per family"
        for address in allocation.addresses:
            # a pool never hands out an address outside it (or one it avoids)
            assert pool.allocatable(*address), (allocation, address)
            by_address.setdefault(address, []).append(allocation.service)
        assert pool.refusal(allocation.service.namespace, allocation.service.labels) is None
    for address, services in by_address.items():
        # two services on one address only if the sharing rules allow it
        for a, b in itertools.combinations(services, 2):
            assert sharing_conflict(a, b) is None, (address, a.key, b.key)
        # the allocator's index agrees with the allocations
        assert sorted(allocator.holders(address)) == sorted(s.key for s in services)


def draw_step(data, allocator, specs):
    """One random step: a release of a held service one time in five, else a service to assign.

    Returns (key to release, None, its release request) or (None, service, its request as drawn);
    None when the drawn spec is itself invalid (e.g. SingleStack with a request of the wrong family).
    """
    if data.draw(st.integers(0, 4)) == 0 and allocator.allocations:
        key = data.draw(st.sampled_from(sorted(allocator.allocations)))
        namespace, _sep, name = key.partition("/")
        return key, None, {"namespace": namespace, "name": name, "state": "absent"}
    request = data.draw(specs)
    try:
        return None, parse_service(request), request
    except ValueError:
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_streams_keep_the_invariants(data):
    pools = data.draw(pool_sets())
    allocator = Allocator([parse_pool(p) for p in pools])
    specs = service_specs(pools)
    for _step in range(data.draw(st.integers(1, 25))):
        step = draw_step(data, allocator, specs)
        if step is None:
            continue
        key, spec, _request = step
        if spec is None:
            allocator.release(key)
            assert allocator.get(key) is None
        else:
            before = allocator.get(spec.key)
            try:
                allocation = allocator.assign(spec)
            except AllocationError:
                assert allocator.get(spec.key) == before  # a failure keeps the old allocation
            else:
                if spec.load_balancer_ips:
                    assert allocation.addresses == spec.load_balancer_ips
                if spec.address_pool:
                    assert allocation.pool == spec.address_pool
        check_invariants(allocator)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_assign_then_release_round_trips(data):
    pools = data.draw(pool_sets())
    allocator = Allocator([parse_pool(p) for p in pools])
    specs = service_specs(pools)
    for _step in range(data.draw(st.integers(0, 10))):
        try:
            allocator.assign(parse_service(data.draw(specs)))
        except (AllocationError, ValueError):
            pass
    snapshot = dict(allocator.allocations)
    holders = {a: allocator.holders(a) for alloc in snapshot.values() for a in alloc.addresses}
    try:
        service = parse_service({**data.draw(specs), "namespace": "fresh", "name": "new"})
        allocation = allocator.assign(service)
    except (AllocationError, ValueError):
        return
    allocator.release(allocation.key)
    assert dict(allocator.allocations) == snapshot
    assert {a: allocator.holders(a) for a in holders} == holders
    for address in allocation.addresses:
        if address not in holders:
            assert allocator.holders(address) == []
    # and the freed addresses are handed out again, as the lowest free ones
    again = allocator.assign(service)
    assert again.addresses == allocation.addresses


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_streams_through_each_ledger_match_the_allocator(new_ledger, data):
    """Each step an allocate call of its own: what a backend saves and loads decides as the allocator alone does."""
    pools = data.draw(pool_sets())
    ledger = new_ledger()
    with ledger.transaction() as txn:
        ensure_pools(txn, pools)
    allocator = Allocator([parse_pool(p) for p in pools])
    specs = service_specs(pools)
    for _step in range(data.draw(st.integers(1, 12))):
        step = draw_step(data, allocator, specs)
        if step is None:
            continue
        key, spec, request = step
        if spec is None:
            allocator.release(key)
        else:
            with contextlib.suppress(AllocationError):
                allocator.assign(spec)
        with ledger.transaction() as txn:
            allocate_services(txn, [request])
        state = ledger.read()
        assert {a.key: (a.pool, a.addresses) for a in state.allocations} == {
            a.key: (a.pool, a.addresses) for a in allocator.allocations.values()
        }
        assert [p.name for p in state.pools] == [p["name"] for p in pools]
        check_invariants(Allocator(state.pools, state.allocations))
