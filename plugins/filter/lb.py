# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for playbook authors: expected traffic share, and whether two services can share an IP.

Each filter is documented in a sidecar file next to this one (``<filter>.yml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.baremetal.lb.plugins.module_utils.advertisements import MODES
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.service import TRAFFIC_POLICIES, Service, parse_service
from ansible_collections.baremetal.lb.plugins.module_utils.sharing import sharing_conflict as _sharing_conflict
from ansible_collections.baremetal.lb.plugins.module_utils.traffic import (
    per_pod_shares,
    shares_to_list,
)
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_placement


def traffic_share(
    placement: Any,
    mode: str = "bgp",
    policy: str = "Cluster",
    nodes: list[str] | None = None,
    leader: str | None = None,
) -> list[dict[str, object]]:
    """``{node: pods}`` -> ``[{node, share}]``, one entry per pod."""
    if not isinstance(placement, Mapping):
        raise AnsibleFilterError(
            f"traffic_share: the input must be a mapping of node name to pod count, not {placement!r}"
        )
    mode = str(mode).lower()
    if mode not in MODES:
        raise AnsibleFilterError(f"traffic_share: mode must be one of {', '.join(MODES)}, not {mode!r}")
    if policy not in TRAFFIC_POLICIES:
        raise AnsibleFilterError(
            f"traffic_share: policy must be one of {', '.join(TRAFFIC_POLICIES)}, not {policy!r}"
        )
    try:
        counts = parse_placement({"filter/input": placement})["filter/input"]
    except InputError as exc:
        raise AnsibleFilterError(f"traffic_share: {exc.message} (got {exc.value!r})") from None
    return shares_to_list(per_pod_shares(mode, policy, counts, nodes, leader))


def _service(data: Any, field: str) -> Service:
    try:
        return parse_service(data, field)
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None


def sharing_conflict(service: Any, other: Any) -> str:
    """Why the two services can never share an IP, or an empty string when they can."""
    return _sharing_conflict(_service(service, "service"), _service(other, "other")) or ""


def can_share(service: Any, other: Any) -> bool:
    return not sharing_conflict(service, other)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "traffic_share": traffic_share,
            "sharing_conflict": sharing_conflict,
            "can_share": can_share,
        }
