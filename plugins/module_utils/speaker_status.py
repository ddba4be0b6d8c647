# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading speakers' ``/status`` and putting the nodes' views side by side.

``check_document`` checks one speaker's document. ``aggregate`` takes every node's
document and returns, per service IP, its mode, its leader (L2) or announcing
nodes (BGP), each node's view, and the disagreements between nodes. Two nodes
announcing one L2 IP is an error (both answer ARP: traffic flaps between
them); nodes naming different leaders, or a node without the IP, is a
disagreement (normal for a moment during a failover, wrong if it lasts).

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any


def check_document(doc: Any, url: str) -> dict[str, Any]:
    """``doc`` if it looks like a speaker's status document, else ``ValueError``."""
    if not isinstance(doc, dict) or "node" not in doc:
        raise ValueError(f"{url} did not answer with a speaker status document")
    return doc


def _ip_key(address: str) -> tuple[int, int]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0)
    return (ip.version, int(ip))


def aggregate(views: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per service IP, what every node says about it, and where they disagree.

    Returns ``{"addresses": [...], "errors": [...], "disagreements": [...],
    "nodes": [...], "unreachable": [...]}``; see the module's RETURN.
    """
    nodes: list[str] = []
    unreachable: list[dict[str, str]] = []
    per_ip: dict[str, dict[str, Any]] = {}
    for view in views:
        node = str(view.get("node") or view.get("host") or "?")
        if view.get("error"):
            unreachable.append({"node": node, "error": str(view["error"])})
            continue
        nodes.append(node)
        for ann in view.get("announcements") or []:
            entry = per_ip.setdefault(
                ann["address"], {"address": ann["address"], "services": [], "modes": set(), "views": {}}
            )
            if ann.get("service") and ann["service"] not in entry["services"]:
                entry["services"].append(ann["service"])
            entry["modes"].add(ann.get("mode", "l2"))
            seen = entry["views"].setdefault(node, {"announcing": False, "leader": None, "reason": ""})
            seen["announcing"] = seen["announcing"] or bool(ann.get("announcing"))
            seen["leader"] = seen["leader"] or ann.get("leader")
            seen["reason"] = seen["reason"] or ann.get("reason") or ""

    addresses: list[dict[str, Any]] = []
    errors: list[str] = []
    disagreements: list[str] = []
    for address in sorted(per_ip, key=_ip_key):
        entry = per_ip[address]
        mode = "bgp" if entry["modes"] == {"bgp"} else "l2"
        if len(entry["modes"]) > 1:
            errors.append(f"{address}: announced as {' and '.join(sorted(entry['modes']))} by different nodes")
        views_of = entry["views"]
        announcing = sorted(n for n, v in views_of.items() if v["announcing"])
        leaders = sorted({v["leader"] for v in views_of.values() if v["leader"]})
        missing = sorted(n for n in nodes if n not in views_of)
        item: dict[str, Any] = {
            "address": address,
            "services": entry["services"],
            "mode": mode,
            "announcing_nodes": announcing,
            "leader": leaders[0] if mode == "l2" and len(leaders) == 1 else None,
            "views": {n: views_of[n] for n in sorted(views_of)},
            "agreed": True,
        }
        if mode == "l2":
            if len(announcing) > 1:
                errors.append(
                    f"{address}: {len(announcing)} nodes answer ARP/NDP for it "
                    f"({', '.join(announcing)}); exactly one may"
                )
                item["agreed"] = False
            if len(leaders) > 1:
                disagreements.append(f"{address}: nodes name different leaders ({', '.join(leaders)})")
                item["agreed"] = False
            if len(leaders) == 1 and announcing and announcing != leaders:
                disagreements.append(f"{address}: leader {leaders[0]} but announced by {', '.join(announcing)}")
                item["agreed"] = False
        if missing and mode == "l2":
            # an L2 IP is configured on its candidate nodes only; say so, it is not an error
            item["not_configured_on"] = missing
        addresses.append(item)
    return {
        "addresses": addresses,
        "errors": errors,
        "disagreements": disagreements,
        "nodes": sorted(nodes),
        "unreachable": unreachable,
    }
