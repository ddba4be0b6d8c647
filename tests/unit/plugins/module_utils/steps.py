"""Allocator tests as ordered steps: each step sees the state the last one left."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.allocator import Allocator
from ansible_collections.baremetal.lb.plugins.module_utils.errors import AllocationError
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
