"""Allocator tests as ordered steps: each step sees the state the last one left."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.allocator import Allocator
from ansible_collections.baremetal.lb.plugins.module_utils.errors import AllocationError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import Ledger
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, ensure_pools
from ansible_collections.baremetal.lb.plugins.module_utils.pools import parse_pool
from ansible_collections.baremetal.lb.plugins.module_utils.service import parse_service


@dataclass
class Step:
    desc: str
    service: dict[str, object] = field(default_factory=dict)
    expect: list[str] | None = None  # addresses the service holds afterwards
    error: str | None = None  # regex the AllocationError must match
    release: str | None = None  # namespace/name to release instead
    pool: str | None = None  # expected pool


def svc(name: str, **kw: object) -> dict[str, object]:
    return {"namespace": kw.pop("namespace", "default"), "name": name, **kw}


def run_steps(pools: list[dict[str, object]], steps: list[Step]) -> Allocator:
    allocator = Allocator([parse_pool(p) for p in pools])
    for number, step in enumerate(steps, 1):
        where = f"step {number} ({step.desc})"
        if step.release is not None:
            allocator.release(step.release)
            assert allocator.get(step.release) is None, where
            continue
        service = parse_service(step.service)
        if step.error is not None:
            held_before = allocator.get(service.key)
            with pytest.raises(AllocationError, match=step.error):
                allocator.assign(service)
            # a failed request leaves the previous allocation intact
            assert allocator.get(service.key) == held_before, where
            continue
        allocation = allocator.assign(service)
        assert allocation.address_strings == step.expect, where
        if step.pool is not None:
            assert allocation.pool == step.pool, where
    return allocator


def held(ledger: Ledger) -> dict[str, object]:
    return {a.key: a for a in ledger.read().allocations}


def run_steps_in_ledger(ledger: Ledger, pools: list[dict[str, object]], steps: list[Step]) -> None:
    """The same steps as ``allocate`` calls, one ledger transaction each: what one call saves, the next reads."""
    with ledger.transaction() as txn:
        ensure_pools(txn, pools)
    for number, step in enumerate(steps, 1):
        where = f"step {number} ({step.desc})"
        if step.release is not None:
            namespace, _sep, name = step.release.partition("/")
            with ledger.transaction() as txn:
                allocate_services(txn, [{"namespace": namespace, "name": name, "state": "absent"}])
            assert step.release not in held(ledger), where
            continue
        key = f"{step.service.get('namespace', 'default')}/{step.service['name']}"
        held_before = held(ledger).get(key)
        with ledger.transaction() as txn:
            result = allocate_services(txn, [step.service])
        if step.error is not None:
            assert [f["name"] for f in result.failures] == [step.service["name"]], where
            assert re.search(step.error, str(result.failures[0]["reason"])), (where, result.failures[0]["reason"])
            assert held(ledger).get(key) == held_before, where
            continue
        assert not result.failures, (where, result.failures)
        saved = held(ledger)[key]
        assert result.allocations[0]["addresses"] == step.expect == saved.address_strings, where  # type: ignore[attr-defined]
        if step.pool is not None:
            assert saved.pool == step.pool, where  # type: ignore[attr-defined]
