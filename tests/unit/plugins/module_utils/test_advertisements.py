# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The advertisement schema and the one rule for a pool's mode and candidate nodes."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.advertisements import (
    applies_to_node,
    parse_advertisement,
    parse_advertisements,
    pool_announcement,
)
from ansible_collections.baremetal.lb.plugins.module_utils.announcements import resolve
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.validation import parse_desired_state, validate

NODES = ["node-a", "node-b", "node-c"]


def ads(l2=(), bgp=()):
    return parse_advertisements(list(l2), "l2") + parse_advertisements(list(bgp), "bgp")


# --- the node rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "node", "applies"),
    [
        ((), "node-a", True),
        (None, "node-a", True),
        (("node-a", "node-b"), "node-b", True),
        (("node-a",), "node-b", False),
    ],
)
def test_an_advertisement_applies_to_every_node_or_the_nodes_it_names(nodes, node, applies):
    assert applies_to_node(nodes, node) is applies
    ad = parse_advertisement({"pools": ["lan"], "nodes": list(nodes or ())}, "bgp", 0)
    assert ad.applies_to(node) is applies


# --- the mode rule -------------------------------------------------------------------------------


def test_no_advertisement_of_the_pool_means_not_announced():
    plan = pool_announcement("lan", ads(l2=[{"pools": ["other"]}]), NODES)
    assert plan.mode is None and plan.modes == () and plan.advertisements == ()


def test_an_l2_advertisement_makes_the_pool_l2():
    plan = pool_announcement("lan", ads(l2=[{"pools": ["lan"]}], bgp=[{"pools": ["routed"]}]), NODES)
    assert plan.mode == "l2" and plan.modes == ("l2",)


def test_any_bgp_advertisement_wins_over_l2():
    plan = pool_announcement("lan", ads(l2=[{"pools": ["lan"], "nodes": ["node-a"]}], bgp=[{"pools": ["lan"]}]))
    assert plan.mode == "bgp" and plan.modes == ("bgp", "l2")
    assert [ad.mode for ad in plan.advertisements] == ["bgp"]


def test_an_advertisement_without_pools_applies_to_every_pool():
    assert pool_announcement("anything", ads(bgp=[{}])).mode == "bgp"
    assert pool_announcement("anything", ads(l2=[{"pools": []}])).mode == "l2"


def test_candidates_are_the_union_of_the_winning_modes_nodes_in_order():
    plan = pool_announcement(
        "lan",
        ads(
            l2=[{"pools": ["lan"], "nodes": ["node-c"]}],
            bgp=[{"pools": ["lan"], "nodes": ["node-b", "node-a"]}, {"nodes": ["node-a", "node-c", "node-c"]}],
        ),
        NODES,
    )
    assert plan.nodes == ("node-b", "node-a", "node-c")
    assert [ad.index for ad in plan.advertisements] == [0, 1]


def test_an_advertisement_without_nodes_means_every_node():
    advertisements = ads(l2=[{"pools": ["lan"], "nodes": ["node-c"]}, {"pools": ["lan"]}])
    assert pool_announcement("lan", advertisements, NODES).nodes == ("node-c", "node-a", "node-b")
    # every node, but their names are not known
    assert pool_announcement("lan", advertisements).nodes is None


def test_nodes_of_the_losing_mode_do_not_count():
    advertisements = ads(l2=[{"pools": ["lan"], "nodes": ["node-c"]}], bgp=[{"pools": ["lan"], "nodes": ["node-a"]}])
    assert pool_announcement("lan", advertisements, NODES).nodes == ("node-a",)


# --- the schema ----------------------------------------------------------------------------------

L2_FULL = {"name": "lan", "pools": ["lan"], "nodes": ["node-a"], "interfaces": ["eth0", "bond0"]}
BGP_FULL = {
    "name": "routed",
    "pools": ["routed"],
    "nodes": ["node-a"],
    "peers": ["tor1", "198.51.100.1"],
    "communities": ["64500:100", "0:65535", "no-export", "NO-ADVERTISE", "blackhole", "no-export-subconfed"],
    "large_communities": ["64500:1:100", "4294967295:0:4294967295"],
    "local_pref": 200,
    "aggregation_length": 24,
    "aggregation_length_v6": 64,
}


def test_the_inventorys_advertisements_pass_as_they_are():
    l2 = parse_advertisement(L2_FULL, "l2", 0)
    assert l2.interfaces == ("eth0", "bond0") and l2.name == "lan"
    bgp = parse_advertisement(BGP_FULL, "bgp", 0)
    assert bgp.peers == ("tor1", "198.51.100.1")
    assert bgp.communities[2] == "no-export"
    assert (bgp.local_pref, bgp.aggregation_length, bgp.aggregation_length_v6) == (200, 24, 64)


def test_unset_and_empty_values_mean_the_defaults():
    bgp = parse_advertisement({"pools": None, "peers": [], "local_pref": None, "communities": None}, "bgp", 0)
    assert bgp.pools == () and bgp.peers == () and bgp.communities == () and bgp.local_pref is None


@pytest.mark.parametrize(
    ("mode", "data", "field"),
    [
        ("l2", {"pools": ["lan"], "node": ["a"]}, "l2_advertisements[0].node"),
        # a BGP key is not an L2 one, and the other way round
        ("l2", {"peers": ["tor1"]}, "l2_advertisements[0].peers"),
        ("bgp", {"interfaces": ["eth0"]}, "bgp_advertisements[0].interfaces"),
        ("bgp", {"local_preference": 100}, "bgp_advertisements[0].local_preference"),
    ],
)
def test_unknown_keys_are_refused_by_path(mode, data, field):
    with pytest.raises(InputError) as info:
        parse_advertisement(data, mode, 0)
    assert info.value.field == field
    assert "unknown key" in info.value.message


