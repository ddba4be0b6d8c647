#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pool_info
short_description: Read address pools, their usage and the current allocations from the ledger
version_added: 0.1.0
description:
  - Lists the pools in the ledger with how many addresses of each family are assigned and still available,
    and every allocation with its addresses, pool, ports and sharing key.
  - Read-only. A ledger that does not exist yet reads as empty and is not created.
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - baremetal.lb.ledger
  - baremetal.lb.cluster
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Never changes anything.
options:
  names:
    description: Only these pools (and their allocations). All pools when empty.
    type: list
    elements: str
    default: []
seealso:
  - module: baremetal.lb.address_pool
  - module: baremetal.lb.allocate
"""

EXAMPLES = r"""
- name: Read the ledger
  baremetal.lb.pool_info:
  delegate_to: localhost
  run_once: true
  register: lb

- name: Warn when a pool is nearly full
  ansible.builtin.debug:
    msg: "pool {{ item.name }} has {{ item.available.ipv4 }} IPv4 addresses left"
  loop: "{{ lb.pools }}"
  when: item.available.ipv4 < 5 and item.assigned.ipv4 > 0
"""

RETURN = r"""
pools:
  description: The pools, in definition order (the order of automatic allocation among equals).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: lan
    addresses:
      description: Its CIDRs and ranges, as declared.
      type: list
      elements: str
      sample: [198.51.100.100-198.51.100.120]
    auto_assign:
      description: Whether automatic allocation uses it.
      type: bool
      sample: true
    avoid_buggy_ips:
      description: Whether IPv4 C(.0) and C(.255) addresses are skipped.
      type: bool
      sample: false
    service_allocation:
      description: Its service restrictions and priority, or V(null).
      type: dict
      sample: null
    assigned:
      description: Distinct addresses held by at least one service, per family.
      type: dict
      sample: {ipv4: 3, ipv6: 1}
    available:
      description: Usable addresses not held by any service, per family.
      type: dict
      sample: {ipv4: 18, ipv6: 20}
allocations:
  description: Current allocations, sorted by namespace and name.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The service's namespace.
      type: str
      sample: shop
    name:
      description: The service's name.
      type: str
      sample: web
    addresses:
      description: Its addresses, primary family first.
      type: list
      elements: str
      sample: [198.51.100.100]
    pool:
      description: The pool they come from.
      type: str
      sample: lan
    ports:
      description: The service's ports.
      type: list
      elements: dict
      sample: [{port: 443, protocol: TCP}]
    sharing_key:
      description: Its sharing key, empty when none.
      type: str
      sample: ""
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.baremetal.lb.plugins.module_utils.cluster import CLUSTER_OPTIONS, kubeconfig_secrets
from ansible_collections.baremetal.lb.plugins.module_utils.cluster_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    read_services,
)
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError, LedgerError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import (
    LEDGER_OPTIONS,
    is_postgresql,
    open_ledger,
    passwords,
)
from ansible_collections.baremetal.lb.plugins.module_utils.ledger_postgresql import HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR
from ansible_collections.baremetal.lb.plugins.module_utils.operations import pool_report


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **LEDGER_OPTIONS,
            **CLUSTER_OPTIONS,
            "names": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    module.no_log_values.update(passwords(module.params["ledger"]))
    module.no_log_values.update(kubeconfig_secrets(module.params["kubeconfig"]))
    if is_postgresql(module.params["ledger"]) and not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)
    if module.params["kubeconfig"] and not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    try:
        cluster = read_services(module.params["kubeconfig"], module.params["context"])
        state = open_ledger(module.params["ledger"], module.params["ledger_password"]).read()
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    except LedgerError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **pool_report(state, module.params["names"], cluster))


if __name__ == "__main__":
    main()
