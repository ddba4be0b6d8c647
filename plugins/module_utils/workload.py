# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of a service's pods (``workload``): what kind, how many, how spread.

Part of the core: ``lb_services`` entries carry it, ``validate`` checks the
traffic it gives, ``service_manifest`` renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .dataplane import parse_port
from .errors import InputError, refuse_unknown_keys
from .fields import boolean

WORKLOAD_KINDS = ("Deployment", "DaemonSet")
ANTI_AFFINITY = ("none", "preferred", "required")
WORKLOAD_KEYS = frozenset({"kind", "image", "replicas", "container_port", "spread", "anti_affinity"})


@dataclass(frozen=True)
class Workload:
    kind: str
    image: str
    replicas: int | None
    container_port: int | None
    spread: bool
    anti_affinity: str


def parse_workload_shape(data: object, field: str = "workload", *, rendering: bool = True) -> Workload:
    """A service's workload; ``rendering=False`` (shape only, as validate needs it) needs no image."""
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping with kind and image")
    refuse_unknown_keys(data, WORKLOAD_KEYS, field)
    kind = data.get("kind") or "Deployment"
    if kind not in WORKLOAD_KINDS:
        raise InputError(f"{field}.kind", kind, f"must be one of {', '.join(WORKLOAD_KINDS)}")
    image = data.get("image")
    if not rendering and image is None:
        image = "-"
    if not isinstance(image, str) or not image.strip():
        raise InputError(f"{field}.image", image, "must be a container image reference")
    replicas = data.get("replicas")
    if kind == "DaemonSet" and replicas is not None:
        raise InputError(f"{field}.replicas", replicas, "a DaemonSet runs one pod per node: leave replicas out")
    if kind == "Deployment":
        if replicas is None:
            replicas = 1
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InputError(f"{field}.replicas", replicas, "must be a non-negative integer")
    container_port = data.get("container_port")
    if container_port is not None:
        container_port = parse_port(container_port, f"{field}.container_port")
    spread = boolean(data.get("spread"), f"{field}.spread", kind == "Deployment")
    anti_affinity = data.get("anti_affinity") or "none"
    if anti_affinity not in ANTI_AFFINITY:
        raise InputError(f"{field}.anti_affinity", anti_affinity, f"must be one of {', '.join(ANTI_AFFINITY)}")
    if kind == "DaemonSet" and (spread or anti_affinity != "none"):
        what = "spread" if spread else "anti_affinity"
        raise InputError(
            f"{field}.{what}", data.get(what), "a DaemonSet already runs exactly one pod per node; leave it out"
        )
    return Workload(str(kind), image.strip(), replicas, container_port, spread, str(anti_affinity))
