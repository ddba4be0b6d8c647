"""Skips for the interop tests when the machine cannot run them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def _missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None and not Path(t).exists()]


def need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("interop tests need root (network namespaces)")
    missing = _missing("ip", *tools)
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: run speaker/scripts/install-bgp-deps.sh")
