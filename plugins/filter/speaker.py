# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the inventory data model into speaker configurations (docs/role.md).

Each filter is documented in a sidecar file next to this one (``<filter>.yml``).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.baremetal.lb.plugins.module_utils import announcements, cluster


def lb_announcements(allocations, services, l2_advertisements, bgp_advertisements):
    """Announced services (with their nodes) and BGP advertisements from the allocations."""
    try:
        return announcements.resolve(allocations or [], services or [], l2_advertisements, bgp_advertisements)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"lb_announcements: cannot resolve the announcements: {exc}") from exc


def lb_inventory_errors(membership_secret, bgp_peers=None, l2_advertisements=None, bgp_advertisements=None, pools=None):
    """Mistakes in the lb_* variables, each naming its variable."""
    return announcements.inventory_errors(membership_secret, bgp_peers, l2_advertisements, bgp_advertisements, pools)


def lb_speaker_config(node, nodes, settings):
    """One node's speaker configuration document."""
    try:
        return announcements.node_config(node, nodes, settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"lb_speaker_config: {exc}") from exc


def lb_reservations(ledger_allocations, run_allocations, services=None):
    """The controller's reserved addresses: the ledger's allocations, this run's winning for its services."""
    try:
        return cluster.reservations(ledger_allocations or [], run_allocations or [], services or [])
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"lb_reservations: not allocations of pool_info and allocate: {exc}") from exc


def lb_node_names(hosts, hostvars):
    """The speakers' node names: each host's lb_node_name, else its inventory name."""
    return [str(hostvars[h].get("lb_node_name") or h) for h in hosts or []]


def lb_status_line(entry):
    """One line for a service IP of baremetal.lb.speaker_status: address, mode, services, who announces."""
    if entry.get("leader"):
        who = f"leader {entry['leader']}"
    else:
        who = "announced by " + (", ".join(entry.get("announcing_nodes") or []) or "nobody")
    flag = "" if entry.get("agreed", True) else "  (nodes disagree)"
    return f"{entry['address']:<18} {entry['mode']:<4} {', '.join(entry.get('services') or []):<16} {who}{flag}"


# validate's options -> the site.yml inventory variables they are fed from, in the same order
INVENTORY_VARIABLES = {
    "services": "lb_services",
    "pools": "lb_pools",
    "l2_advertisements": "lb_l2_advertisements",
    "bgp_advertisements": "lb_bgp_advertisements",
}


def lb_validation_message(finding):
    """A finding of baremetal.lb.validate, prefixed with the inventory variable (and index) to fix."""
    message = str(finding.get("message", ""))
    field = str(finding.get("field") or "")
    option = re.match(r"[a-z_0-9]+", field)
    if option is None:
        where = "lb_pools / lb_services / lb_*_advertisements"
    else:
        where = INVENTORY_VARIABLES.get(option.group(0), option.group(0)) + field[option.end():]
    if finding.get("service"):
        where += f" ({finding['service']})"
    return f"{where}: {message}"


class FilterModule:
    def filters(self):
        return {
            "lb_announcements": lb_announcements,
            "lb_inventory_errors": lb_inventory_errors,
            "lb_speaker_config": lb_speaker_config,
            "lb_node_names": lb_node_names,
            "lb_reservations": lb_reservations,
            "lb_status_line": lb_status_line,
            "lb_validation_message": lb_validation_message,
        }
