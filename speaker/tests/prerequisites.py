"""What the privileged suites (l2, bgp, forwarding) need from the machine, checked before a lab is built.

A missing requirement FAILS the test, naming what is missing and how to get
it: a run that exercised no namespace, no nftables and no peer router must not
report success. There is no switch to skip them; to run only what needs no
privilege, run ``pytest tests/unit`` (and the pure files of tests/bgp).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

import pytest

# The Debian package that provides each tool the suites run.
DEBIAN_PACKAGES = {
    "ip": "iproute2",
    "nft": "nftables",
    "sysctl": "procps",
    "bird": "bird2",
    "birdc": "bird2",
    "vtysh": "frr",
    "/usr/lib/frr/zebra": "frr",
    "/usr/lib/frr/bgpd": "frr",
    "/usr/lib/frr/bfdd": "frr",
    "gobgpd": "gobgpd",
    "gobgp": "gobgpd",
    "promtool": "prometheus",
}


def missing(tools: Iterable[str], install: str, *, euid: int | None = None, path: str | None = None) -> list[str]:
    """What keeps this process from running ``tools`` in network namespaces, one sentence each.

    ``install`` is the script under speaker/scripts that installs the tools;
    ``euid`` and ``path`` default to this process's.
    """
    euid = os.geteuid() if euid is None else euid
    problems = [] if euid == 0 else [f"needs root (running as uid {euid})"]
    for tool in tools:
        if shutil.which(tool, path=path) is None:
            problems.append(f"needs {tool} from Debian package {DEBIAN_PACKAGES[tool]}: "
                            f"run speaker/scripts/{install}")
    return problems


def require(*tools: str, install: str) -> None:
    """Fail the running test unless it runs as root with every one of ``tools``."""
    problems = missing(tools, install)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
