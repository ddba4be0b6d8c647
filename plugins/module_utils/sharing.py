# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When two services may hold the same IP (MetalLB's rules, in MetalLB's order)."""

from __future__ import annotations

from .service import Service


def sharing_conflict(new: Service, held_by: Service) -> str | None:
    """Why ``new`` cannot share an IP that ``held_by`` holds, or None if it can."""
    if not held_by.sharing_key:
        return f"it is held by {held_by.key}, which has no sharing_key"
    if not new.sharing_key:
        return f"it is held by {held_by.key} and this service has no sharing_key"
    if new.sharing_key != held_by.sharing_key:
        return f"it is held by {held_by.key} with sharing_key {held_by.sharing_key!r}, not {new.sharing_key!r}"
    if new.backend_key != held_by.backend_key:
        return (
            f"it is held by {held_by.key}, whose backends differ "
            f"({_describe_backends(held_by)} vs {_describe_backends(new)})"
        )
    overlap = sorted(set(new.ports) & set(held_by.ports))
    if overlap:
        used = ", ".join(f"{p.protocol}/{p.port}" for p in overlap)
        return f"it is held by {held_by.key}, which already uses {used} on it"
    return None


def _describe_backends(service: Service) -> str:
    if service.external_traffic_policy != "Local":
        return "Cluster"
    selector = ",".join(f"{k}={v}" for k, v in sorted(service.selector.items()))
    return f"Local with selector {selector or '(none)'}"
