"""Fixtures for the BGP interop tests: a namespace lab torn down by name, also on failure."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import Lab


def _missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None and not Path(t).exists()]


def need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("interop tests need root (network namespaces)")
    missing = _missing("ip", *tools)
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: run speaker/scripts/install-bgp-deps.sh")


@pytest.fixture
def make_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    labs: list[Lab] = []

    def factory(nodes: int = 1) -> Lab:
        lab = Lab(nodes)
        labs.append(lab)
        return lab.create()

    yield factory
    for lab in labs:
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            for log in sorted(lab.dir.glob("*.log")) + sorted(lab.dir.glob("*/*.log")):
                print(f"---- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        lab.destroy()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
