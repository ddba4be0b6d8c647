"""One record, no double allocation: the playbook's ledger and the cluster's controller, both directions.

The modules run as Ansible runs them (a subprocess with its arguments file) from the collection's
venv, which has the ``kubernetes`` client; the cluster is the real control plane of ``cluster``.
Cluster -> ledger: ``allocate``/``pool_info`` with ``kubeconfig`` never hand out what a Service holds.
Ledger -> cluster: the ledger's allocations, given to the controller as ``reserved`` (what the role
renders from ``pool_info``), are never handed out to another Service, and the Service the playbook
rendered with the same namespace/name keeps its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import POOLS, Namespace

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PYTHON = Path(os.environ.get("LB_ANSIBLE_PYTHON", REPO / ".venv" / "bin" / "python"))
COLLECTIONS = REPO / "build" / "collections"


def run_module(name: str, args: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The module's JSON result, as Ansible would get it; a failed module's too (with ``failed``)."""
    if not ANSIBLE_PYTHON.exists() or not (COLLECTIONS / "ansible_collections" / "baremetal" / "lb").exists():
        pytest.fail(f"{ANSIBLE_PYTHON} and {COLLECTIONS}/ansible_collections/baremetal/lb are needed: run make venv "
                    "and make lint (or make kubernetes-test, which makes both)")
    args_file = tmp_path / f"{name}-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
    proc = subprocess.run([str(ANSIBLE_PYTHON), "-m", f"ansible_collections.baremetal.lb.plugins.modules.{name}",
                           str(args_file)], capture_output=True, text=True, env=env, timeout=120, check=False)
    try:
        return dict(json.loads(proc.stdout))
    except json.JSONDecodeError:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        raise


def test_allocate_with_a_kubeconfig_never_takes_a_clusters_address(
        ns: Namespace, start_controller: Any, cluster: Any, tmp_path: Path) -> None:
    start_controller()
    ns.apply("web")
    assert ns.wait_ingress("web") == ["198.51.100.100"]
    ledger = str(tmp_path / "ledger.sqlite3")
    base = {"ledger": ledger, "pools": POOLS, "kubeconfig": str(cluster.kubeconfig)}

    out = run_module("allocate", {**base, "services": [{"namespace": "shop", "name": "a"}]}, tmp_path)
    assert not out.get("failed"), out
    assert out["allocations"][0]["addresses"] == ["198.51.100.101"]  # .100 is the cluster's

    asks = {"namespace": "shop", "name": "b", "load_balancer_ips": ["198.51.100.100"]}
    out = run_module("allocate", {**base, "services": [asks]}, tmp_path)
    assert out["failed"] and out["failures"][0]["reason"] == (
        f"requested address 198.51.100.100 cannot be shared: it is held by cluster/{ns.name}/web, "
        "which has no sharing_key")

    info = run_module("pool_info", {"ledger": ledger, "kubeconfig": str(cluster.kubeconfig)}, tmp_path)
    held = {(a["namespace"], a["name"]): (a["addresses"], a["source"]) for a in info["allocations"]}
    assert held == {("cluster", f"{ns.name}/web"): (["198.51.100.100"], "cluster"),
                    ("shop", "a"): (["198.51.100.101"], "ledger")}
    assert info["pools"][0]["assigned"] == {"ipv4": 2, "ipv6": 0}

    # without the kubeconfig the ledger alone decides: this is the collision the option prevents
    alone = run_module("pool_info", {"ledger": ledger}, tmp_path)
    assert [a["name"] for a in alone["allocations"]] == ["a"]


def test_the_ledgers_addresses_reserved_in_the_controller(
        ns: Namespace, start_controller: Any, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite3")
    services = [{"namespace": ns.name, "name": "rendered"}, {"namespace": "hosts", "name": "dns"}]
    out = run_module("allocate", {"ledger": ledger, "pools": POOLS, "services": services}, tmp_path)
    assert [a["addresses"] for a in out["allocations"]] == [["198.51.100.100"], ["198.51.100.101"]]
    info = run_module("pool_info", {"ledger": ledger}, tmp_path)
    # what the role renders into controller.yaml (roles/speaker/templates/controller.yaml.j2)
    reserved = [{"address": ip, "service": f"{a['namespace']}/{a['name']}"}
                for a in info["allocations"] for ip in a["addresses"]]
    start_controller(reserved=reserved)

    ns.apply("by-kubectl")
    assert ns.wait_ingress("by-kubectl") == ["198.51.100.102"]  # neither of the ledger's
    ns.apply("rendered", annotations={"metallb.io/loadBalancerIPs": "198.51.100.100"})
    assert ns.wait_ingress("rendered") == ["198.51.100.100"]  # the playbook's own Service keeps its address
    ns.apply("thief", annotations={"metallb.io/loadBalancerIPs": "198.51.100.101"})
    message = ns.wait_event("thief", "AllocationFailed")["message"]
    assert "held by hosts/dns, which has no sharing_key (hosts/dns: reserved for the playbook's ledger)" in message
    assert ns.ingress("thief") == []
