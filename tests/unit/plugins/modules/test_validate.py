# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.baremetal.lb.plugins.modules import validate
from ansible_collections.baremetal.lb.tests.unit.plugins.modules.module_runner import run_module

POOLS = [{"name": "routed", "addresses": ["203.0.113.0/24"]}]
FRONTEND = {
    "namespace": "web",
    "name": "frontend",
    "ports": [{"port": 443}],
    "selector": {"app": "frontend"},
    "external_traffic_policy": "Local",
}


def test_seed_example_through_the_module(capsys, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(validate.AnsibleModule, "warn", lambda self, message: shown.append(message))
    code, result = run_module(
        validate.main,
        {
            "pools": POOLS,
            "services": [FRONTEND],
            "bgp_advertisements": [{"pools": ["routed"]}],
            "nodes": ["node-a", "node-b"],
            "placement": {"web/frontend": {"node-a": 2, "node-b": 1}},
        },
        capsys,
    )
    assert code == 0
    assert result["changed"] is False
    traffic = result["traffic"]["web/frontend"]
    assert [p["share"] for p in traffic["per_pod"]] == [0.25, 0.25, 0.5]
    assert [round(p["share"], 2) for p in traffic["other_policy_per_pod"]] == [0.33, 0.33, 0.33]
    assert len(result["validation_warnings"]) == 1
    # the warning is also shown as an Ansible warning
    assert len(shown) == 1
    assert shown[0].startswith("web/frontend: BGP + Local spreads traffic per node")


def test_errors_fail_the_task(capsys):
    service = dict(FRONTEND, load_balancer_ips=["198.51.100.5"])
    code, result = run_module(validate.main, {"pools": POOLS, "services": [service]}, capsys)
    assert code == 1
    assert result["failed"] is True
    assert result["errors"] == [
        {
            "service": "web/frontend",
            "message": "requests 198.51.100.5, which no pool owns; add it to a pool or request another address",
            "field": "services[0]",
        }
    ]
    assert "no pool owns" in result["msg"]


def test_bad_input_names_the_field(capsys):
    service = dict(FRONTEND, ports=[{"port": 0}])
    code, result = run_module(validate.main, {"services": [service]}, capsys)
    assert code == 1
    assert result["field"] == "services[0].ports[0].port"


def test_unknown_policy_is_refused(capsys):
    code, result = run_module(validate.main, {"services": [dict(FRONTEND, external_traffic_policy="Nearest")]}, capsys)
    assert code == 1
    assert result["field"] == "services[0].external_traffic_policy"


def test_placement_with_a_bad_count_names_the_field(capsys):
    code, result = run_module(
        validate.main, {"services": [FRONTEND], "placement": {"web/frontend": {"node-a": "many"}}}, capsys
    )
    assert code == 1
    assert result["field"] == "placement['web/frontend'].node-a"


def test_selector_not_a_mapping_names_the_field(capsys):
    code, result = run_module(validate.main, {"services": [dict(FRONTEND, selector="app=frontend")]}, capsys)
    assert code == 1
    assert result["field"] == "services[0].selector"
