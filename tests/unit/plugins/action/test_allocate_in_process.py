"""``allocate`` through ansible-playbook: in-process on the control node, and as a module, give the same results.

One playbook runs the same tasks on two hosts of one inventory, each with a ledger of its own:
``inproc`` with the ``local`` connection (the action plugin runs the allocation in Ansible's
worker) and ``viamodule`` with ``lbtest_local``, the local connection under another name, which
the plugin does not treat as the control node: there the module runs as it runs on any remote
host (AnsiballZ, its own process). ``-vvv`` shows which path each host took, and the registered
results of both hosts must be equal: check mode with diff, a real run, both again, a partial
failure, bad input (a value, a type, an unknown option), and a kubeconfig whose token must be
masked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[4]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
TOKEN = "lbtest-token-0123456789abcdef"

CONNECTION_PLUGIN = '''
from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = """
name: lbtest_local
short_description: the local connection under another name
description: [Runs commands on the control node like ansible.builtin.local, but is not that plugin.]
author: baremetal.lb tests
"""


class Connection(LocalConnection):
    transport = "lbtest_local"
'''

INVENTORY = f"""\
inproc ansible_connection=local ansible_python_interpreter={sys.executable}
viamodule ansible_connection=lbtest_local ansible_python_interpreter={sys.executable}
"""

TASKS = """\
- name: Allocate, in check mode and for real, twice; then the failures
  hosts: all
  gather_facts: false
  vars:
    ledger: "{{ workdir }}/{{ inventory_hostname }}/ledger.sqlite3"
    pools:
      - {name: lan, addresses: [198.51.100.100-198.51.100.102, "2001:db8:1::100-2001:db8:1::101"]}
    services:
      - {namespace: shop, name: web, ports: [{port: 443}], ip_family_policy: RequireDualStack}
      - {namespace: infra, name: dns-tcp, ports: [{port: 53, protocol: TCP}], sharing_key: dns}
      - {namespace: infra, name: dns-udp, ports: [{port: 53, protocol: udp}], sharing_key: dns}
      - {namespace: shop, name: api, load_balancer_ips: [198.51.100.102]}
    kubeconfig:
      apiVersion: v1
      kind: Config
      clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
      users: [{name: u, user: {token: TOKEN}}]
      contexts: [{name: x, context: {cluster: c, user: u}}]
      current-context: x
  tasks:
    - name: Predict the first run
      baremetal.lb.allocate: {ledger: "{{ ledger }}", pools: "{{ pools }}", services: "{{ services }}"}
      check_mode: true
      diff: true
      register: check_first
    - name: Check mode wrote nothing
      ansible.builtin.stat: {path: "{{ workdir }}/{{ inventory_hostname }}"}
      register: after_check
    - name: First run
      baremetal.lb.allocate: {ledger: "{{ ledger }}", pools: "{{ pools }}", services: "{{ services }}"}
      diff: true
      register: run_first
    - name: Check mode again
      baremetal.lb.allocate: {ledger: "{{ ledger }}", pools: "{{ pools }}", services: "{{ services }}"}
      check_mode: true
      diff: true
      register: check_again
    - name: Second run
      baremetal.lb.allocate: {ledger: "{{ ledger }}", pools: "{{ pools }}", services: "{{ services }}"}
      register: run_again
    - name: One service more than the pool holds, without failing the task
      baremetal.lb.allocate:
        ledger: "{{ ledger }}"
        fail_on_error: false
        services: [{namespace: shop, name: extra}]
      register: partial
    - name: The same, failing the task
      baremetal.lb.allocate: {ledger: "{{ ledger }}", services: [{namespace: shop, name: extra}]}
      register: failed_allocation
      ignore_errors: true
    - name: A bad value
      baremetal.lb.allocate: {ledger: "{{ ledger }}", services: [{name: bad, ports: [{port: 70000}]}]}
      register: bad_value
      ignore_errors: true
    - name: A bad type
      baremetal.lb.allocate: {ledger: "{{ ledger }}", services: [], fail_on_error: maybe}
      register: bad_type
      ignore_errors: true
    - name: An unknown option
      baremetal.lb.allocate: {ledger: "{{ ledger }}", services: [], servics: []}
      register: bad_option
      ignore_errors: true
    - name: A cluster that cannot be reached, with a token that must stay hidden
      baremetal.lb.allocate: {ledger: "{{ ledger }}", services: [], kubeconfig: "{{ kubeconfig }}"}
      register: bad_cluster
      ignore_errors: true
    - name: Save the results
      ansible.builtin.copy:
        dest: "{{ workdir }}/{{ inventory_hostname }}.json"
        mode: "0600"
        content: "{{ results | to_json }}"
      vars:
        results:
          check_first: "{{ check_first }}"
          ledger_dir_after_check: "{{ after_check.stat.exists }}"
          run_first: "{{ run_first }}"
          check_again: "{{ check_again }}"
          run_again: "{{ run_again }}"
          partial: "{{ partial }}"
          failed_allocation: "{{ failed_allocation }}"
          bad_value: "{{ bad_value }}"
          bad_type: "{{ bad_type }}"
          bad_option: "{{ bad_option }}"
          bad_cluster: "{{ bad_cluster }}"
