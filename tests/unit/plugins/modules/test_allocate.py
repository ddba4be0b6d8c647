# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.baremetal.lb.plugins.modules import allocate
from ansible_collections.baremetal.lb.tests.unit.plugins.modules.module_runner import run_module

POOLS = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.120"]}]
SERVICES = [{"namespace": "shop", "name": f"web-{i}", "ports": [{"port": 443}]} for i in range(3)]


def test_result_counts_the_services_instead_of_echoing_them(tmp_path, capsys):
    ledger = str(tmp_path / "ledger.sqlite3")
    code, result = run_module(allocate.main, {"ledger": ledger, "pools": POOLS, "services": SERVICES}, capsys)
    assert code == 0
    assert set(result) >= {"changed", "pools", "allocations", "failures", "invocation"}
    assert [a["name"] for a in result["allocations"]] == ["web-0", "web-1", "web-2"]
    args = result["invocation"]["module_args"]
    assert args["services"] == "3 services (not echoed back; see allocations and failures)"
    # every other option is echoed as AnsibleModule would
    assert args["ledger"] == ledger
    assert args["pools"] == POOLS
    assert args["fail_on_error"] is True


def test_failures_also_count_the_services(tmp_path, capsys):
    ledger = str(tmp_path / "ledger.sqlite3")
    wanted = [{"namespace": "shop", "name": "api", "load_balancer_ips": ["203.0.113.7"]}]
    code, result = run_module(allocate.main, {"ledger": ledger, "pools": POOLS, "services": wanted}, capsys)
    assert code == 1
    assert result["failures"][0]["name"] == "api"
    assert result["invocation"]["module_args"]["services"].startswith("1 service (")


def test_input_errors_count_the_services(tmp_path, capsys):
    ledger = str(tmp_path / "ledger.sqlite3")
    bad = [{"namespace": "shop", "name": "web", "ports": [{"port": 0}]}]
    code, result = run_module(allocate.main, {"ledger": ledger, "pools": POOLS, "services": bad}, capsys)
    assert code == 1
    assert "services[0]" in result["msg"]
    assert result["invocation"]["module_args"]["services"].startswith("1 service (")
