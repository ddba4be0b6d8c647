"""Check mode predicts the first run and writes nothing, through ansible-playbook.

The README's example (taken from the README itself, so the two cannot drift)
and ``playbooks/site.yml``'s control-plane play, each run with ``--check
--diff`` on a fresh ledger, then for real, then ``--check`` again on the
existing ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.baremetal.lb.tests.unit.plugins.modules.test_metallb_import import (
    MIGRATION,
    NODES,
    SERVICES,
    sources,
)

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Pools and allocations in one task", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "README: no yaml block under 'Pools and allocations in one task'"
    return match.group(1)


def run(args: list[str], tmp: Path, *, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run([PLAYBOOK, *args], capture_output=True, text=True, env=env, timeout=300, check=False)
    if ok:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def with_report(playbook: str, variable: str, report: Path) -> str:
    """``playbook`` plus a play that saves ``variable`` (a registered result) as JSON to ``report``.

    The report is written outside the ledger's directory, with check_mode off.
    """
    return playbook + f"""
- name: Save the result for the test
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ hostvars['localhost']['{variable}'] | to_json }}}}"
        dest: {report}
        mode: "0600"
      check_mode: false
      diff: false
"""


def result(report: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report.read_text())
    report.unlink()
    return data


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_readme_example_check_mode_predicts_and_writes_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(with_report(readme_example(), "allocated", report))
    state = tmp_path / "state"  # the ledger's directory does not exist yet
    ledger = state / "ledger.sqlite3"
    args = [str(playbook), "-e", f"ledger={ledger}"]

    run([*args, "--check", "--diff"], tmp_path)
    predicted = result(report)
    assert predicted["changed"] is True
    assert not state.exists(), f"check mode created {tree(state)}"
    assert predicted["diff"]["after"]["pool lan"]["addresses"][0] == "198.51.100.100-198.51.100.120"
    assert predicted["allocations"] == [
        {"namespace": "infra", "name": "dns-tcp", "addresses": ["198.51.100.100"], "pool": "lan"},
        {"namespace": "infra", "name": "dns-udp", "addresses": ["198.51.100.100"], "pool": "lan"},
        {"namespace": "shop", "name": "web", "addresses": ["198.51.100.101", "2001:db8:1::100"], "pool": "lan"},
    ]

    run(args, tmp_path)
    done = result(report)
    assert done["changed"] is True
    assert done["allocations"] == predicted["allocations"]
    assert done["pools"] == predicted["pools"]

    before = digest(ledger)
    files = tree(state)
    run([*args, "--check", "--diff"], tmp_path)
    assert result(report)["changed"] is False
    assert digest(ledger) == before
    assert tree(state) == files  # no journal left behind either


def site_inventory(tmp: Path) -> Path:
    return ROOT / "tests" / "galaxy" / "inventory.yml"


def test_site_check_mode_predicts_and_writes_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    playbook = tmp_path / "site.yml"
    site = ROOT / "playbooks" / "site.yml"
    playbook.write_text(with_report(f"- ansible.builtin.import_playbook: {site}\n", "lb_allocation", report))
    state = tmp_path / "state"
    ledger = state / "ledger.sqlite3"
    # the control-plane play only: the data-plane play needs real hosts (Molecule runs it)
    args = [str(playbook), "-i", str(site_inventory(tmp_path)), "-e", f"lb_ledger={ledger}", "--limit", "localhost"]

    run([*args, "--check", "--diff"], tmp_path)
    predicted = result(report)
    assert predicted["changed"] is True
    assert not state.exists(), f"check mode created {tree(state)}"
    assert sorted(predicted["diff"]["after"]) == ["default/web", "pool lan", "pool routed", "shop/api"]

    run(args, tmp_path)
    done = result(report)
    assert done["allocations"] == predicted["allocations"]
    assert [a["addresses"] for a in done["allocations"]] == [["198.51.100.100", "2001:db8:1::100"], ["203.0.113.1"]]

    before = digest(ledger)
    files = tree(state)
    run([*args, "--check", "--diff"], tmp_path)
    assert result(report)["changed"] is False
    assert digest(ledger) == before
    assert tree(state) == files


@pytest.mark.parametrize("existing", [False, True])
def test_check_mode_refuses_what_the_run_refuses_and_writes_nothing(tmp_path: Path, existing: bool) -> None:
    state = tmp_path / "state"
    ledger = state / "ledger.sqlite3"
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(readme_example())
    if existing:
        run([str(playbook), "-e", f"ledger={ledger}"], tmp_path)
    before = digest(ledger) if existing else None
    bad = tmp_path / "bad.yml"
    bad.write_text(
        readme_example().replace("198.51.100.100-198.51.100.120", "198.51.100.100-198.51.100.120, 198.51.100.110")
    )
    proc = run([str(bad), "-e", f"ledger={ledger}", "--check"], tmp_path, ok=False)
    assert proc.returncode != 0
    assert "pools[0].addresses[1]" in proc.stdout and "198.51.100.110" in proc.stdout
    if existing:
        assert digest(ledger) == before
    else:
        assert not state.exists()


def test_metallb_migration_passes_site_check_mode(tmp_path: Path) -> None:
    """MetalLB's examples through metallb_import into group_vars, then site.yml --check on that inventory."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    hosts = {
        "all": {
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
            "children": {
                "lb_speakers": {"hosts": {n: {"lb_node_address": f"198.51.100.{11 + i}"} for i, n in enumerate(NODES)}}
            },
            "vars": {"lb_membership_secret": "metallb-migration-test-membership-secret-0123", "lb_services": SERVICES},
        }
    }
    (inventory / "hosts.yml").write_text(json.dumps(hosts))
    migrated = inventory / "group_vars" / "all" / "metallb.yml"
    migrate = tmp_path / "migrate.yml"
    migrate.write_text(
        f"""
- name: MetalLB's manifests to group_vars
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Import them
      baremetal.lb.metallb_import:
        src: {json.dumps(sources())}
        dest: {migrated}
"""
    )
    run([str(migrate)], tmp_path)
    assert migrated.read_text().count("#   ") == 4  # the four fields not carried, named at the top
    assert len(MIGRATION) == len(re.findall(r"^# from: ", migrated.read_text(), re.M))

    report = tmp_path / "report.json"
    playbook = tmp_path / "site.yml"
    site = ROOT / "playbooks" / "site.yml"
    playbook.write_text(with_report(f"- ansible.builtin.import_playbook: {site}\n", "lb_announcement_plan", report))
    state = tmp_path / "state"
    args = [str(playbook), "-i", str(inventory), "-e", f"lb_ledger={state / 'ledger.sqlite3'}", "--limit", "localhost"]
    run([*args, "--check", "--diff"], tmp_path)
    assert not state.exists()
    plan = result(report)
    by_name = {s["name"]: s for s in plan["services"]}
    # the serviceAllocation pool (priority 50, namespace-a, app=bar; avoidBuggyIPs skips .0), announced over L2
    # from every node on eno1 (example-advertisement9 covers every pool)
    assert by_name["namespace-a/api"]["addresses"] == ["192.168.20.1"]
    assert by_name["namespace-a/api"]["mode"] == "l2"
    assert by_name["namespace-a/api"]["interfaces"] == ["eno1"]
    # the BGP advertisement with local-pref 150 and the NO_ADVERTISE alias
    assert by_name["shop/web"]["mode"] == "bgp"
    assert plan["bgp_advertisements"] == [
        {"services": ["shop/web"], "local_pref": 150, "communities": ["65535:65282"], "nodes": []}
    ]
