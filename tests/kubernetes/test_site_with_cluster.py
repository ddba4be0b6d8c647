"""site.yml with lb_kubeconfig against the real control plane: apply, wait for ingress, idempotence, check mode.

ansible-playbook from the collection's venv (with kubernetes.core unpacked into build/collections by
``make kubernetes-core``) runs the production playbook with an inventory of the control node only:
the ledger allocates, service_manifest renders, kubernetes.core applies, and the controller in the
cluster (started here with the same pools) gives each Service the address the ledger pinned.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import POOLS, Namespace

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(os.environ.get("LB_ANSIBLE_BIN", REPO / ".venv" / "bin")) / "ansible-playbook"
COLLECTIONS = REPO / "build" / "collections"


def site(inventory: Path, *extra: str) -> tuple[int, str]:
    """Run site.yml: the control node's ``changed=`` count from the recap, and the output."""
    if not (COLLECTIONS / "ansible_collections" / "kubernetes" / "core").exists():
        pytest.fail(f"kubernetes.core is not in {COLLECTIONS}: run make kubernetes-core")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(REPO / "playbooks" / "site.yml"), *extra],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout, re.M)
    assert recap, proc.stdout[-2000:]
    return int(recap.group(1)), proc.stdout


def inventory(tmp_path: Path, namespace: str, kubeconfig: Path) -> Path:
    path = tmp_path / "inventory.yml"
    python = str(REPO / ".venv" / "bin" / "python")
    path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": python}}, "vars": {
        "lb_ledger": str(tmp_path / "ledger.sqlite3"),
        "lb_manifest_dir": str(tmp_path / "manifests"),
        "lb_kubeconfig": str(kubeconfig),
        "lb_membership_secret": "x" * 32,
        "lb_pools": POOLS,
        "lb_services": [
            {"namespace": namespace, "name": "web", "ports": [{"port": 80}]},
            {"namespace": namespace, "name": "dual", "ports": [{"port": 443}],
             "ip_family_policy": "RequireDualStack"},
        ],
    }}}))
    return path


def test_site_applies_waits_for_ingress_and_a_second_run_changes_nothing(
        ns: Namespace, start_controller: Any, cluster: Any, tmp_path: Path) -> None:
    start_controller()
    inv = inventory(tmp_path, ns.name, cluster.kubeconfig)

    predicted, out = site(inv, "--check", "--diff")
    assert predicted > 0
    assert "198.51.100.100" in out  # the diff shows the address the first run gives
    assert not (tmp_path / "ledger.sqlite3").exists()  # check mode wrote nothing
    services, _version = ns.api.list_services()
    assert [o["metadata"]["name"] for o in services if o["metadata"]["namespace"] == ns.name] == []  # nor applied

    first, _out = site(inv)
    assert first > 0
    assert ns.ingress("web") == ["198.51.100.100"]
    assert ns.ingress("dual") == ["198.51.100.101", "2001:db8:1::100"]
    assert ns.pool("web") == "default"

    second, out = site(inv)
    assert second == 0, re.findall(r"^(?:TASK \[.*|changed: .*)$", out, re.M)
