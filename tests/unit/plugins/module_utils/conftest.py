"""Fixtures of the core's tests."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.tests.unit.conftest import ledger_factory
from ansible_collections.baremetal.lb.tests.unit.plugins.module_utils.steps import run_steps as run_in_memory
from ansible_collections.baremetal.lb.tests.unit.plugins.module_utils.steps import run_steps_in_ledger


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def run_steps(request, tmp_path):
    """Run a step sequence on the allocator alone, or as allocate calls through each ledger backend."""
    if request.param == "memory":
        return run_in_memory
    new_ledger = ledger_factory(request, request.param, tmp_path)

    def run(pools, steps):
        run_steps_in_ledger(new_ledger(), pools, steps)

    return run
