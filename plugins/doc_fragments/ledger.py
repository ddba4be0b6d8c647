# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ledger:
    description:
      - Path of the SQLite ledger that keeps pools and allocations between runs, on the control node.
      - Created on first write with owner-only permissions (directory C(0700), file C(0600)).
      - Every module call is one transaction; concurrent playbook runs and forks wait for each other
        (up to 120 seconds), so an address is never handed out twice.
      - Set it once for all modules of the collection with C(module_defaults) and the
        C(group/baremetal.lb.ledger) action group (the modules that have a ledger).
    type: path
    default: ~/.local/state/baremetal-lb/ledger.sqlite3
notes:
  - >-
    These modules run on the control node; use C(delegate_to: localhost) and C(run_once: true)
    when the play targets other hosts.
"""