def test_an_unknown_key_suggests_the_close_one():
    with pytest.raises(InputError) as info:
        parse_advertisement({"local_preference": 100}, "bgp", 0)
    assert "did you mean 'local_pref'" in info.value.message


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("name", "Not A Name", "bgp_advertisements[2].name"),
        ("pools", "routed", "bgp_advertisements[2].pools"),
        ("nodes", ["node-a", ""], "bgp_advertisements[2].nodes"),
        ("peers", "tor1", "bgp_advertisements[2].peers"),
        ("peers", [64500], "bgp_advertisements[2].peers"),
        ("communities", "64500:100", "bgp_advertisements[2].communities"),
        # YAML 1.1 reads an unquoted 64500:100 as a sexagesimal number
        ("communities", [3870100], "bgp_advertisements[2].communities[0]"),
        ("communities", ["64500:100", "65536:1"], "bgp_advertisements[2].communities[1]"),
        ("communities", ["64500"], "bgp_advertisements[2].communities[0]"),
        ("communities", ["64500:100:1"], "bgp_advertisements[2].communities[0]"),
        ("communities", ["no-such-name"], "bgp_advertisements[2].communities[0]"),
        ("communities", ["-1:5"], "bgp_advertisements[2].communities[0]"),
        ("large_communities", ["64500:100"], "bgp_advertisements[2].large_communities[0]"),
        ("large_communities", ["4294967296:0:0"], "bgp_advertisements[2].large_communities[0]"),
        ("large_communities", ["no-export"], "bgp_advertisements[2].large_communities[0]"),
        ("local_pref", "100", "bgp_advertisements[2].local_pref"),
        ("local_pref", True, "bgp_advertisements[2].local_pref"),
        ("local_pref", -1, "bgp_advertisements[2].local_pref"),
        ("local_pref", 4294967296, "bgp_advertisements[2].local_pref"),
        ("aggregation_length", 33, "bgp_advertisements[2].aggregation_length"),
        ("aggregation_length", 24.0, "bgp_advertisements[2].aggregation_length"),
        ("aggregation_length_v6", 129, "bgp_advertisements[2].aggregation_length_v6"),
    ],
)
def test_bad_bgp_values_name_the_field_and_the_value(key, value, field):
    with pytest.raises(InputError) as info:
        parse_advertisement({**BGP_FULL, key: value}, "bgp", 2)
    assert info.value.field == field
    assert repr(info.value.value) in str(info.value)


@pytest.mark.parametrize(
    ("value", "field"),
    [("eth0", "l2_advertisements[0].interfaces"), ([None], "l2_advertisements[0].interfaces")],
)
def test_bad_interfaces_name_the_field(value, field):
    with pytest.raises(InputError) as info:
        parse_advertisement({**L2_FULL, "interfaces": value}, "l2", 0)
    assert info.value.field == field


def test_the_inventory_prefix_names_the_variable():
    with pytest.raises(InputError) as info:
        parse_advertisements([{}, {"local_pref": "high"}], "bgp", "lb_")
    assert info.value.field == "lb_bgp_advertisements[1].local_pref"
    assert str(info.value).startswith("lb_bgp_advertisements[1].local_pref: must be an integer from 0 to 4294967295")


def test_the_list_and_its_entries_must_have_their_shapes():
    with pytest.raises(InputError) as info:
        parse_advertisements("lan", "l2")
    assert info.value.field == "l2_advertisements"
    with pytest.raises(InputError) as info:
        parse_advertisements([["lan"]], "l2")
    assert info.value.field == "l2_advertisements[0]"


# --- both sides use the rule ---------------------------------------------------------------------


def test_validate_and_the_announcement_plan_agree_on_mode_and_nodes():
    l2 = [{**L2_FULL, "pools": ["lan", "both"], "nodes": ["node-c"]}]
    bgp = [{**BGP_FULL, "pools": ["routed", "both"], "nodes": ["node-a", "node-b"]}]
    pools = [
        {"name": "lan", "addresses": ["198.51.100.100/30"]},
        {"name": "routed", "addresses": ["203.0.113.0/30"]},
        {"name": "both", "addresses": ["192.0.2.0/30"]},
    ]
    services = [{"name": pool["name"], "address_pool": pool["name"]} for pool in pools]
    state = parse_desired_state(
        pools=pools,
        services=services,
        l2_advertisements=l2,
        bgp_advertisements=bgp,
        nodes=NODES,
        placement={f"default/{s['name']}": {"node-a": 1, "node-b": 1, "node-c": 1} for s in services},
    )
    traffic = validate(state).traffic
    allocations = [
        {"namespace": "default", "name": pool["name"], "pool": pool["name"], "addresses": ["192.0.2.1"]}
        for pool in pools
    ]
    plan = {s["name"]: s for s in resolve(allocations, services, l2, bgp)["services"]}
    for pool in ("lan", "routed", "both"):
        assert plan[f"default/{pool}"]["mode"] == traffic[f"default/{pool}"]["mode"], pool
    assert plan["default/both"]["mode"] == "bgp"
    assert plan["default/both"]["nodes"] == ["node-a", "node-b"]
    assert plan["default/lan"]["nodes"] == ["node-c"] and plan["default/lan"]["interfaces"] == ["eth0", "bond0"]
    assert plan["default/both"].get("interfaces") is None


def test_the_announcement_plan_refuses_a_bad_inventory_advertisement_naming_the_variable():
    with pytest.raises(InputError) as info:
        resolve([], [], [L2_FULL], [{**BGP_FULL, "communities": ["64500:100000"]}])
    assert info.value.field == "lb_bgp_advertisements[0].communities[0]"
