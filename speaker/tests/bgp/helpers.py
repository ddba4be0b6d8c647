"""Requirements of the interop tests: root and the routers, or the test fails."""

from __future__ import annotations

from prerequisites import require


def need(*tools: str) -> None:
    require("ip", *tools, install="install-bgp-deps.sh")