""".replace("TOKEN", TOKEN)


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The registered results of host ``inproc``, of host ``viamodule``, and ansible-playbook's -vvv output."""
    work = tmp_path_factory.mktemp("lbinproc")
    (work / "connection_plugins").mkdir()
    (work / "connection_plugins" / "lbtest_local.py").write_text(CONNECTION_PLUGIN)
    (work / "hosts").write_text(INVENTORY)
    (work / "playbook.yml").write_text(TASKS)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_CONNECTION_PLUGINS": str(work / "connection_plugins"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(
        [PLAYBOOK, "-vvv", "-i", "hosts", "playbook.yml", "-e", f"workdir={work}"],
        cwd=work, capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return json.loads((work / "inproc.json").read_text()), json.loads((work / "viamodule.json").read_text()), output


def test_each_host_took_its_path(both_paths: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    _inproc, _module, output = both_paths
    lines = output.splitlines()
    in_process = [line for line in lines if "ran in-process on the control node" in line]
    assert in_process and all(line.startswith("<inproc>") for line in in_process), in_process
    assert len(in_process) == 10  # every allocate task of the play, argument errors included
    module_runs = [line for line in lines if "AnsiballZ_allocate.py" in line]
    assert module_runs, "the viamodule host never ran the module"


def test_both_paths_give_the_same_results(both_paths: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    inproc, module, _output = both_paths
    assert inproc.keys() == module.keys()
    for task in inproc:
        assert without_set_order(inproc[task]) == without_set_order(module[task]), task


def without_set_order(result: Any) -> Any:
    """``result`` with ansible-core's list of valid booleans sorted: it prints a set, in a different order per process."""
    if not isinstance(result, dict) or "Valid booleans include: " not in str(result.get("msg")):
        return result
    head, listing = result["msg"].split("Valid booleans include: ")
    return {**result, "msg": head + ", ".join(sorted(listing.split(", ")))}


def test_check_mode_predicts_and_writes_nothing(both_paths: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    inproc, _module, _output = both_paths
    assert inproc["ledger_dir_after_check"] is False
    assert [inproc[t]["changed"] for t in ("check_first", "run_first", "check_again", "run_again")] == [
        True,
        True,
        False,
        False,
    ]
    assert inproc["check_first"]["allocations"] == inproc["run_first"]["allocations"]
    assert inproc["check_first"]["diff"] == inproc["run_first"]["diff"]
    assert inproc["run_first"]["diff"]["after"]["shop/web"]["addresses"] == ["198.51.100.100", "2001:db8:1::100"]
    assert inproc["check_again"]["diff"] == {"before": {}, "after": {}}
    shared = {a["name"]: a["addresses"] for a in inproc["run_first"]["allocations"]}
    assert shared["dns-tcp"] == shared["dns-udp"] == ["198.51.100.101"]
    assert shared["api"] == ["198.51.100.102"]


def test_failures_and_bad_input(both_paths: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    inproc, _module, output = both_paths
    assert inproc["partial"]["failed"] is False
    assert [f["name"] for f in inproc["partial"]["failures"]] == ["extra"]
    assert inproc["failed_allocation"]["failed"] is True
    assert inproc["failed_allocation"]["msg"].startswith("1 service(s) could not be allocated (shop/extra)")
    bad_value = inproc["bad_value"]
    assert bad_value["failed"] is True
    assert bad_value["field"] == "services[0].ports[0].port"
    assert "70000" in bad_value["msg"]
    assert inproc["bad_type"]["failed"] is True
    assert "fail_on_error" in inproc["bad_type"]["msg"] and "maybe" in inproc["bad_type"]["msg"]
    assert inproc["bad_option"]["msg"].startswith("Unsupported parameters for (baremetal.lb.allocate) module: servics")
    assert inproc["bad_cluster"]["failed"] is True
    assert inproc["bad_cluster"]["field"] == "kubeconfig"
    assert "cannot reach the cluster at https://127.0.0.1:1" in inproc["bad_cluster"]["msg"]
    assert TOKEN not in output
    assert TOKEN not in json.dumps(inproc)
