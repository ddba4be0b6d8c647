"""Fixtures for tests against the real control plane (controlplane.py).

``cluster``: one control plane per test session, stopped at the end, also on
failure. ``namespace``: a fresh namespace per test, deleted afterwards. A missing
binary fails the session with the command that builds it: nothing skips.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from controlplane import ControlPlane

NODES = ("node1", "node2", "node3")
NODE_ADDRESSES = {n: (f"198.51.100.{10 + i}", f"2001:db8:100::{10 + i}") for i, n in enumerate(NODES, 1)}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("cluster"))
    cp.start()
    try:
        for node in NODES:
            cp.add_node(node, addresses=NODE_ADDRESSES[node])
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    name = f"t-{name}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
