#!/usr/bin/python
# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ledger
short_description: Set up, dump, or copy a ledger (SQLite or PostgreSQL)
version_added: 0.1.0
description:
  - V(present) makes sure O(ledger) exists with its schema. On PostgreSQL, run it once as the database's owner (or a
    user that may create schemas there) when the users that run playbooks may not create one; then grant them
    C(USAGE) on schema C(baremetal_lb) and C(SELECT), C(INSERT), C(UPDATE), C(DELETE) on its tables.
  - V(dump) returns every pool and allocation of O(ledger) in RV(ledger_content), and with O(dest) writes it to a
    file (JSON when the name ends in C(.json), else YAML), for backups and for reading. Read-only.
  - V(copy) makes O(ledger) hold exactly what O(source) holds - pools in their definition order (which decides
    automatic choice) and every allocation with its service - in one transaction. Moving from SQLite to PostgreSQL
    and back this way loses no allocation. A target that holds something else is replaced only with O(force).
author:
  - baremetal.lb developers (@baremetal-lb)
extends_documentation_fragment:
  - baremetal.lb.ledger
attributes:
  check_mode:
    support: full
    description: V(present) and V(copy) report what they would change and write nothing; V(dump) writes no O(dest).
  diff_mode:
    support: none
    description: A copy reports the counts it copied; use V(dump) to compare ledgers.
  idempotent:
    support: full
    description: A second V(present) or V(copy) changes nothing; V(dump) changes O(dest) only when the content changed.
options:
  state:
    description: What to do with O(ledger).
    type: str
    choices: [present, dump, copy]
    default: present
  source:
    description:
      - For V(copy), the ledger to copy from, in the form of O(ledger) (a path or a PostgreSQL URL or C(key=value)
        string). Only read.
    type: str
  source_password:
    description: The password for a PostgreSQL O(source), instead of writing it in the URL.
    type: str
  force:
    description: For V(copy), replace what O(ledger) holds when it is not empty and differs from O(source).
    type: bool
    default: false
  dest:
    description: For V(dump), also write the content to this file on the control node (C(0600)).
    type: path
seealso:
  - module: baremetal.lb.pool_info
"""

EXAMPLES = r"""
- name: Set up the shared ledger once, as the database owner
  baremetal.lb.ledger:
    ledger: postgresql://lb_owner@db.example/lb?sslmode=verify-full
    ledger_password: "{{ vault_lb_owner_password }}"
  delegate_to: localhost
  run_once: true

- name: Move from the SQLite ledger of one control node to the team's PostgreSQL database
  baremetal.lb.ledger:
    state: copy
    source: ~/.local/state/baremetal-lb/ledger.sqlite3
    ledger: postgresql://lb@db.example/lb?sslmode=verify-full
    ledger_password: "{{ vault_lb_password }}"
  delegate_to: localhost
  run_once: true

- name: Back up the ledger as YAML
  baremetal.lb.ledger:
    state: dump
    ledger: postgresql://lb@db.example/lb?sslmode=verify-full
    dest: /var/backups/baremetal-lb/ledger.yaml
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
ledger_content:
  description: For V(dump), every pool (in definition order) and every allocation (by namespace and name).
  returned: state=dump
  type: dict
  contains:
    pools:
      description: The pools, as M(baremetal.lb.address_pool) takes them.
      type: list
      elements: dict
      sample: [{name: lan, addresses: [198.51.100.100-198.51.100.120], auto_assign: true, avoid_buggy_ips: false,
                service_allocation: null}]
    allocations:
      description: The allocations, each with the service as it was saved.
      type: list
      elements: dict
      sample: [{namespace: shop, name: web, addresses: [198.51.100.100], pool: lan,
                service: {namespace: shop, name: web, ports: [{port: 443, protocol: TCP}]}}]
counts:
  description: How many pools and allocations O(ledger) holds afterwards (for V(copy), as copied).
  returned: always
  type: dict
  sample: {pools: 2, allocations: 140}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.yaml import yaml_dump
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError, LedgerError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import (
    LEDGER_OPTIONS,
    LedgerState,
    is_postgresql,
    open_ledger,
    passwords,
)
from ansible_collections.baremetal.lb.plugins.module_utils.ledger_postgresql import HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR
from ansible_collections.baremetal.lb.plugins.module_utils.operations import copy_ledger, ledger_dump


def counts(state: LedgerState) -> dict[str, int]:
    return {"pools": len(state.pools), "allocations": len(state.allocations)}


def write_dump(module: AnsibleModule, dest: str, content: dict[str, object]) -> bool:
    """Write ``content`` to ``dest`` (JSON or YAML by its name) unless it already holds it; whether it changed."""
    if dest.endswith(".json"):
        text = json.dumps(content, indent=2) + "\n"
    else:
        text = yaml_dump(content, sort_keys=False, default_flow_style=False)
    try:
        with open(dest, encoding="utf-8") as current:
            if current.read() == text:
                return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        module.fail_json(msg=f"cannot read {dest}: {exc.strerror}", field="dest")
    if not module.check_mode:
        temporary = f"{dest}.tmp{os.getpid()}"
        try:
            with open(os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600), "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, dest)
        except OSError as exc:
            module.fail_json(msg=f"cannot write {dest}: {exc.strerror}", field="dest")
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **LEDGER_OPTIONS,
            "state": {"type": "str", "choices": ["present", "dump", "copy"], "default": "present"},
            "source": {"type": "str"},
            "source_password": {"type": "str", "no_log": True},
            "force": {"type": "bool", "default": False},
            "dest": {"type": "path"},
        },
        required_if=[("state", "copy", ["source"])],
        supports_check_mode=True,
    )
    params = module.params
    for option in ("ledger", "source"):
        module.no_log_values.update(passwords(params[option] or ""))
        if is_postgresql(params[option] or "") and not HAS_PSYCOPG:
            module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)
    result: dict[str, object] = {"changed": False}
    try:
        ledger = open_ledger(params["ledger"], params["ledger_password"])
        if params["state"] == "dump":
            state = ledger.read()
            content = ledger_dump(state)
            result["ledger_content"] = content
            if params["dest"]:
                result["changed"] = write_dump(module, params["dest"], content)
        else:
            source = None
            if params["state"] == "copy":
                try:
                    source = open_ledger(params["source"], params["source_password"]).read()
                except InputError as exc:
                    raise InputError("source", exc.value, exc.message) from None
            with ledger.transaction(dry_run=module.check_mode) as txn:
                result["changed"] = txn.created
                if source is not None:
                    result["changed"] = copy_ledger(txn, source, params["force"]) or txn.created
                state = source or txn.state
        result["counts"] = counts(state)
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    except LedgerError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
