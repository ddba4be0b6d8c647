"""Fixtures for the BGP interop tests: a namespace lab torn down by name, also on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .bgplab import Lab


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
