#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: address_pool
short_description: Define, change or remove one address pool in the ledger
version_added: 0.1.0
description:
  - Keeps one named address pool in the ledger from which M(baremetal.lb.allocate) hands out service IPs.
  - A pool is a list of CIDRs and C(start-end) ranges, IPv4 and IPv6. Pools never overlap; a pool that would overlap
    another is refused, naming both pools and both ranges.
  - Every address of a pool is allocatable, network and broadcast addresses included, unless O(avoid_buggy_ips)
    is set (MetalLB's rule).
  - Removing a pool, or changing it so that an allocated address leaves it (shrinking, O(avoid_buggy_ips),
    O(service_allocation) no longer admitting a holder), is refused while services hold those addresses, unless
    O(force=true); then every released allocation is reported in RV(released).
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - baremetal.lb.ledger
attributes:
  check_mode:
    support: full
    description:
      - Runs the same change on a private in-memory copy of the ledger, so it reports what would change and refuses
        what would be refused; the ledger file, its directory and its journal are not created or written.
      - The pool is not saved, so a later M(baremetal.lb.allocate) task of the same check-mode run does not see it;
        give the pools to that task's C(pools) option to predict a first run in one task.
  diff_mode:
    support: full
    description: Shows the pool before and after.
  idempotent:
    support: full
    description: Running the task again with the same options changes nothing.
options:
  name:
    description:
      - Name of the pool. Services request it by this name (C(address_pool)).
      - A Kubernetes object name - a DNS subdomain (RFC 1123) - lowercase letters, digits, C(-) and C(.), each
        C(.)-separated part starting and ending with a letter or digit, at most 253 characters.
      - A pool saved by an earlier version under another name keeps working and can be removed
        (O(state=absent)), but not changed.
    type: str
    required: true
  addresses:
    description:
      - CIDRs (V(198.51.100.0/25), V(2001:db8:1::/64)), ranges (V(198.51.100.100-198.51.100.120)) or single addresses.
      - The order matters, as automatic allocation tries them in the order given, lowest free address first.
      - A CIDR with host bits set is refused (the error gives the network address).
      - Required when O(state=present).
    type: list
    elements: str
  auto_assign:
    description:
      - Whether services that request neither addresses nor a pool may get addresses from this pool.
      - A service can always request this pool by name or an address in it.
    type: bool
    default: true
  avoid_buggy_ips:
    description: Never hand out IPv4 addresses ending in C(.0) or C(.255), which some old network equipment mishandles.
    type: bool
    default: false
  service_allocation:
    description:
      - Restricts the pool to some services and orders it for automatic allocation.
      - The restriction holds on every path, requested addresses and requested pools included.
    type: dict
    suboptions:
      priority:
        description:
          - Order among pools with O(service_allocation) that match a service, lower first; V(0) (unset) comes last.
          - Matching pools are tried before pools without O(service_allocation).
        type: int
        default: 0
      namespaces:
        description:
          - Only services in these namespaces may use the pool.
          - A DNS label (RFC 1123), as Kubernetes requires of namespaces - lowercase letters, digits and C(-),
            starting and ending with a letter or digit, at most 63 characters.
        type: list
        elements: str
        default: []
      service_selectors:
        description:
          - Only services whose labels match at least one of these label selectors may use the pool.
          - With O(service_allocation.namespaces) too, both must hold.
          - Each selector has C(match_labels) (a mapping) and/or C(match_expressions) (a list of C(key), C(operator)
            one of V(In), V(NotIn), V(Exists), V(DoesNotExist), and C(values)); any other key is refused.
          - Label names and values follow Kubernetes' rules (a name is an optional DNS subdomain prefix and C(/), then
            at most 63 letters, digits, C(-), C(_) and C(.), starting and ending with a letter or digit; a value is
            empty or the same at most 63 characters).
        type: list
        elements: dict
        default: []
  state:
    description: Whether the pool should exist.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Allow removing the pool, or changing it, although services hold addresses that would be released.
      - The released allocations are listed in RV(released).
    type: bool
    default: false
seealso:
  - module: baremetal.lb.allocate
  - module: baremetal.lb.pool_info
"""

EXAMPLES = r"""
- name: A pool for Layer 2 service IPs, IPv4 and IPv6
  baremetal.lb.address_pool:
    name: lan
    addresses:
      - 198.51.100.100-198.51.100.120
      - 2001:db8:1::100-2001:db8:1::120
  delegate_to: localhost
  run_once: true

- name: A pool only for the payments namespace, tried before the others
  baremetal.lb.address_pool:
    name: payments
    addresses: [203.0.113.0/28]
    avoid_buggy_ips: true
    service_allocation:
      priority: 10
      namespaces: [payments]
      service_selectors:
        - match_labels:
            tier: public
  delegate_to: localhost
  run_once: true

- name: A pool handed out only on request
  baremetal.lb.address_pool:
    name: reserved
    addresses: [203.0.113.64/27]
    auto_assign: false
  delegate_to: localhost
  run_once: true

- name: Remove a pool even though services hold addresses from it
  baremetal.lb.address_pool:
    name: old
    state: absent
    force: true
  delegate_to: localhost
  run_once: true
  register: removed

- name: Say what was released
  ansible.builtin.debug:
    msg: "{{ removed.released | map(attribute='addresses') | list }}"
"""

RETURN = r"""
pool:
  description: The pool as saved (or as it would be saved in check mode); V(null) when O(state=absent).
  returned: always
  type: dict
  sample:
    name: lan
    addresses: [198.51.100.100-198.51.100.120]
    auto_assign: true
    avoid_buggy_ips: false
    service_allocation: null
released:
  description: Allocations released by this change (only with O(force=true)), each with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - namespace: default
      name: web
      addresses: [198.51.100.120]
      pool: lan
      reason: 198.51.100.120 is no longer in the pool
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError, LedgerError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import (
    LEDGER_OPTIONS,
    is_postgresql,
    open_ledger,
    passwords,
)
from ansible_collections.baremetal.lb.plugins.module_utils.ledger_postgresql import HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR
from ansible_collections.baremetal.lb.plugins.module_utils.operations import apply_pool


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **LEDGER_OPTIONS,
            "name": {"type": "str", "required": True},
            "addresses": {"type": "list", "elements": "str"},
            "auto_assign": {"type": "bool", "default": True},
            "avoid_buggy_ips": {"type": "bool", "default": False},
            "service_allocation": {
                "type": "dict",
                "options": {
                    "priority": {"type": "int", "default": 0},
                    "namespaces": {"type": "list", "elements": "str", "default": []},
                    "service_selectors": {"type": "list", "elements": "dict", "default": []},
                },
            },
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "force": {"type": "bool", "default": False},
        },
        required_if=[("state", "present", ["addresses"])],
        supports_check_mode=True,
    )
    module.no_log_values.update(passwords(module.params["ledger"]))
    if is_postgresql(module.params["ledger"]) and not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)
    try:
        ledger = open_ledger(module.params["ledger"], module.params["ledger_password"])
        with ledger.transaction(dry_run=module.check_mode) as txn:
            change = apply_pool(txn, module.params)
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    except LedgerError as exc:
        module.fail_json(msg=str(exc))

    result: dict[str, object] = {"changed": change.changed, "pool": change.after, "released": change.released}
    if module._diff:
        result["diff"] = {"before": change.before or {}, "after": change.after or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
