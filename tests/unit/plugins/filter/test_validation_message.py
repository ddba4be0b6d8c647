# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lb_validation_message blames the variable each finding carries, never a guess from its text."""

from __future__ import annotations

from ansible_collections.baremetal.lb.plugins.filter.speaker import FilterModule
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_desired_state, validate

MESSAGE = FilterModule().filters()["lb_validation_message"]


def messages(**options):
    report = validate(parse_desired_state(**options)).to_dict()
    return [MESSAGE(f) for f in report["errors"]], [MESSAGE(f) for f in report["warnings"]]


def test_each_finding_names_its_variable_and_index():
    errors, warnings = messages(
        pools=[
            {"name": "lan", "addresses": ["198.51.100.100-198.51.100.120"]},
            {"name": "routed", "addresses": ["203.0.113.0/24"]},
            {"name": "again", "addresses": ["198.51.100.120-198.51.100.130"]},
        ],
        services=[
            {"name": "ok"},
            {"name": "gone", "state": "absent"},
            {"namespace": "shop", "name": "web", "address_pool": "nowhere"},
            {"name": "ok"},
        ],
        l2_advertisements=[{"name": "lan", "pools": ["lan"], "nodes": ["node9"]}],
        bgp_advertisements=[{"name": "routed", "pools": ["routed", "missing-pool"]}],
        nodes=["node1", "node2"],
    )
    assert any(e.startswith("lb_pools[2].addresses[0]: pools overlap:") for e in errors), errors
    # an advertisement's finding is about the advertisement (today's main said "lb_pools:")
    assert "lb_bgp_advertisements[0].pools: bgp_advertisements[0] announces pool 'missing-pool', " \
        "which does not exist" in errors
    # services keep their index in the list, absent services counted
    assert any(e.startswith("lb_services[2] (shop/web): requests address_pool 'nowhere'") for e in errors), errors
    assert "lb_services[3] (default/ok): is listed twice; each namespace/name may appear once" in errors
    assert warnings == ["lb_l2_advertisements[0].nodes: l2_advertisements[0] names nodes that are not in nodes: node9"]


def test_a_finding_without_field_names_every_candidate():
    assert MESSAGE({"service": None, "message": "x"}) == "lb_pools / lb_services / lb_*_advertisements: x"
