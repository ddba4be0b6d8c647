# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by modules (plain dicts: no Ansible import needed).

They match ``plugins/doc_fragments/service.py``. Ansible checks types and
choices; :func:`~.service.parse_service` checks the rest (port ranges, one
address per family, ...) and names the field.
"""

from __future__ import annotations

from typing import Any

SERVICE_OPTIONS: dict[str, Any] = {
    "namespace": {"type": "str", "default": "default"},
    "name": {"type": "str", "required": True},
    "ports": {
        "type": "list",
        "elements": "dict",
        "options": {
            "port": {"type": "int", "required": True},
            "protocol": {"type": "str", "choices": ["TCP", "UDP", "SCTP"], "default": "TCP"},
        },
    },
    "external_traffic_policy": {"type": "str", "choices": ["Cluster", "Local"], "default": "Cluster"},
    "selector": {"type": "dict"},
    "labels": {"type": "dict"},
    "load_balancer_ips": {"type": "list", "elements": "str"},
    "address_pool": {"type": "str"},
    "sharing_key": {"type": "str", "no_log": False},
    "ip_families": {"type": "list", "elements": "str", "choices": ["IPv4", "IPv6"]},
    "ip_family_policy": {
        "type": "str",
        "choices": ["SingleStack", "PreferDualStack", "RequireDualStack"],
        "default": "SingleStack",
    },
}

SERVICE_SPEC: dict[str, Any] = {"type": "dict", "required": True, "options": SERVICE_OPTIONS}

SERVICES_SPEC: dict[str, Any] = {
    "type": "list",
    "elements": "dict",
    "default": [],
    "options": {**SERVICE_OPTIONS, "state": {"type": "str", "choices": ["present", "absent"], "default": "present"}},
}


def without_none(data: Any) -> Any:
    """Drop the None values Ansible fills in for unset suboptions (recursively)."""
    if isinstance(data, dict):
        return {k: without_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [without_none(v) for v in data]
    return data
