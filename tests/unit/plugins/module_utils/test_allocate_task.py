# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The allocate task's one function, which the module and the action plugin both run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.baremetal.lb.plugins.module_utils import allocate_task, cluster_client
from ansible_collections.baremetal.lb.plugins.module_utils.allocate_task import (
    ALLOCATE_OPTIONS,
    CHECK_MODE_HINT,
    missing_library,
    run_allocate,
    secrets,
)

POOLS = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.101"]}]
SERVICES = [{"namespace": "shop", "name": "web", "ports": [{"port": 443}]}, {"namespace": "shop", "name": "api"}]


def params(**options):
    """The options as Ansible's validation leaves them (defaults filled in)."""
    result = ArgumentSpecValidator(ALLOCATE_OPTIONS).validate(options)
    assert not list(result.errors), result.errors.msg
    return result.validated_parameters


def test_check_mode_predicts_the_run_and_writes_nothing(tmp_path):
    ledger = tmp_path / "state" / "ledger.sqlite3"
    predicted = run_allocate(params(ledger=str(ledger), pools=POOLS, services=SERVICES), check_mode=True, diff=True)
    assert not (tmp_path / "state").exists()
    done = run_allocate(params(ledger=str(ledger), pools=POOLS, services=SERVICES), check_mode=False, diff=True)
    assert ledger.exists()
    assert predicted == done
    assert done["changed"] is True and "failed" not in done
    assert [a["addresses"] for a in done["allocations"]] == [["198.51.100.100"], ["198.51.100.101"]]
    assert done["diff"]["before"] == {"pool lan": None, "shop/web": None, "shop/api": None}
    again = run_allocate(params(ledger=str(ledger), pools=POOLS, services=SERVICES), check_mode=False, diff=False)
    assert again["changed"] is False and "diff" not in again
    assert (
        again["invocation"]["module_args"]["services"] == "2 services (not echoed back; see allocations and failures)"
    )


def test_failures_fail_the_task_after_saving_the_rest(tmp_path):
    ledger = str(tmp_path / "ledger.sqlite3")
    three = [*SERVICES, {"namespace": "shop", "name": "extra"}]
    kept = run_allocate(params(ledger=ledger, pools=POOLS, services=three, fail_on_error=False), False, False)
    assert "failed" not in kept and [f["name"] for f in kept["failures"]] == ["extra"]
    failed = run_allocate(params(ledger=ledger, services=three), check_mode=True, diff=False)
    assert failed["failed"] is True
    assert failed["msg"].startswith("1 service(s) could not be allocated (shop/extra); first: shop/extra: ")
    assert failed["msg"].endswith(CHECK_MODE_HINT)  # check mode without pools: the hint says why
    assert [a["name"] for a in failed["allocations"]] == ["web", "api"]


def test_bad_input_names_the_field_and_the_value(tmp_path):
    bad = [{"name": "web", "ports": [{"port": 70000}]}]
    result = run_allocate(params(ledger=str(tmp_path / "l.sqlite3"), services=bad), False, False)
    assert result["failed"] is True
    assert result["field"] == "services[0].ports[0].port"
    assert "70000" in result["msg"]
    assert set(result) == {"failed", "msg", "field", "invocation"}


def test_secrets_are_the_ledger_password_and_the_kubeconfig_credentials():
    kubeconfig = {"users": [{"name": "u", "user": {"token": "tok-1", "client-key-data": "a2V5"}}]}
    found = secrets(params(ledger="postgresql://lb:pw-2@db.example/lb", services=[], kubeconfig=kubeconfig))
    assert found >= {"tok-1", "a2V5", "pw-2"}
    assert secrets(params(ledger="/var/lib/lb.sqlite3", services=[])) == set()


def test_missing_library_only_when_the_options_need_it(monkeypatch):
    monkeypatch.setattr(cluster_client, "HAS_KUBERNETES", False)
    assert missing_library(params(ledger="/var/lib/lb.sqlite3", services=[])) is None
    missing = missing_library(params(ledger="/var/lib/lb.sqlite3", services=[], kubeconfig="~/.kube/config"))
    assert missing is not None and missing[0] == "kubernetes"


def test_importing_it_imports_neither_kubernetes_nor_psycopg():
    """They cost 0.6 s on every call, most of which need neither (docs/allocation.md, "Scale")."""
    collections = str(Path(allocate_task.__file__).parents[5])  # the directory holding ansible_collections/
    code = (
        f"import sys; sys.path.insert(0, {collections!r}); "
        "import ansible_collections.baremetal.lb.plugins.module_utils.allocate_task; "
        "print(sorted(m for m in ('kubernetes', 'psycopg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
