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


def test_the_inventorys_advertisements_pass_as_they_are(capsys):
    bgp = {
        "name": "routed",
        "pools": ["routed"],
        "peers": ["tor1"],
        "communities": ["64500:100", "no-export"],
        "large_communities": ["64500:1:100"],
        "local_pref": 200,
        "aggregation_length": 32,
        "aggregation_length_v6": 128,
    }
    l2 = {"name": "lan", "pools": ["routed"], "nodes": ["node-a"], "interfaces": ["eth0"]}
    code, result = run_module(
        validate.main, {"pools": POOLS, "l2_advertisements": [l2], "bgp_advertisements": [bgp]}, capsys
    )
    assert code == 0, result
    assert result["errors"] == []


def test_a_bad_advertisement_value_names_the_field_and_the_value(capsys):
    bgp = {"pools": ["routed"], "local_pref": "high"}
    code, result = run_module(validate.main, {"pools": POOLS, "bgp_advertisements": [{}, bgp]}, capsys)
    assert code == 1
    assert result["field"] == "bgp_advertisements[1].local_pref"
    assert "'high'" in result["msg"]


def test_an_unknown_advertisement_key_is_refused_by_its_path(capsys):
    code, result = run_module(
        validate.main, {"l2_advertisements": [{"pools": ["routed"], "interface": ["eth0"]}]}, capsys
    )
    assert code == 1
    assert result["field"] == "l2_advertisements[0].interface"
    assert "did you mean 'interfaces'" in result["msg"]
